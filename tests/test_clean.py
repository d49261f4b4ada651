"""movielens-als-clean on both backends: what it removes, and what it never touches."""

import io

import pytest

from pipeline.cli import clean_main
from pipeline.config import configured_store
from storage import Store

OUTPUTS = {
    "ml-1m": [
        "downloads/ml-1m.zip",
        "splits/ml-1m/random-0.2-seed42/train.parquet",
        "splits/ml-1m/random-0.2-seed42/_SUCCESS",
        "models/ml-1m/random-0.2-seed42/als/model.json",
        "evaluations/ml-1m/random-0.2-seed42/als/metrics.json",
    ],
    "ml-100k": ["downloads/ml-100k.zip", "splits/ml-100k/time-0.1-seed1/test.parquet"],
}
# Under the store root but not the pipeline's, and outside the root altogether.
NOT_OURS = ["notes/README.txt", "downloads-archive/ml-1m.zip", "models.txt"]


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, luigi_config, bucket_name) -> Store:
    if request.param == "local":
        luigi_config("store", "root", str(tmp_path / "root"))
    else:
        luigi_config("store", "root", f"s3://{bucket_name}/pipeline")
        luigi_config("s3", "endpoint_url", request.getfixturevalue("s3_endpoint"))
        luigi_config("s3", "region_name", "us-east-1")
    store = configured_store()
    store.create_root()
    for key in [k for keys in OUTPUTS.values() for k in keys] + NOT_OURS:
        store.write_bytes(key, b"x" * 100)
    if store.is_s3:
        store.backend.client.put_object(Bucket=bucket_name, Key="elsewhere/downloads/ml-1m.zip", Body=b"x")
    return store


def keys(store: Store) -> set[str]:
    return {
        k
        for prefix in ("downloads/", "splits/", "models/", "evaluations/", "notes/", "downloads-archive/")
        for k, _ in store.list_files(prefix)
    } | {k for k, _ in store.list_files("models.txt")}


def test_removes_one_dataset_and_nothing_else(store, capsys):
    assert clean_main(["--dataset", "ml-1m", "--yes"]) == 0
    assert keys(store) == set(OUTPUTS["ml-100k"]) | set(NOT_OURS)
    assert "5 files (0.0 MB) under" in capsys.readouterr().out
    if store.is_s3:
        assert store.backend.client.head_object(Bucket=store.backend.bucket, Key="elsewhere/downloads/ml-1m.zip")


def test_all_removes_every_output_and_nothing_else(store):
    assert clean_main(["--all", "--yes"]) == 0
    assert keys(store) == set(NOT_OURS)


def test_asks_before_removing(store, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    assert clean_main(["--all"]) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    assert clean_main(["--dataset", "ml-100k"]) == 0
    assert keys(store) == set(OUTPUTS["ml-1m"]) | set(NOT_OURS)


def test_without_a_terminal_it_needs_yes(store, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert clean_main(["--all"]) == 1
    assert "confirm on a terminal, or pass --yes" in capsys.readouterr().err
    assert len(keys(store)) == 7 + len(NOT_OURS)


def test_an_unknown_dataset_is_refused(store, capsys):
    with pytest.raises(SystemExit, match=r"^2$"):  # argparse's usage error
        clean_main(["--dataset", "ml-2m", "--yes"])
    assert "invalid choice: 'ml-2m'" in capsys.readouterr().err
