"""SIGKILL during each task, then a rerun: the store never holds an output that looks
complete but is not, and the rerun ends with the same result as an uninterrupted run.

The kill is synchronised, not timed: an S3 server (moto behind a WSGI middleware) or the
download mirror holds a chosen request, the test sees it arrive, kills the whole process
group of the luigi command (worker, spark-submit, JVM and Spark driver), and only then
lets the held request fail, as it would when the machine running the worker dies."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from tests.fakes import md5, release_zip
from tests.helpers import BIN, TEST_SPARK, Mirror, process_group, run_luigi, serving, tasks_run, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.spark]

SPLIT = "splits/ml-latest-small/user_random-0.2-seed42"
MODEL = "models/ml-latest-small/user_random-0.2-seed42/biased_als-rank32-reg0.15-iter15"
METRICS = "evaluations/ml-latest-small/user_random-0.2-seed42/biased_als-rank32-reg0.15-iter15/metrics.json"
RESULT_FILES = [
    f"{SPLIT}/train.parquet",
    f"{SPLIT}/test.parquet",
    f"{MODEL}/user_factors.parquet",
    f"{MODEL}/item_factors.parquet",
]
# What differs between two runs by design: when, and where.
VOLATILE = {"evaluated_at", "model", "test"}


class Tripwire:
    """WSGI middleware: holds the first request of `method` whose path ends with `suffix`,
    sets `reached`, and after `release` answers it with an error without storing anything."""

    def __init__(self, app):
        self.app = app
        self.target: tuple[str, str] | None = None
        self.reached = threading.Event()
        self.release = threading.Event()

    def __call__(self, environ, start_response):
        if self.target and (environ["REQUEST_METHOD"], True) == (
            self.target[0],
            environ["PATH_INFO"].endswith(self.target[1]),
        ):
            self.target = None
            self.reached.set()
            self.release.wait(120)
            start_response("500 Internal Server Error", [("Content-Length", "0")])
            return [b""]
        return self.app(environ, start_response)


@pytest.fixture
def tripwire_s3(s3_endpoint):  # s3_endpoint: the fake credentials in the environment
    tripwire = Tripwire(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, tripwire, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield tripwire, f"http://127.0.0.1:{server.server_port}"
    tripwire.release.set()
    server.shutdown()
    thread.join()


class PausingMirror(http.server.SimpleHTTPRequestHandler):
    """Serves the mirror folder; a GET of the zip sends half of it, then waits for the test.
    Each test serves a subclass with events of its own."""

    reached: threading.Event
    release: threading.Event

    def do_GET(self):
        if not self.path.endswith(".zip") or self.reached.is_set():
            return super().do_GET()
        body = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.reached.set()
        self.release.wait(120)
        self.close_connection = True

    def log_message(self, *args):
        pass


RUN = ["EvaluatedRMSE", "--local-scheduler"]


def kill_when(reached: threading.Event, config: Path, workdir: Path, log: Path) -> None:
    """Runs the pipeline until `reached` is set, then SIGKILLs its whole process group (worker,
    spark-submit, JVM), as when its machine dies. The group is stopped also when it never
    gets there, and the test then fails with the end of its log."""
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(config))
    deadline = time.monotonic() + 300
    with (
        open(log, "w") as log_file,
        process_group(
            [str(BIN / "luigi"), "--module", "pipeline", *RUN],
            cwd=workdir,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        ) as pipeline,
    ):
        while not reached.wait(0.2) and pipeline.poll() is None and time.monotonic() < deadline:
            pass
        got_there = reached.is_set()
        if got_there:
            os.killpg(pipeline.pid, signal.SIGKILL)
    assert got_there, f"the pipeline never reached the request it was to be killed at:\n{log.read_text()[-5000:]}"


def rerun(config: Path, workdir: Path) -> list[str]:
    """Runs the pipeline to the end; returns the tasks it ran."""
    result = run_luigi(RUN, config, workdir)
    assert result.returncode == 0, result.stderr[-5000:]
    return tasks_run(result.stderr)


def s3_keys(endpoint: str, bucket: str) -> set[str]:
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    return {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}


def read_result(endpoint: str, bucket: str) -> tuple[dict, dict]:
    """metrics.json without the fields that differ by design, and the data files' tables."""
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")

    def body(key):
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    metrics = {k: v for k, v in json.loads(body(METRICS)).items() if k not in VOLATILE}
    tables = {key: pq.read_table(pa.BufferReader(body(key))) for key in RESULT_FILES}
    return metrics, tables


@pytest.fixture
def release(mirror):
    data = release_zip()
    mirror.publish("ml-latest-small", data)
    return data


