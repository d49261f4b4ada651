"""The tasks in this process, without the luigi command: parameter ranges checked when a task is
made from code, DownloadedZip following the [movielens] section of the configuration, and the
progress bars shown on a terminal."""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import pty
import re
import struct
import sys
import termios
import zipfile
from collections.abc import Callable, Iterator

import luigi
import pytest

from movielens_als import ease
from movielens_als.ratings import rating_arrays
from movielens_als.releases import read_ratings, release
from pipeline import (
    DownloadedZip,
    EvaluatedRanking,
    EvaluatedRMSE,
    Recommendations,
    Report,
    TrainedALS,
    TrainedBPMF,
    TrainedEASE,
    TunedALS,
    TunedEASE,
    layout,
)
from pipeline.download import DownloadError
from tests.fakes import md5, release_zip


@pytest.fixture(autouse=True)
def fresh_tasks():
    """luigi hands out one cached instance per set of parameters, and a task keeps the store it
    first configured: each test makes its own."""
    luigi.task_register.Register.clear_instance_cache()
    yield
    luigi.task_register.Register.clear_instance_cache()


@pytest.mark.parametrize(
    "task, params, message",
    [
        (EvaluatedRMSE, {"max_iter": 0}, "--max-iter must be a whole number from 1 to 10000, not 0"),
        (EvaluatedRMSE, {"max_iter": 10_001}, "--max-iter must be a whole number from 1 to 10000, not 10001"),
        (Recommendations, {"top_n": 0}, "--top-n must be a whole number from 1 to 1000, not 0"),
        (Recommendations, {"top_n": 1001}, "--top-n must be a whole number from 1 to 1000, not 1001"),
        (
            TunedALS,
            {"ranks": [8, 0]},
            r"--ranks must be a non-empty list of values each a whole number from 1 to 10000",
        ),
        (TunedALS, {"reg_params": [-0.5]}, r"--reg-params must be a non-empty list of values each a finite number"),
        (TunedALS, {"reg_params": [float("inf")]}, r"--reg-params must be a non-empty list of values each a finite"),
        (TunedALS, {"max_iters": []}, r"--max-iters must be a non-empty list of values each a whole number from 1"),
        (TunedALS, {"ranks": ["8"]}, r"--ranks must be a non-empty list of values each a whole number"),
        (TunedEASE, {"l2s": [200, 0]}, r"--l2s must be a non-empty list of values each a finite number above 0"),
        (TunedEASE, {"positive_ratings": [6]}, r"--positive-ratings must be a non-empty list of values each a rating"),
        (TrainedEASE, {"max_items": 1}, "--max-items must be a whole number from 2 to 32768, not 1"),
        (TunedEASE, {"tune_items": 40_000}, "--tune-items must be a whole number from 2 to 32768, not 40000"),
        (Recommendations, {"recommender": "svd"}, "--recommender"),
    ],
)
def test_a_parameter_out_of_range_is_refused_when_the_task_is_made(task, params, message):
    with pytest.raises(ValueError, match=message):
        task(**params)


def test_the_grid_and_the_counts_accept_their_bounds():
    assert TunedALS(ranks=[1, 10_000], reg_params=[0], max_iters=[1, 10_000]).ranks == (1, 10_000)
    assert Recommendations(top_n=1000, max_iter=1).top_n == 1000
    assert TunedEASE(l2s=[1e-6], positive_ratings=[0.5, 5], max_items=32_768).max_items == 32_768


def test_luigid_shows_only_the_parameters_of_the_model_served():
    served = Recommendations(recommender="ease").shaping_params()
    assert {"l2s", "positive_ratings", "max_items", "top_n"} <= set(served)
    assert not {"rank", "reg_param", "model", "tuned"} & set(served)
    explicit = Recommendations(recommender="explicit").shaping_params()
    assert {"rank", "reg_param", "model", "tuned"} <= set(explicit)
    assert not {"l2s", "positive_ratings", "max_items", "ranks"} & set(explicit)


@pytest.fixture
def local_store(tmp_path, luigi_config):
    root = tmp_path / "store"
    luigi_config("store", "root", str(root))
    return root


def test_downloaded_zip_fetches_a_release_from_its_own_url(mirror, local_store, luigi_config):
    data = release_zip()
    (mirror.directory / "elsewhere").mkdir()
    (mirror.directory / "elsewhere" / "small-copy.zip").write_bytes(data)
    (mirror.directory / "elsewhere" / "small-copy.zip.md5").write_text(f"{md5(data)}  small-copy.zip\n")
    luigi_config("movielens", "base_url", f"{mirror.base_url}not-here/")
    luigi_config("movielens", "urls", json.dumps({"ml-latest-small": f"{mirror.base_url}elsewhere/small-copy.zip"}))

    assert luigi.build([DownloadedZip()], local_scheduler=True, log_level="WARNING")

    assert md5((local_store / "downloads" / "ml-latest-small.zip").read_bytes()) == md5(data)
    # The .md5 published beside that URL, then the zip; the base URL is never asked.
    assert mirror.requests == ["GET /elsewhere/small-copy.zip.md5", "GET /elsewhere/small-copy.zip"]


