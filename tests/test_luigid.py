"""The pipeline against a real central scheduler: luigid on 127.0.0.1, read back through its API."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import urllib.parse
import urllib.request

import pytest

from tests.conftest import BIN, run_luigi
from tests.fakes import release_zip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def luigid(tmp_path):
    port = free_port()
    state = tmp_path / "luigid-state.pickle"
    proc = subprocess.Popen(
        [str(BIN / "luigid"), "--address", "127.0.0.1", "--port", str(port), "--state-path", str(state)],
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, LUIGI_CONFIG_PATH=str(tmp_path / "none.cfg")),
    )
    listening = threading.Event()
    log: list[str] = []

    def read_log():  # luigid logs this line once its socket is bound; the rest is drained
        for line in proc.stderr:
            log.append(line)
            if "Scheduler starting up" in line:
                listening.set()

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    try:
        assert listening.wait(60), "luigid did not start:\n" + "".join(log)
        yield port
    finally:
        proc.terminate()
        proc.wait(30)
        reader.join(10)
    assert state.exists()  # a clean shutdown writes the scheduler's state


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