@pytest.fixture
def s3_pipeline(tripwire_s3, release, mirror, pipeline_config, bucket_name):
    _, endpoint = tripwire_s3
    return pipeline_config(
        store={"root": f"s3://{bucket_name}"},
        s3={"endpoint_url": endpoint, "region_name": "us-east-1"},
        movielens={"base_url": mirror.base_url},
    )


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, s3_endpoint, class_archive_dir):
    """The result of one run nobody interrupts, on the same generated release."""
    directory = tmp_path_factory.mktemp("mirror")
    Mirror(directory, "").publish("ml-latest-small", release_zip())
    with serving(directory) as base_url:
        config = write_config(
            tmp_path_factory.mktemp("config") / "luigi.cfg",
            store={"root": "s3://reference-run"},
            s3={"endpoint_url": s3_endpoint, "region_name": "us-east-1"},
            movielens={"base_url": base_url},
            spark=TEST_SPARK,
            spark_driver={"class_archive_dir": class_archive_dir},
        )
        rerun(config, tmp_path_factory.mktemp("work"))
    return read_result(s3_endpoint, "reference-run")


CHAIN = ["BucketReady", "DownloadedZip", "SplitData", "TrainedALS", "EvaluatedRMSE"]


@pytest.mark.parametrize(
    "killed_task, method, path, complete_before, incomplete",
    [
        ("DownloadedZip", "PUT", "/downloads/ml-latest-small.zip", [], ["downloads/ml-latest-small.zip"]),
        ("SplitData", "PUT", f"/{SPLIT}/test.parquet", ["downloads/ml-latest-small.zip"], [f"{SPLIT}/_SUCCESS"]),
        (
            "TrainedALS",
            "PUT",
            f"/{MODEL}/item_factors.parquet",
            [f"{SPLIT}/_SUCCESS"],
            [f"{MODEL}/_SUCCESS", f"{MODEL}/model.json"],
        ),
    ],
    ids=["DownloadedZip", "SplitData", "TrainedALS"],
)
def test_a_killed_task_leaves_nothing_that_looks_complete_and_a_rerun_finishes_only_what_is_missing(
    tripwire_s3,
    s3_pipeline,
    mirror,
    tmp_path,
    workdir,
    bucket_name,
    uninterrupted,
    killed_task,
    method,
    path,
    complete_before,
    incomplete,
):
    tripwire, endpoint = tripwire_s3
    tripwire.target = (method, path)

    kill_when(tripwire.reached, s3_pipeline, workdir, tmp_path / "killed-run.log")
    tripwire.release.set()

    keys = s3_keys(endpoint, bucket_name)
    assert set(complete_before) <= keys
    assert not set(incomplete) & keys
    assert METRICS not in keys

    downloads_before = len(mirror.downloads())
    ran = rerun(s3_pipeline, workdir)

    # The rerun starts at the killed task: what was complete is neither redone nor downloaded again.
    assert ran == CHAIN[CHAIN.index(killed_task) :]
    assert len(mirror.downloads()) - downloads_before == (1 if killed_task == "DownloadedZip" else 0)

    metrics, tables = read_result(endpoint, bucket_name)
    expected_metrics, expected_tables = uninterrupted
    assert metrics["params"] == expected_metrics["params"]
    for name in ("rmse", "mae", "n_test", "coverage", "rmse_covered"):
        assert metrics[name] == pytest.approx(expected_metrics[name], abs=1e-9), name
    assert metrics["baselines"] == expected_metrics["baselines"]
    assert metrics["ranking"] == expected_metrics["ranking"]
    for key, table in tables.items():
        assert table.equals(expected_tables[key]), key


def test_a_download_killed_mid_body_stores_nothing_on_the_local_store(
    release, mirror, pipeline_config, tmp_path, workdir
):
    pausing = type("PausingOfThisTest", (PausingMirror,), {"reached": threading.Event(), "release": threading.Event()})
    root = tmp_path / "store"
    with serving(mirror.directory, pausing) as pausing_url:
        config = pipeline_config(store={"root": root}, movielens={"base_url": pausing_url})
        try:
            kill_when(pausing.reached, config, workdir, tmp_path / "killed-run.log")
        finally:
            pausing.release.set()

    stored = [p.name for p in (root / "downloads").iterdir()]
    assert "ml-latest-small.zip" not in stored
    assert all(name.endswith(".partial") for name in stored)  # at most the killed writer's temporary file

    ran = rerun(pipeline_config(store={"root": root}, movielens={"base_url": mirror.base_url}), workdir)
    assert ran == CHAIN[1:]  # the folder was ready; the download starts again
    assert md5((root / "downloads" / "ml-latest-small.zip").read_bytes()) == md5(release)
