"""What the Spark driver scripts share: the session, their arguments and progress lines."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime, timezone

from pyspark.sql import SparkSession

from pipeline.store import Store


def job_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    Store.add_job_arguments(parser)
    parser.add_argument(
        "--params", type=json.loads, default={}, help="the Luigi task's parameters, as JSON, recorded in the output"
    )
    return parser


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
    if spark.sparkContext.getCheckpointDir() is None and spark.sparkContext.master.startswith("local"):
        checkpoints = tempfile.mkdtemp(prefix="spark-checkpoints-")
        spark.sparkContext.setCheckpointDir(checkpoints)
    try:
        yield spark
    finally:
        spark.stop()
        if checkpoints:
            shutil.rmtree(checkpoints, ignore_errors=True)


def progress(percent: int, message: str) -> None:
    """A line the Luigi task turns into progress and status in the scheduler's UI."""
    print(f"progress: {percent}% {message}", flush=True)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
