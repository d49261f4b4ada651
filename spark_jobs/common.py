"""What the Spark driver scripts share: the session, their arguments and progress lines."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from pyspark.sql import SparkSession

from pipeline.store import Store

# Spark's own conf keys pass through spark-submit only with the "spark." prefix.
EXECUTOR_WAIT_CONF = "spark.movielens.executorWaitSeconds"
DEFAULT_EXECUTOR_WAIT_SECONDS = 120.0


def job_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every job takes (pipeline.sparkjob.job_flags writes them): the store, and
    the task's parameters for the record."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--store-root", required=True)
    parser.add_argument("--s3-endpoint")
    parser.add_argument("--s3-region")
    parser.add_argument(
        "--params", type=json.loads, default={}, help="the Luigi task's parameters, as JSON, recorded in the output"
    )
    return parser


def job_store(args: argparse.Namespace) -> Store:
    return Store.at(args.store_root, args.s3_endpoint, args.s3_region)


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


def peak_memory() -> str | None:
    """The peak resident memory of the driver's two processes, the JVM and this Python (its
    child, which spark-submit starts), as Linux records them; None elsewhere."""

    def peak_mib(pid: int | str) -> int | None:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        return int(match[1]) // 1024 if match else None

    try:
        parent = Path(f"/proc/{os.getppid()}/comm").read_text().strip()
    except OSError:
        return None
    jvm, python = peak_mib(os.getppid()), peak_mib("self")
    if parent != "java" or jvm is None or python is None:
        return None
    return f"JVM {jvm} MiB, Python {python} MiB"


def progress(percent: int, message: str) -> None:
    """A line the Luigi task turns into progress and status in the scheduler's UI."""
    print(f"progress: {percent}% {message}", flush=True)
