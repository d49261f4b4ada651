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
import urllib.request
from pathlib import Path

import boto3
import pyspark
import pytest

from tests.fakes import release_zip
from tests.helpers import BIN, REPO, background_process, luigid_api, run_to_end

pytestmark = [pytest.mark.spark, pytest.mark.e2e]
SPARK_HOME = Path(pyspark.__file__).parent


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory):
    """A standalone master and one worker (2 cores, 2 GB) on 127.0.0.1."""
    env = dict(os.environ, SPARK_HOME=str(SPARK_HOME), SPARK_MASTER_OPTS="-Dspark.master.rest.enabled=false")
    spark_class = str(BIN / "spark-class")
    with contextlib.ExitStack() as stack:
        ui_port = stack.enter_context(
            background_process(
                lambda port: [
                    spark_class,
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--webui-port",
                    str(port),
                ],
                env,
                ready="Bound MasterWebUI",
            )
        )
        master_url = json.load(urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=30))["url"]
        stack.enter_context(
            background_process(
                lambda port: [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    master_url,
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    "2",
                    "--memory",
                    "2g",
                    "--webui-port",
                    str(port),
                    "--work-dir",
                    str(tmp_path_factory.mktemp("spark-work")),
                ],
                env,
                ready="Successfully registered with master",
            )
        )
        yield master_url, ui_port


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
    master = json.load(urllib.request.urlopen(f"http://127.0.0.1:{spark_cluster[1]}/json/", timeout=30))
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
    from spark_jobs.session import wait_for_executors

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
        wait_for_executors(spark)
        als.report_blas(spark)
    finally:
        spark.stop()
    warnings = [line for line in capsys.readouterr().out.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1, warnings
    assert f"BLAS (netlib's Java BLAS; {missing} did not load), not with " in warnings[0]
    assert "as the driver names" in warnings[0]
