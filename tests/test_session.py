"""spark_jobs.session.ExecutorWatch against a stand-in for the SparkContext: the waits it ends,
and the ones it leaves alone. The real thing, a standalone worker killed mid-fit, is in
test_stack.py."""

from __future__ import annotations

import threading
import time

import pytest

from spark_jobs.session import EXECUTOR_WAIT_CONF, ExecutorWatch, NoExecutorError

MASTER = "spark://spark-master:7077"


class FakeContext:
    """What ExecutorWatch asks of a SparkContext: its executors (as block managers, the
    driver's included), its active jobs, its conf; `polls` counts the looks at the executors."""

    def __init__(self, executors: int, master: str = MASTER, wait_seconds: float = 0.5):
        self.master = master
        self.executors = executors
        self.active_jobs: list[int] = []
        self.cancelled = threading.Event()
        self.polls = 0
        self.conf = {EXECUTOR_WAIT_CONF: str(wait_seconds), "spark.driver.host": "runner", "spark.driver.port": "7078"}

    # context._jsc.sc().getExecutorMemoryStatus().size()
    @property
    def _jsc(self):
        return self

    def sc(self):
        return self

    def getExecutorMemoryStatus(self):
        return self

    def size(self) -> int:
        self.polls += 1
        return self.executors + 1

    def statusTracker(self):
        return self

    def getActiveJobsIds(self) -> list[int]:
        return list(self.active_jobs)

    def cancelAllJobs(self) -> None:
        self.active_jobs = []
        self.cancelled.set()

    def getConf(self):
        return self

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.conf.get(key, default)


def polled(context: FakeContext, times: int, seconds: float = 30) -> bool:
    """Waits until the watch has looked at the executors `times` more times."""
    target, deadline = context.polls + times, time.monotonic() + seconds
    while context.polls < target and time.monotonic() < deadline:
        time.sleep(0.05)
    return context.polls >= target


def test_a_job_left_without_executors_is_cancelled_after_the_wait_and_the_error_says_what_to_check():
    context = FakeContext(executors=1)
    with pytest.raises(NoExecutorError) as raised, ExecutorWatch(context):
        context.executors, context.active_jobs = 0, [7]  # the worker is lost during job 7
        lost_at = time.monotonic()
        assert context.cancelled.wait(30)
        waited = time.monotonic() - lost_at
        raise RuntimeError("Job 7 cancelled as part of cancellation of all jobs")  # as py4j raises it

    assert waited >= 0.5
    message = str(raised.value)
    assert message.startswith(f"no Spark executor is left for this job on the master {MASTER}: the job waited 0.5 s")
    assert "spark.executor.memory=1g" in message and "runner:7078" in message
    assert f"{EXECUTOR_WAIT_CONF} sets how long to wait (now 0.5 s)" in message
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_no_executor_while_no_job_waits_and_an_executor_back_in_time_cancel_nothing():
    context = FakeContext(executors=1)
    with ExecutorWatch(context) as watch:
        context.executors = 0  # lost while the driver works on its own: no job waits
        assert polled(context, 4)
        context.active_jobs = [3]
        context.executors = 1  # a worker back (a restart policy): the job goes on
        assert polled(context, 4)
        context.executors = 0
        context.active_jobs = []
        assert polled(context, 4)
    assert not context.cancelled.is_set() and watch.lost is None


def test_no_executor_at_start_fails_after_the_wait_naming_the_master():
    expected = f"no Spark executor registered within 0.5 s with the master {MASTER}"
    with pytest.raises(NoExecutorError, match=expected), ExecutorWatch(FakeContext(executors=0)):
        pass


def test_in_local_mode_nothing_is_watched():
    context = FakeContext(executors=0, master="local[2]")
    with ExecutorWatch(context):
        pass
    assert context.polls == 0
