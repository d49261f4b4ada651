"""The test helpers that start processes leave none behind, whatever happens to the test."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.helpers import process_group, run_to_end


def background_sleep(pid_file: Path) -> list[str]:
    """A shell that starts a grandchild of the test (as luigi starts spark-submit) and waits."""
    return ["sh", "-c", f"sleep 300 & echo $! > {pid_file}; wait"]


def grandchild(pid_file: Path) -> int:
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text().strip()):
        assert time.monotonic() < deadline, "the shell never started its child"
        time.sleep(0.05)
    return int(pid_file.read_text())


def is_gone(pid: int, seconds: float = 10) -> bool:
    """Whether `pid` ends within `seconds`: no longer there, or a zombie its new parent has yet
    to reap."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return True
        except (ProcessLookupError, FileNotFoundError):
            return True
        time.sleep(0.05)
    return False


def test_a_command_that_times_out_is_stopped_with_everything_it_started(tmp_path):
    with pytest.raises(AssertionError, match=r"did not finish within 3 s"):
        run_to_end(background_sleep(tmp_path / "pid"), timeout=3)
    assert is_gone(grandchild(tmp_path / "pid"))


def test_a_process_group_is_stopped_when_the_test_fails_inside_it(tmp_path):
    with pytest.raises(ZeroDivisionError), process_group(background_sleep(tmp_path / "pid")) as shell:
        grandchild(tmp_path / "pid")
        1 / 0  # noqa: B018 -- a test failing while the process runs
    assert shell.returncode is not None
    assert is_gone(grandchild(tmp_path / "pid"))
