"""The Spark application of a driver script: started, waited for, and stopped."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator

from pyspark.sql import SparkSession

from drivers.common import peak_memory

# Spark's own conf keys pass through spark-submit only with the "spark." prefix.
EXECUTOR_WAIT_CONF = "spark.movielens.executorWaitSeconds"
DEFAULT_EXECUTOR_WAIT_SECONDS = 120.0


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
        wait_for_executors(spark)
        yield spark
        if memory := peak_memory():
            print(f"driver peak resident memory: {memory}", flush=True)
    finally:
        spark.stop()
        if checkpoints:
            shutil.rmtree(checkpoints, ignore_errors=True)


def wait_for_executors(spark: SparkSession) -> None:
    """Returns once an executor has registered with the driver; raises after the configured
    wait. On a cluster with no worker, or none with room for an executor, or whose executors
    cannot reach the driver, Spark would otherwise wait for resources forever, and every later
    scheduled run would skip itself on the lock of the one still waiting."""
    context = spark.sparkContext
    if (context.master or "").startswith("local"):
        return
    timeout = float(context.getConf().get(EXECUTOR_WAIT_CONF, str(DEFAULT_EXECUTOR_WAIT_SECONDS)))
    deadline = time.monotonic() + timeout
    # The block managers Spark knows of: the driver's, and one per registered executor.
    while context._jsc.sc().getExecutorMemoryStatus().size() < 2:
        if time.monotonic() > deadline:
            conf = context.getConf()
            raise RuntimeError(
                f"no Spark executor registered within {timeout:g} s with the master {context.master}. Check that "
                "a worker is registered with that master (its web UI lists the workers), that one has the free "
                f"cores and the memory spark.executor.memory={conf.get('spark.executor.memory', '1g')} asks for, "
                f"and that the workers can connect back to this driver at {conf.get('spark.driver.host')}:"
                f"{conf.get('spark.driver.port')}. {EXECUTOR_WAIT_CONF} sets how long to wait."
            )
        time.sleep(0.5)