def test_downloaded_zip_gives_up_after_the_download_timeout_and_stores_nothing(mirror, local_store, luigi_config):
    mirror.publish("ml-latest-small", release_zip())
    luigi_config("movielens", "base_url", mirror.base_url)
    luigi_config("movielens", "download_timeout", "0")
    task = DownloadedZip()
    task.store.create_root()

    with pytest.raises(DownloadError, match=r"download of http://.*/ml-latest-small.zip did not finish within 0 s"):
        task.run()

    assert not task.complete()
    assert [p.name for p in (local_store / "downloads").iterdir()] == []


@contextlib.contextmanager
def stderr_on_a_terminal() -> Iterator[Callable[[], str]]:
    """Runs the block with stderr on a pseudo-terminal (set in the test itself: pytest's capture
    resets sys.stderr between a fixture and the test); yields what reads the screen so far."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))  # a new one has 0 columns
    end = "<end of the test's output>"
    with open(slave, "w", encoding="utf-8") as stderr:

        def screen() -> str:
            # Read up to a mark written last: what was written just before the terminal is
            # closed may never reach its other end.
            stderr.write(end)
            stderr.flush()
            received = b""
            while end.encode() not in received:
                received += os.read(master, 1 << 16)
            return received.decode().removesuffix(end)

        saved, sys.stderr = sys.stderr, stderr
        try:
            yield screen
        finally:
            sys.stderr = saved
            os.close(master)


# A tqdm bar as it is left when done: the count, the time spent < the time left, and the rate.
BAR_DONE = r"100%\|[^|]*\| {n}/{n} \[\d\d:\d\d<00:00, +[\d.]+ ?[kMG]?{unit}/s\]"


def test_a_download_on_a_terminal_shows_its_rate_and_time_left(mirror, local_store, luigi_config):
    data = release_zip()
    mirror.publish("ml-latest-small", data)
    luigi_config("movielens", "base_url", mirror.base_url)

    with stderr_on_a_terminal() as screen:
        assert luigi.build([DownloadedZip()], local_scheduler=True, log_level="WARNING")
        shown = screen()

    size = f"{len(data) / 1000:.3g}k"  # tqdm shows 3 significant digits
    assert re.search(r"ml-latest-small: " + BAR_DONE.format(n=re.escape(size), unit="B"), shown)


def test_a_download_logged_to_a_file_has_no_bar(mirror, local_store, luigi_config, capfd):
    mirror.publish("ml-latest-small", release_zip())
    luigi_config("movielens", "base_url", mirror.base_url)

    assert luigi.build([DownloadedZip()], local_scheduler=True, log_level="WARNING")

    err = capfd.readouterr().err
    assert "ml-latest-small:" not in err and "B/s" not in err and "\r" not in err


def test_recommendations_on_a_terminal_show_the_users_ranked_rate_and_time_left(local_store):
    task = Recommendations()
    task.store.create_root()
    data = release_zip()
    task.store.write_bytes(layout.download(task.dataset), data)
    train, _ = read_ratings(zipfile.ZipFile(io.BytesIO(data)), release(task.dataset))
    task.store.write_parquet(task.split_keys.train, train)
    [model] = ease.fit(*rating_arrays(train), 3.5, [50.0], task.max_items)
    task.store.write_files(task.split_keys.of(task.ease_model_id).model_dir, ease.to_files(model))

    with stderr_on_a_terminal() as screen:
        task.run()
        shown = screen()

    users = len(set(train.column("user").to_pylist()))
    assert task.complete()
    assert re.search(r"users ranked: " + BAR_DONE.format(n=users, unit=" users"), shown)


@pytest.mark.parametrize("bpmf_rmse, chosen", [(0.80, "bpmf-sweeps60"), (0.95, "als")])
def test_ranking_and_serving_use_the_rating_model_tuned_chose(local_store, bpmf_rmse, chosen):
    """With --tuned, EvaluatedRanking, Report and --recommender explicit judge or serve the model
    validation chose, as EvaluatedRMSE does, the Bayesian one included."""
    ranking, report = EvaluatedRanking(tuned=True), Report(tuned=True)
    served = Recommendations(tuned=True, recommender="explicit")
    store = ranking.store
    store.create_root()
    tuning = {"selected_by": "validation_rmse_calibrated", "best": {"validation_rmse_calibrated": 0.9}}
    store.write_json(ranking.split_keys.tuning(ranking.als_tuning_id), tuning)
    store.write_json(ranking.split_keys.of(ranking.bpmf_model_id).validation, {"validation_rmse": bpmf_rmse})

    picked = {task.rating_model().keys.model for task in (ranking, report, served)}

    assert picked == {"bpmf-sweeps60" if chosen != "als" else ranking.als_model_id}
    for task in (ranking, report, served):
        # The choice needs both validations; only the chosen model is trained, yielded by run().
        assert set(task.rating_model_requires()) == {"tuning", "bpmf_validation", "split"}
        assert type(task.trained_rating_model()) is (TrainedBPMF if chosen != "als" else TrainedALS)
    assert ranking.key.endswith(f"/ranking-vs-{ranking.als_model_id}-or-bpmf-sweeps60.json")
    assert f"/{ranking.als_model_id}-or-bpmf-sweeps60/" in served.key
