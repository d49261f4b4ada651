"""docker/healthcheck.py's verdicts where a service is not ready. That every service turns
healthy in its container is proven by tests/test_stack_containers.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import BIN, REPO, background_process, free_port

HEALTHCHECK = str(REPO / "docker" / "healthcheck.py")


def check(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, HEALTHCHECK, *args],
        env={**os.environ, **env},
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_luigid_that_does_not_answer_is_unhealthy():
    result = check("luigid", LUIGID_PORT=str(free_port()))
    assert result.returncode == 1
    assert "Connection refused" in result.stdout


@pytest.mark.e2e
def test_luigid_that_answers_is_healthy(tmp_path):
    with background_process(
        lambda port: [str(BIN / "luigid"), "--address", "127.0.0.1", "--port", str(port)],
        dict(os.environ, LUIGI_CONFIG_PATH=str(tmp_path / "none.cfg")),
        ready="Scheduler starting up",
    ) as port:
        result = check("luigid", LUIGID_PORT=str(port))
    assert result.returncode == 0, result.stdout


def test_an_unknown_service_is_a_usage_error():
    result = check("minio")
    assert result.returncode == 2
    assert "usage: healthcheck.py luigid|spark-master|spark-worker|runner" in result.stderr
