"""The pipeline against a real central scheduler: luigid on 127.0.0.1, read back through its API."""

from __future__ import annotations

import configparser
import contextlib
import fcntl
import os
import re
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from luigi.rpc import RemoteScheduler

from pipeline import EvaluatedRMSE
from pipeline.cli import _held_by_another_worker
from tests.fakes import release_zip
from tests.helpers import (
    ALREADY_RUNNING,
    BIN,
    COMMAND_TIMEOUT,
    NOT_RUN,
    TASK_FAILED,
    QuietHandler,
    background_process,
    free_port,
    luigid_api,
    process_group,
    run_command,
    run_luigi,
    serving,
    tasks_run,
    wait_until,
)

pytestmark = [pytest.mark.e2e, pytest.mark.spark]
# What movielens-als says when another worker runs tasks it needs, before it checks again.
WAITING = "another worker is running tasks this run needs"
CHAIN = ["BucketReady", "DownloadedZip", "SplitData", "TrainedALS", "EvaluatedRMSE"]


@contextlib.contextmanager
def running_luigid(state_dir: Path, port: int | None = None, **config: dict[str, str]) -> Iterator[int]:
    """luigid on 127.0.0.1 (on `port`, else a free one) with `config` as its luigi.cfg
    sections; yields its port, stops it cleanly, and checks it wrote its state as a clean
    shutdown does."""
    state = state_dir / "luigid-state.pickle"
    luigid_config = state_dir / "luigid.cfg"
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_dict(config)
    with open(luigid_config, "w") as f:
        parser.write(f)
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(luigid_config))
    with background_process(
        lambda free: [
            *(str(BIN / "luigid"), "--address", "127.0.0.1", "--port", str(port or free)),
            *("--state-path", str(state)),
        ],
        env,
        ready="Scheduler starting up",  # logged once its socket is bound
    ) as free:
        yield port or free
    assert state.exists()


@pytest.fixture
def luigid(tmp_path) -> Iterator[int]:
    with running_luigid(tmp_path) as port:
        yield port


class HeldMirror:
    """A mirror whose zip downloads are held back until `release` is set; `downloads` lists
    the zip downloads it was asked for."""

    def __init__(self):
        self.reached, self.release, self.downloads = threading.Event(), threading.Event(), []

    def handler(self):
        held = self

        class Holding(QuietHandler):
            def do_GET(self):
                if self.path.endswith(".zip"):
                    held.downloads.append(self.path)
                    held.reached.set()
                    held.release.wait(120)
                return super().do_GET()

        return Holding


@pytest.fixture
def held_mirror(mirror) -> Iterator[tuple[HeldMirror, str]]:
    mirror.publish("ml-latest-small", release_zip())
    held = HeldMirror()
    with serving(mirror.directory, held.handler()) as base_url:
        try:
            yield held, base_url
        finally:
            held.release.set()


@pytest.mark.parametrize(
    "command, second_exit_code",
    [
        ([str(BIN / "movielens-als")], 0),  # waits for the other worker, then finds metrics.json
        ([str(BIN / "luigi"), "--module", "pipeline", "EvaluatedRMSE"], ALREADY_RUNNING),
    ],
    ids=["movielens-als", "luigi"],
)
def test_two_runs_with_different_command_lines_share_the_tasks_through_luigid(
    luigid, held_mirror, tmp_path, workdir, pipeline_config, command, second_exit_code
):
    held, base_url = held_mirror
    config = pipeline_config(store={"root": tmp_path / "store"}, movielens={"base_url": base_url})
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(config))
    scheduler = ["--scheduler-host", "127.0.0.1", "--scheduler-port", str(luigid)]
    # Another command line, and no pid lock: only luigid can keep the second run from redoing the work.
    commands = [[*command, *scheduler], [*command, *scheduler, "--no-lock"]]
    logs = [tmp_path / "first.log", tmp_path / "second.log"]

    with contextlib.ExitStack() as stack:

        def start(argv: list[str], log: Path) -> subprocess.Popen:
            output = stack.enter_context(open(log, "w"))
            return stack.enter_context(process_group(argv, cwd=workdir, env=env, stdout=output, stderr=output))

        first = start(commands[0], logs[0])
        wait_until(held.reached.is_set, "the first run never started its download", first)
        # DownloadedZip is now running in the first run's worker: the second run must not redo it.
        second = start(commands[1], logs[1])
        if second_exit_code == ALREADY_RUNNING:
            second.wait(120)
        else:
            wait_until(lambda: WAITING in logs[1].read_text(), "the second run never waited", second)
        held.release.set()
        exit_codes = [first.wait(COMMAND_TIMEOUT), second.wait(COMMAND_TIMEOUT)]

    outputs = [log.read_text() for log in logs]
    assert exit_codes == [0, second_exit_code], "\n---\n".join(text[-4000:] for text in outputs)
    assert sorted(tasks_run(outputs[0]) + tasks_run(outputs[1])) == sorted(CHAIN)  # each task once, in either
    assert held.downloads == ["/ml-latest-small.zip"]
    assert {task["name"] for task in luigid_api(luigid, "task_list", status="DONE").values()} == set(CHAIN)
    if second_exit_code == ALREADY_RUNNING:
        assert tasks_run(outputs[1]) == [] and "were being run by another worker" in outputs[1]
    else:
        assert all("metrics.json: " in text for text in outputs)


