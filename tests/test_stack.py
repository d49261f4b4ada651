"""The docker compose stack's code paths, run for real without Docker: a Spark standalone
master and worker started from the installed pyspark, luigid with the stack's own
docker/luigi.cfg (state file and SQLite history in a temporary folder), S3 on moto's
server, and the very command the runner's crontab runs, with the environment
docker-compose.yml gives the runner, pointed at those processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pyspark
import pytest

from spark_jobs.session import EXECUTOR_WAIT_CONF
from tests.fakes import release_zip
from tests.helpers import (
    BIN,
    COMMAND_TIMEOUT,
    REPO,
    TASK_FAILED,
    TEST_SPARK,
    background_process,
    luigid_api,
    process_group,
    run_luigi,
    run_to_end,
    wait_until,
)

pytestmark = [pytest.mark.spark, pytest.mark.e2e]
SPARK_HOME = Path(pyspark.__file__).parent


def spark_env() -> dict[str, str]:
    return dict(os.environ, SPARK_HOME=str(SPARK_HOME), SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false")


def master_state(ui_port: int) -> dict:
    """What the master's web UI says of itself, its workers and its applications."""
    return json.load(urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=30))


@contextlib.contextmanager
def standalone_master() -> Iterator[tuple[str, int]]:
    """A standalone master on 127.0.0.1; yields its URL and its web UI's port."""
    with background_process(
        lambda port: [
            str(BIN / "spark-class"),
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--webui-port",
            str(port),
        ],
        spark_env(),
        ready="Bound MasterWebUI",
    ) as ui_port:
        yield master_state(ui_port)["url"], ui_port


@contextlib.contextmanager
def standalone_worker(master: tuple[str, int], work_dir: Path) -> Iterator[subprocess.Popen]:
    """A worker (2 cores, 2 GB) of `master`, yielded once the master lists it as alive; its
    process is the worker's JVM (spark-class execs it), which a test may kill. Stopped with its
    process group, the executors it started included."""
    master_url, ui_port = master
    log = work_dir.with_suffix(".log")
    command = [
        str(BIN / "spark-class"),
        "org.apache.spark.deploy.worker.Worker",
        master_url,
        "--host",
        "127.0.0.1",
        "--cores",
        "2",
        "--memory",
        "2g",
        "--webui-port",
        "0",
        "--work-dir",
        str(work_dir),
    ]
    known = {worker["id"] for worker in master_state(ui_port)["workers"]}
    with open(log, "w") as output, process_group(command, env=spark_env(), stdout=output, stderr=output) as worker:
        wait_until(
            lambda: any(w["id"] not in known and w["state"] == "ALIVE" for w in master_state(ui_port)["workers"]),
            f"the worker to register with {master_url} (its log: {log})",
            worker,
        )
        yield worker


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory):
    """A standalone master and one worker on 127.0.0.1."""
    with standalone_master() as master, standalone_worker(master, tmp_path_factory.mktemp("spark-work")):
        yield master


@pytest.fixture
def stack_env(tmp_path, s3_endpoint, bucket_name, class_archive_dir, spark_cluster):
    """The runner's environment in docker-compose.yml, with the hosts made local."""
    home = tmp_path / "home"
    (home / ".cache").mkdir(parents=True)
    (home / ".cache" / "movielens-als").symlink_to(class_archive_dir)  # the session's JVM class archive
    return dict(
        os.environ,
        LUIGI_CONFIG_PATH=str(REPO / "docker" / "luigi.cfg"),
        LUIGID_HOST="127.0.0.1",
        LUIGID_STATE_DIR=str(tmp_path / "luigid"),
        SPARK_MASTER_URL=spark_cluster[0],
        S3_ENDPOINT_URL=s3_endpoint,
        MOVIELENS_BUCKET=bucket_name,
        SPARK_DRIVER_MEMORY="1g",
        SPARK_EXECUTOR_MEMORY="1g",
        SPARK_SHUFFLE_PARTITIONS="2",
        SPARK_EXECUTOR_WAIT_SECONDS="60",
        SPARK_LOCAL_IP="127.0.0.1",  # the address the driver finds for itself, as in a container
        HOME=str(home),
        PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}",  # the image's scripts are on its PATH
    )


