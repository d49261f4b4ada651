"""The pipeline against a real central scheduler: luigid on 127.0.0.1, read back through its API."""

from __future__ import annotations

import fcntl
import json
import os
import re
import subprocess
import urllib.parse
import urllib.request

import pytest

from tests.conftest import BIN, background_process, run_command, run_luigi
from tests.fakes import release_zip


@pytest.fixture
def luigid(tmp_path):
    state = tmp_path / "luigid-state.pickle"
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(tmp_path / "none.cfg"))
    with background_process(
        lambda port: [str(BIN / "luigid"), "--address", "127.0.0.1", "--port", str(port), "--state-path", str(state)],
        env,
        ready="Scheduler starting up",  # logged once its socket is bound
    ) as port:
        yield port
    assert state.exists()  # a clean shutdown writes the scheduler's state


def test_two_runs_at_once_share_the_work_and_both_succeed(luigid, mirror, tmp_path, workdir, pipeline_config):
    mirror.publish("ml-latest-small", release_zip())
    config = pipeline_config(store={"root": tmp_path / "store"}, movielens={"base_url": mirror.base_url})
    command = [str(BIN / "movielens-als"), "--scheduler-host", "127.0.0.1", "--scheduler-port", str(luigid)]
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(config))
    runs = [
        subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600) for run in runs]

    assert [run.returncode for run in runs] == [0, 0], outputs
    log = "".join(out + err for out, err in outputs)
    started = re.findall(r"running   (\w+)\(", log)
    assert sorted(started) == ["BucketReady", "DownloadedZip", "EvaluatedRMSE", "SplitData", "TrainedALS"]
    assert all("metrics.json: " in out for out, _ in outputs)


def task_list(port: int, status: str) -> dict:
    query = urllib.parse.quote(json.dumps({"status": status}))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/task_list?data={query}", timeout=30) as response:
        return json.load(response)["response"]


def test_the_chain_reports_to_luigid(luigid, mirror, tmp_path, workdir, pipeline_config):
    mirror.publish("ml-latest-small", release_zip())
    config = pipeline_config(store={"root": tmp_path / "store"}, movielens={"base_url": mirror.base_url})

    result = run_luigi(
        ["EvaluatedRMSE", "--scheduler-host", "127.0.0.1", "--scheduler-port", str(luigid), "--strategy", "user_time"],
        config,
        workdir,
    )

    assert result.returncode == 0, result.stderr[-5000:]
    done = {task["name"]: task for task in task_list(luigid, "DONE").values()}
    assert set(done) == {"BucketReady", "DownloadedZip", "SplitData", "TrainedALS", "EvaluatedRMSE"}
    trained = done["TrainedALS"]
    assert trained["params"]["strategy"] == "user_time"
    assert trained["progress_percentage"] == 100
    assert trained["status_message"].startswith("model stored at ")
    assert trained["tracking_url"].startswith("http://")  # the Spark UI of the job
    assert done["DownloadedZip"]["progress_percentage"] == 100


def test_the_cron_entry_point_runs_against_luigid_and_logs_to_a_file(
    luigid, mirror, tmp_path, workdir, pipeline_config
):
    mirror.publish("ml-latest-small", release_zip())
    config = pipeline_config(store={"root": tmp_path / "store"}, movielens={"base_url": mirror.base_url})
    log = tmp_path / "logs" / "cron.log"

    result = run_command(
        [
            str(BIN / "movielens-als-cron"),
            "--log-file",
            str(log),
            "--scheduler-host",
            "127.0.0.1",
            "--scheduler-port",
            str(luigid),
            "--rank",
            "4",
        ],
        config,
        workdir,
    )

    assert result.returncode == 0, log.read_text()[-5000:]
    text = log.read_text()
    assert re.search(r"^\S+ starting: movielens-als --scheduler-host 127.0.0.1 .* --rank 4$", text, re.MULTILINE)
    assert "EvaluatedRMSE(" in text and "metrics.json: " in text
    assert text.rstrip().endswith("finished with exit code 0")
    assert {t["name"] for t in task_list(luigid, "DONE").values()} >= {"TrainedALS", "EvaluatedRMSE"}


def test_the_cron_entry_point_returns_the_pipelines_exit_code(mirror, tmp_path, workdir, pipeline_config):
    mirror.publish("ml-latest-small", release_zip(), published_md5="0" * 32)
    config = pipeline_config(store={"root": tmp_path / "store"}, movielens={"base_url": mirror.base_url})
    log = tmp_path / "cron.log"

    result = run_command(
        [str(BIN / "movielens-als-cron"), "--log-file", str(log), "--local-scheduler"], config, workdir
    )

    assert result.returncode == 30  # [retcode] task_failed
    assert "DownloadError: MD5 of" in log.read_text()
    assert log.read_text().rstrip().endswith("finished with exit code 30")


def test_the_cron_entry_point_does_not_overlap_itself(tmp_path, workdir, pipeline_config):
    lock = tmp_path / "cron.lock"
    log = tmp_path / "cron.log"
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a run that is still going holds it
        result = run_command(
            [str(BIN / "movielens-als-cron"), "--log-file", str(log), "--lock-file", str(lock)],
            pipeline_config(),
            workdir,
        )
    assert result.returncode == 10  # [retcode] already_running
    assert log.read_text().rstrip().endswith(f"a previous run still holds {lock}; not starting")