def test_movielens_als_waits_for_a_task_whose_output_exists_but_that_another_worker_has_not_finished(
    luigid, held_mirror, tmp_path, workdir, pipeline_config
):
    """The window between a task writing its output and its worker telling luigid it is done
    (for TrainedALS: the Spark application's shutdown, seconds). A run that looks then finds the
    output, while luigid still holds the task as running and will not schedule what follows it.
    Made here without timing: the first run's download is held while the zip is already stored."""
    held, base_url = held_mirror
    root = tmp_path / "store"
    config = pipeline_config(store={"root": root}, movielens={"base_url": base_url})
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(config))
    scheduler = ["--scheduler-host", "127.0.0.1", "--scheduler-port", str(luigid)]
    logs = [tmp_path / "first.log", tmp_path / "second.log"]

    with contextlib.ExitStack() as stack:

        def start(argv: list[str], log: Path) -> subprocess.Popen:
            output = stack.enter_context(open(log, "w"))
            return stack.enter_context(process_group(argv, cwd=workdir, env=env, stdout=output, stderr=output))

        first = start([str(BIN / "movielens-als"), *scheduler], logs[0])
        wait_until(held.reached.is_set, "the first run never started its download", first)
        (root / "downloads").mkdir(parents=True, exist_ok=True)
        (root / "downloads" / "ml-latest-small.zip").write_bytes(release_zip())  # as the first worker stores it
        second = start([str(BIN / "movielens-als"), *scheduler, "--no-lock"], logs[1])
        # Until the second run has decided, with DownloadedZip still running in the first: it waits, or
        # (the failure) exits. Released any earlier, the first could finish first and hide the failure.
        wait_until(lambda: second.poll() is not None or WAITING in logs[1].read_text(), "the second run hung", first)
        held.release.set()
        exit_codes = [first.wait(COMMAND_TIMEOUT), second.wait(COMMAND_TIMEOUT)]

    outputs = [log.read_text() for log in logs]
    assert exit_codes == [0, 0], "\n---\n".join(text[-4000:] for text in outputs)
    assert sorted(tasks_run(outputs[0]) + tasks_run(outputs[1])) == sorted(CHAIN)
    assert "metrics.json: " in outputs[1]


def test_a_task_another_live_worker_has_scheduled_is_held_even_between_its_tasks(luigid):
    """Between two of another worker's tasks none is RUNNING, yet it will run the next: a run that
    looks then must wait, not exit. This process's own workers (one per pass of luigi) hold nothing."""
    scheduler = RemoteScheduler(f"http://127.0.0.1:{luigid}/")
    evaluation = EvaluatedRMSE()
    split = evaluation.requires()["split"]
    ours, other = "Worker(ours)", "Worker(other)"
    scheduler.add_worker(ours, {"host": socket.gethostname(), "pid": os.getpid()})
    scheduler.add_worker(other, {"host": "elsewhere", "pid": os.getpid()})

    scheduler.add_task(worker=ours, task_id=split.task_id, status="PENDING", runnable=True)
    assert not _held_by_another_worker(evaluation, scheduler)
    scheduler.add_task(worker=other, task_id=split.task_id, status="PENDING", runnable=True)
    assert _held_by_another_worker(evaluation, scheduler)  # scheduled by the other, not started
    assert scheduler.get_work(worker=other)["task_id"] == split.task_id
    assert _held_by_another_worker(evaluation, scheduler)  # running in the other
    scheduler.add_task(worker=other, task_id=split.task_id, status="DONE")
    assert not _held_by_another_worker(evaluation, scheduler)