def crontab_command() -> str:
    [line] = [line for line in (REPO / "docker/crontab").read_text().splitlines() if line and line[0].isdigit()]
    return line.split(None, 5)[5]


def test_the_nightly_cron_command_runs_the_chain_on_the_cluster_through_luigid(
    stack_env, spark_cluster, mirror, tmp_path, workdir, s3_endpoint, bucket_name
):
    mirror.publish("ml-latest-small", release_zip())
    (tmp_path / "luigid").mkdir()
    with background_process(
        lambda port: [str(BIN / "luigid"), "--address", "127.0.0.1", "--port", str(port)],
        stack_env,
        ready="Scheduler starting up",
    ) as luigid_port:
        env = dict(stack_env, LUIGID_PORT=str(luigid_port), MOVIELENS_BASE_URL=mirror.base_url)
        # The crontab's own command line, run by a shell as docker/cron.py runs it.
        result = run_to_end(
            ["sh", "-c", f"{crontab_command()} --rank 4"],
            timeout=900,
            cwd=workdir,
            env=env,
        )
        log_file = tmp_path / "home" / "logs" / "nightly.log"
        log = log_file.read_text() if log_file.exists() else ""
        assert result.returncode == 0, result.stdout + result.stderr + log[-6000:]
        done = {task["name"]: task for task in luigid_api(luigid_port, "task_list", status="DONE").values()}

    assert log.rstrip().endswith("finished with exit code 0")
    assert set(done) == {"BucketReady", "DownloadedZip", "SplitData", "TrainedALS", "EvaluatedRMSE"}
    assert done["TrainedALS"]["progress_percentage"] == 100
    assert done["SplitData"]["status_message"].startswith("writing ")

    # luigid wrote its state on shutdown, and its task history as it went.
    assert (tmp_path / "luigid" / "state.pickle").exists()
    with sqlite3.connect(tmp_path / "luigid" / "history.db") as db:
        history = set(
            db.execute(
                "SELECT tasks.name, task_events.event_name FROM tasks "
                "JOIN task_events ON task_events.task_id = tasks.id"
            )
        )
    assert {(name, "DONE") for name in done} <= history

    # The fit ran on the standalone cluster, in client mode (the evaluation needs no Spark).
    master = master_state(spark_cluster[1])
    applications = [app["name"].split("_")[0] for app in master["completedapps"]]
    assert applications == ["TrainedALS"]

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket_name)["Contents"]}
    assert any(key.endswith("/metrics.json") for key in keys)
    assert not any(workdir.iterdir())


def test_an_executor_whose_blas_library_is_missing_is_warned_of(spark_cluster, capsys):
    """The driver here names no library; the executor's JVM option names one its machine lacks,
    so netlib falls back to its Java BLAS there: the ALS jobs' report says so in a warning."""
    from pyspark.sql import SparkSession

    from spark_jobs import als
    from spark_jobs.session import ExecutorWatch

    missing = "/nowhere/libalsblas.so"
    spark = (
        SparkSession.builder.master(spark_cluster[0])
        .appName("executors-blas")
        .config("spark.executor.extraJavaOptions", f"-D{als.NATIVE_LIB_PATH}={missing}")
        .config("spark.executor.memory", "1g")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.ui.enabled", "false")
        .config("spark.movielens.executorWaitSeconds", "60")
        .getOrCreate()
    )
    try:
        ExecutorWatch(spark.sparkContext).wait_for_first_executor()
        als.report_blas(spark)
    finally:
        spark.stop()
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, warnings
    assert f"BLAS (netlib's Java BLAS; {missing} did not load), not with " in warnings[0]
    assert "as the driver names" in warnings[0]


# How long a job may wait with no executor in the tests of a lost worker (the default is 120 s).
EXECUTOR_WAIT = 20
# The fit a worker is killed in: long enough that the kill lands in it.
FIT = ["TrainedALS", "--local-scheduler", "--rank", "8", "--max-iter", "30"]


