"""The Spark application of a driver script: started, watched for lost executors, and stopped."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator

from pyspark import SparkContext
from pyspark.sql import SparkSession

from drivers.common import report_peak_memory

# Spark's own conf keys pass through spark-submit only with the "spark." prefix.
EXECUTOR_WAIT_CONF = "spark.movielens.executorWaitSeconds"
DEFAULT_EXECUTOR_WAIT_SECONDS = 120.0
# How often the driver looks at its executors: the bound on a lost worker is the wait plus this.
POLL_SECONDS = 0.5


class NoExecutorError(RuntimeError):
    """The application had no executor for longer than EXECUTOR_WAIT_CONF allows."""


@contextlib.contextmanager
def spark_session() -> Iterator[SparkSession]:
    spark = SparkSession.builder.getOrCreate()
    # Startup is logged at INFO; from here on only warnings, and our own progress lines.
    spark.sparkContext.setLogLevel("WARN")
    if url := spark.sparkContext.uiWebUrl:
        print(f"Spark UI: {url}", flush=True)
    # ALS's lineage grows with every iteration and overflows the stack past about 20 unless it
    # is checkpointed. On a cluster set spark.checkpoint.dir to shared storage; in local mode
    # a temporary folder does.
    checkpoints = None
    if spark.sparkContext.getCheckpointDir() is None and (spark.sparkContext.master or "").startswith("local"):
        checkpoints = tempfile.mkdtemp(prefix="spark-checkpoints-")
        spark.sparkContext.setCheckpointDir(checkpoints)
    try:
        with ExecutorWatch(spark.sparkContext):
            yield spark
        report_peak_memory()
    finally:
        spark.stop()
        if checkpoints:
            shutil.rmtree(checkpoints, ignore_errors=True)


class ExecutorWatch:
    """Ends the two waits for executors that Spark would let last forever, each after the
    configured wait (EXECUTOR_WAIT_CONF): the wait for a first executor (a cluster with no
    worker, none with room for an executor, or executors that cannot reach the driver), and a
    job's wait after every executor is gone (its workers killed, stopped or out of memory,
    and none left to take over). Under cron, a job that never ends holds the lock every later
    run of the same command skips itself on.

    As a context manager: on entry it waits for the first executor, then a thread watches;
    when a job has waited for the configured time with no executor, it cancels the
    application's jobs, and the error that cancellation raises in the driver's code leaves
    the block as a NoExecutorError that names the master and says what to check. A worker
    that comes back within the wait (a restart policy) gets new executors and the job goes on.
    In local mode the driver runs the tasks itself, and nothing is watched."""

    def __init__(self, context: SparkContext):
        self.context = context
        self.master = context.master or ""
        self.timeout = float(context.getConf().get(EXECUTOR_WAIT_CONF, str(DEFAULT_EXECUTOR_WAIT_SECONDS)))
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="executor-watch", daemon=True)

    def __enter__(self) -> ExecutorWatch:
        if not self.master.startswith("local"):
            self.wait_for_first_executor()
            self._thread.start()
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if error is not None and self.lost is not None:
            raise NoExecutorError(self.lost) from None  # the cause is only "Job cancelled"

    def executors(self) -> int:
        # The block managers Spark knows of: the driver's, and one per registered executor.
        return self.context._jsc.sc().getExecutorMemoryStatus().size() - 1

    def wait_for_first_executor(self) -> None:
        deadline = time.monotonic() + self.timeout
        while not self.executors():
            if time.monotonic() > deadline:
                raise NoExecutorError(
                    f"no Spark executor registered within {self.timeout:g} s with the master {self.master}. "
                    f"{self._what_to_check()}"
                )
            time.sleep(POLL_SECONDS)

    def _watch(self) -> None:
        waiting_since = None
        while not self._stop.wait(POLL_SECONDS):
            if self.executors() or not self.context.statusTracker().getActiveJobsIds():
                waiting_since = None
                continue
            waiting_since = waiting_since or time.monotonic()
            if self.lost is None and time.monotonic() - waiting_since >= self.timeout:
                self.lost = (
                    f"no Spark executor is left for this job on the master {self.master}: the job waited "
                    f"{self.timeout:g} s for one after its workers were lost (killed, stopped or out of memory), "
                    f"and was cancelled. {self._what_to_check()} Then run it again."
                )
                print(f"cancelling the Spark job: no executor for {self.timeout:g} s", file=sys.stderr, flush=True)
            if self.lost is not None:
                # Again at every look: the driver's code may start another job before it sees the error.
                self.context.cancelAllJobs()

    def _what_to_check(self) -> str:
        conf = self.context.getConf()
        return (
            "Check that a worker is registered with that master (its web UI lists the workers, and a worker's "
            "log says why it stopped), that one has the free cores and the memory "
            f"spark.executor.memory={conf.get('spark.executor.memory', '1g')} asks for, and that the workers "
            f"can connect back to this driver at {conf.get('spark.driver.host')}:{conf.get('spark.driver.port')}. "
            f"{EXECUTOR_WAIT_CONF} sets how long to wait (now {self.timeout:g} s)."
        )