def test_a_task_luigid_has_disabled_is_not_run_and_the_command_exits_25(mirror, tmp_path, workdir, pipeline_config):
    config = pipeline_config(store={"root": tmp_path / "store"}, movielens={"base_url": mirror.base_url})
    # luigid disables a task after retry_count failures; until disable_persist ends, no worker may run it.
    with running_luigid(tmp_path, scheduler={"retry_count": "1"}) as port:
        args = ["DownloadedZip", "--scheduler-host", "127.0.0.1", "--scheduler-port", str(port)]
        failed = run_luigi(args, config, workdir)  # nothing published yet: HTTP 404
        mirror.publish("ml-latest-small", release_zip())
        requests_before = list(mirror.requests)
        refused = run_luigi(args, config, workdir)
        disabled = {task["name"] for task in luigid_api(port, "task_list", status="DISABLED").values()}

    assert failed.returncode == TASK_FAILED, failed.stderr[-3000:]
    assert refused.returncode == NOT_RUN, refused.stderr[-3000:]  # [retcode] not_run
    assert disabled == {"DownloadedZip"}
    assert tasks_run(refused.stderr) == [] and mirror.requests == requests_before
    assert not (tmp_path / "store" / "downloads").exists()


def test_the_chain_reports_to_luigid(luigid, mirror, tmp_path, workdir, pipeline_config):
    mirror.publish("ml-latest-small", release_zip())
    config = pipeline_config(store={"root": tmp_path / "store"}, movielens={"base_url": mirror.base_url})

    result = run_luigi(
        ["EvaluatedRMSE", "--scheduler-host", "127.0.0.1", "--scheduler-port", str(luigid), "--strategy", "user_time"],
        config,
        workdir,
    )

    assert result.returncode == 0, result.stderr[-5000:]
    done = {task["name"]: task for task in luigid_api(luigid, "task_list", status="DONE").values()}
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
    assert {t["name"] for t in luigid_api(luigid, "task_list", status="DONE").values()} >= {
        "TrainedALS",
        "EvaluatedRMSE",
    }


def test_the_cron_entry_point_returns_the_pipelines_exit_code(mirror, tmp_path, workdir, pipeline_config):
    mirror.publish("ml-latest-small", release_zip(), published_md5="0" * 32)
    config = pipeline_config(store={"root": tmp_path / "store"}, movielens={"base_url": mirror.base_url})
    log = tmp_path / "cron.log"

    result = run_command(
        [str(BIN / "movielens-als-cron"), "--log-file", str(log), "--local-scheduler"], config, workdir
    )

    assert result.returncode == TASK_FAILED
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
    assert result.returncode == ALREADY_RUNNING
    assert log.read_text().rstrip().endswith(f"a previous run still holds {lock}; not starting")


def test_luigid_restarted_while_a_chain_runs_the_run_carries_on_and_the_history_survives(
    held_mirror, tmp_path, workdir, pipeline_config
):
    """luigid stopped (cleanly, as `docker compose restart` stops it) while the run's download is
    in flight, and started again on its port before the download ends: the worker reports to the
    new luigid, which read the old one's state, and the chain completes; the task history, a
    SQLite file, holds the events of both."""
    held, base_url = held_mirror
    config = pipeline_config(store={"root": tmp_path / "store"}, movielens={"base_url": base_url})
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(config))
    history = tmp_path / "history.db"
    luigid_config = {
        "scheduler": {"record_task_history": "true"},
        "task_history": {"db_connection": f"sqlite:///{history}"},
    }
    port = free_port()
    log = tmp_path / "run.log"
    command = [str(BIN / "movielens-als"), "--scheduler-host", "127.0.0.1", "--scheduler-port", str(port)]
    with contextlib.ExitStack() as first_luigid:
        first_luigid.enter_context(running_luigid(tmp_path, port, **luigid_config))
        with (
            open(log, "w") as output,
            process_group(command, cwd=workdir, env=env, stdout=output, stderr=output) as run,
        ):
            wait_until(held.reached.is_set, "the run never started its download", run)
            first_luigid.close()
            with running_luigid(tmp_path, port, **luigid_config):
                held.release.set()
                released_at = time.monotonic()
                code = run.wait(COMMAND_TIMEOUT)
                print(f"the run finished {time.monotonic() - released_at:.1f} s after the download was released")
                done = {task["name"] for task in luigid_api(port, "task_list", status="DONE").values()}

    text = log.read_text()
    assert code == 0, text[-5000:]
    assert "metrics.json: " in text
    assert tasks_run(text) == CHAIN  # each task once: none was run again after the restart
    assert {"DownloadedZip", "TrainedALS", "EvaluatedRMSE"} <= done
    with sqlite3.connect(history) as db:
        events = set(
            db.execute(
                "SELECT tasks.name, task_events.event_name FROM tasks "
                "JOIN task_events ON task_events.task_id = tasks.id"
            )
        )
    assert ("DownloadedZip", "RUNNING") in events  # recorded by the first luigid
    assert {(name, "DONE") for name in CHAIN} <= events  # by the second
