"""The whole chain, run with the real `luigi` command: on the local store and on S3 over HTTP,
with the release downloaded from a mirror on 127.0.0.1, and its failure modes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline import Recommendations
from pipeline.blas import als_blas
from tests.fakes import ratings_csv, ratings_rows, release_zip
from tests.helpers import BIN, FAKE_KEY_ID, FAKE_SECRET, TASK_FAILED, run_command, run_luigi, tasks_run

pytestmark = [pytest.mark.e2e, pytest.mark.spark]

SPLIT = "splits/ml-latest-small/user_random-0.2-seed42"
MODEL = "models/ml-latest-small/user_random-0.2-seed42/biased_als-rank32-reg0.15-iter15"
METRICS = "evaluations/ml-latest-small/user_random-0.2-seed42/biased_als-rank32-reg0.15-iter15/metrics.json"
OUTPUTS = {
    "downloads/ml-latest-small.zip",
    *(f"{SPLIT}/{name}" for name in ("train.parquet", "test.parquet", "stats.json", "_SUCCESS")),
    *(f"{MODEL}/{name}" for name in ("user_factors.parquet", "item_factors.parquet", "model.json", "_SUCCESS")),
    METRICS,
}


@pytest.fixture
def local_config(tmp_path, mirror, pipeline_config) -> tuple[Path, Path]:
    root = tmp_path / "store"
    return pipeline_config(store={"root": root}, movielens={"base_url": mirror.base_url}), root


@pytest.fixture
def s3_config(mirror, pipeline_config, s3_endpoint, bucket_name) -> Path:
    return pipeline_config(
        store={"root": f"s3://{bucket_name}/movielens"},
        s3={"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
        movielens={"base_url": mirror.base_url},
    )


def files_under(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


def explain(result) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout[-3000:]}\n--- stderr\n{result.stderr[-6000:]}"


def test_the_chain_on_the_local_store_then_a_rerun_does_nothing(real_release_zip, mirror, workdir, local_config):
    mirror.publish("ml-latest-small", real_release_zip.read_bytes())
    config, root = local_config

    first = run_command([str(BIN / "movielens-als"), "--local-scheduler"], config, workdir)

    assert first.returncode == 0, explain(first)
    assert set(files_under(root)) == OUTPUTS
    metrics = json.loads((root / METRICS).read_text())
    stats = json.loads((root / SPLIT / "stats.json").read_text())
    assert metrics["n_test"] == stats["test"]["rows"] and stats["train"]["rows"] + stats["test"]["rows"] == 100_836
    assert stats["test"]["users"] == stats["train"]["users"] == 610  # user_random: everyone on both sides
    # Encoded as RATINGS_PARQUET says: the users and timestamps as deltas, the ratings in a dictionary.
    chunks = pq.ParquetFile(root / SPLIT / "train.parquet").metadata.row_group(0)
    encodings = {chunks.column(i).path_in_schema: chunks.column(i).encodings for i in range(chunks.num_columns)}
    assert "DELTA_BINARY_PACKED" in encodings["user"] and "DELTA_BINARY_PACKED" in encodings["timestamp"]
    assert "RLE_DICTIONARY" in encodings["rating"] and "RLE_DICTIONARY" not in encodings["item"]
    assert metrics["rmse"] < metrics["baselines"]["bias"]["rmse"] < metrics["baselines"]["global_mean"]["rmse"]
    assert 0.9 < metrics["coverage"] <= 1.0
    assert metrics["params"] == {
        "dataset": "ml-latest-small",
        "strategy": "user_random",
        "test_fraction": 0.2,
        "seed": 42,
        "skip_malformed": False,
        "model": "biased_als",
        "rank": 32,
        "reg_param": 0.15,
        "max_iter": 15,
        "tuned": False,
        "relevant_rating": 4.0,
    }
    assert (
        f"metrics.json: {root / METRICS}\nRMSE {metrics['rmse']:.4f} on {metrics['n_test']} test ratings"
        in first.stdout
    )
    model = json.loads((root / MODEL / "model.json").read_text())
    assert model["model"] == "biased_als" and model["als"]["rank"] == 32
    assert model["train"]["rows"] == stats["train"]["rows"]
    assert model["spark_version"].startswith("4.")
    # Native BLAS and LAPACK where the system has them (`make test` installs Debian's OpenBLAS).
    native = Path(f"/usr/lib/{os.uname().machine}-linux-gnu/libblas.so.3").exists()
    assert (model["als"]["linear_algebra"] == "JNIBLAS, JNILAPACK") == native, model["als"]
    # ALS's per-rating calls go to the library the ALS jobs name (`make test` builds native/als_blas.c).
    assert model["als"]["blas_library"] == str(als_blas() or "libblas.so.3")

    before = files_under(root)
    second = run_luigi(["EvaluatedRMSE", "--local-scheduler"], config, workdir)

    assert second.returncode == 0, explain(second)
    assert "1 complete ones were encountered" in second.stderr and "ran successfully" not in second.stderr
    assert files_under(root) == before
    assert list(workdir.iterdir()) == []


def test_the_chain_on_s3_keeps_everything_in_the_bucket(
    real_release_zip, mirror, workdir, s3_config, s3_endpoint, bucket_name
):
    mirror.publish("ml-latest-small", real_release_zip.read_bytes())
    config = s3_config

    result = run_luigi(
        [
            "EvaluatedRMSE",
            "--local-scheduler",
            "--strategy",
            "random",
            "--model",
            "als",
            "--rank",
            "8",
            "--max-iter",
            "8",
        ],
        config,
        workdir,
    )

    assert result.returncode == 0, explain(result)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket_name)["Contents"]}
    split = "splits/ml-latest-small/random-0.2-seed42"
    model = "models/ml-latest-small/random-0.2-seed42/als-rank8-reg0.15-iter8"
    metrics_key = "evaluations/ml-latest-small/random-0.2-seed42/als-rank8-reg0.15-iter8/metrics.json"
    assert keys == {f"movielens/{k}" for k in OUTPUTS if not k.startswith(("splits", "models", "evaluations"))} | {
        f"movielens/{split}/{n}" for n in ("train.parquet", "test.parquet", "stats.json", "_SUCCESS")
    } | {
        f"movielens/{model}/{n}" for n in ("user_factors.parquet", "item_factors.parquet", "model.json", "_SUCCESS")
    } | {f"movielens/{metrics_key}"}
    metrics = json.loads(s3.get_object(Bucket=bucket_name, Key=f"movielens/{metrics_key}")["Body"].read())
    assert metrics["n_test"] == 20_124  # the reference random split of shared/data/README.md
    assert metrics["model_type"] == "als"
    assert metrics["rmse"] < metrics["baselines"]["global_mean"]["rmse"]
    assert metrics["model"] == f"s3://{bucket_name}/movielens/{model}"
    assert list(workdir.iterdir()) == []
    model_json = s3.get_object(Bucket=bucket_name, Key=f"movielens/{model}/model.json")["Body"].read().decode()
    for text in (result.stdout, result.stderr, json.dumps(metrics), model_json):
        assert FAKE_SECRET not in text and FAKE_KEY_ID not in text


def test_a_failing_spark_job_fails_its_task_without_leaking_credentials(
    mirror, workdir, s3_config, s3_endpoint, bucket_name
):
    mirror.publish("ml-latest-small", release_zip(ratings=ratings_csv(ratings_rows())))
    config = s3_config
    split = run_luigi(["SplitData", "--local-scheduler"], config, workdir)
    assert split.returncode == 0, explain(split)
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    s3.put_object(Bucket=bucket_name, Key=f"movielens/{SPLIT}/train.parquet", Body=b"not parquet")

    result = run_luigi(["EvaluatedRMSE", "--local-scheduler"], config, workdir)

    assert result.returncode == TASK_FAILED, explain(result)
    assert "Spark job train_als.py failed with exit code 1; the end of its log:" in result.stderr
    assert "Parquet magic bytes not found" in result.stderr  # Spark's driver's own error
    assert FAKE_SECRET not in result.stdout + result.stderr and FAKE_KEY_ID not in result.stdout + result.stderr
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket_name)["Contents"]}
    assert not any(k.startswith(("movielens/models/", "movielens/evaluations/")) for k in keys)


def test_report_and_recommendations_on_s3_keep_everything_in_the_bucket(
    mirror, workdir, s3_config, s3_endpoint, bucket_name
):
    mirror.publish("ml-latest-small", release_zip())
    small = ["--local-scheduler", "--rank", "4", "--max-iter", "5"]

    report = run_luigi(["Report", *small], s3_config, workdir)
    recommendations = run_luigi(["Recommendations", *small, "--top-n", "3"], s3_config, workdir)

    assert report.returncode == 0, explain(report)
    assert recommendations.returncode == 0, explain(recommendations)
    # The report ranks both models; Recommendations reads the ranking model back from the bucket.
    assert {"TunedEASE", "TrainedEASE", "TrainedALS", "EvaluatedRanking"} <= set(tasks_run(report.stderr))
    assert tasks_run(recommendations.stderr) == ["Recommendations"]
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")

    def body(key: str) -> bytes:
        return s3.get_object(Bucket=bucket_name, Key=f"movielens/{key}")["Body"].read()

    run = "ml-latest-small/user_random-0.2-seed42/biased_als-rank4-reg0.15-iter5"
    page = body(f"reports/{run}/{Recommendations().ease_model_id}/report.html").decode()
    assert page.count("<img") >= 4 and "biased_als-rank4-reg0.15-iter5" in page
    ranking_run = run.replace("biased_als-rank4-reg0.15-iter5", Recommendations().ease_model_id)
    table = pq.read_table(pa.BufferReader(body(f"recommendations/{ranking_run}/top3.parquet")))
    assert table.column_names == ["user", "rank", "item", "title", "score"]
    train = pq.read_table(pa.BufferReader(body(f"{SPLIT}/train.parquet")))
    assert table.num_rows == 3 * len(set(train.column("user").to_pylist()))
    assert set(table.column("rank").to_pylist()) == {1, 2, 3}
    assert list(workdir.iterdir()) == []
    for text in (report.stderr, recommendations.stderr, page):
        assert FAKE_SECRET not in text and FAKE_KEY_ID not in text