@pytest.fixture
def cluster_config(tmp_path, mirror, pipeline_config):
    """Writes a luigi.cfg for the cluster at `master_url`, with a local store and the mirror."""
    mirror.publish("ml-latest-small", release_zip())

    def write(master_url: str, store: str = "store", executor_wait: int = EXECUTOR_WAIT) -> Path:
        conf = f"{TEST_SPARK['conf']}|{EXECUTOR_WAIT_CONF}={executor_wait}"
        return pipeline_config(
            store={"root": tmp_path / store},
            movielens={"base_url": mirror.base_url},
            spark={"master": master_url, "conf": conf, "driver_memory": "1g", "executor_memory": "512m"},
        )

    return write


def model_flags(tmp_path: Path, store: str = "store") -> list[Path]:
    return list((tmp_path / store / "models").rglob("_SUCCESS"))


def test_a_worker_killed_mid_fit_fails_the_job_in_bounded_time_and_a_rerun_completes(cluster_config, tmp_path, workdir):
    with standalone_master() as master:
        config = cluster_config(master[0])
        split = run_luigi(["SplitData", "--local-scheduler"], config, workdir)
        assert split.returncode == 0, split.stderr[-3000:]
        log = tmp_path / "killed-run.log"
        env = dict(os.environ, LUIGI_CONFIG_PATH=str(config), SPARK_LOCAL_IP="127.0.0.1")
        luigi = [str(BIN / "luigi"), "--module", "pipeline", *FIT]
        with (
            standalone_worker(master, tmp_path / "worker-1") as worker,
            open(log, "w") as output,
            process_group(luigi, cwd=workdir, env=env, stdout=output, stderr=output) as run,
        ):
            wait_until(lambda: "progress: 20% fitting " in log.read_text(), "the fit to start", run, seconds=300)
            worker.kill()  # SIGKILL to the worker's JVM; its executor follows it
            killed_at = time.monotonic()
            code = run.wait(EXECUTOR_WAIT + 300)
            elapsed = time.monotonic() - killed_at
        text = log.read_text()
        print(f"the run failed {elapsed:.1f} s after the worker was killed")

        assert code == TASK_FAILED, text[-5000:]
        assert f"NoExecutorError: no Spark executor is left for this job on the master {master[0]}" in text
        assert f"spark.movielens.executorWaitSeconds sets how long to wait (now {EXECUTOR_WAIT} s)" in text
        assert EXECUTOR_WAIT <= elapsed < EXECUTOR_WAIT + 60, elapsed
        assert model_flags(tmp_path) == []

        with standalone_worker(master, tmp_path / "worker-2"):
            rerun = run_luigi(FIT, config, workdir)
    assert rerun.returncode == 0, rerun.stderr[-5000:]
    [flag] = model_flags(tmp_path)
    assert (flag.parent / "model.json").is_file()


def test_a_worker_back_within_the_wait_takes_the_fit_over_and_the_model_is_the_same(cluster_config, tmp_path, workdir):
    """As when the compose stack's restart policy restarts a worker whose JVM died: the fit waits
    for an executor, gets one on the new worker, and ends with the model an uninterrupted fit makes."""
    with standalone_master() as master, standalone_worker(master, tmp_path / "worker-1") as worker:
        reference = run_luigi(FIT, cluster_config(master[0], "reference", executor_wait=600), workdir)
        assert reference.returncode == 0, reference.stderr[-5000:]
        config = cluster_config(master[0], "resumed", executor_wait=600)
        log = tmp_path / "resumed-run.log"
        env = dict(os.environ, LUIGI_CONFIG_PATH=str(config), SPARK_LOCAL_IP="127.0.0.1")
        luigi = [str(BIN / "luigi"), "--module", "pipeline", *FIT]
        with open(log, "w") as output, process_group(luigi, cwd=workdir, env=env, stdout=output, stderr=output) as run:
            wait_until(lambda: "progress: 20% fitting " in log.read_text(), "the fit to start", run, seconds=300)
            worker.kill()
            with standalone_worker(master, tmp_path / "worker-2"):
                code = run.wait(COMMAND_TIMEOUT)
    text = log.read_text()

    assert code == 0, text[-5000:]
    assert "NoExecutorError" not in text
    [flag] = model_flags(tmp_path, "resumed")
    [reference_flag] = model_flags(tmp_path, "reference")
    for table in ("user_factors.parquet", "item_factors.parquet"):
        assert pq.read_table(flag.parent / table).equals(pq.read_table(reference_flag.parent / table)), table
