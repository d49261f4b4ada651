"""What the Spark driver scripts share: the session, their arguments, progress lines and the
file names of a stored model."""

from __future__ import annotations

import argparse
import json
from datetime import datetime, timezone

from pyspark.sql import SparkSession

from pipeline.store import Store

USER_FACTORS = "user_factors.parquet"
ITEM_FACTORS = "item_factors.parquet"
MODEL_JSON = "model.json"


def job_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    Store.add_job_arguments(parser)
    parser.add_argument(
        "--params", type=json.loads, default={}, help="the Luigi task's parameters, as JSON, recorded in the output"
    )
    return parser


def spark_session() -> SparkSession:
    spark = SparkSession.builder.getOrCreate()
    # Startup is logged at INFO; from here on only warnings, and our own progress lines.
    spark.sparkContext.setLogLevel("WARN")
    if url := spark.sparkContext.uiWebUrl:
        print(f"Spark UI: {url}", flush=True)
    return spark


def progress(percent: int, message: str) -> None:
    """A line the Luigi task turns into progress and status in the scheduler's UI."""
    print(f"progress: {percent}% {message}", flush=True)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
