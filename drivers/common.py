"""What the driver scripts share: their arguments, the store, the training ratings and their
fingerprint, progress lines (with the time left), warnings, and the peak memory. No Spark here:
a driver that starts no Spark application loads none of it; the session is spark_jobs.session."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from movielens_als.split import describe
from storage import Store


def job_parser(description: str | None) -> argparse.ArgumentParser:
    """The arguments every job takes (pipeline.jobs.job_flags writes them):
    the store, the training ratings, the output, the seed, and the task's parameters for the
    record."""
    parser = argparse.ArgumentParser(description=description)
    # storage.Store.arguments(), which Store.at takes back
    parser.add_argument("--store-root", required=True)
    parser.add_argument("--s3-endpoint")
    parser.add_argument("--s3-region")
    parser.add_argument("--s3-verify", help="true, false, or the path of a CA bundle")
    parser.add_argument("--s3-use-ssl", help="true or false")
    parser.add_argument("--train", required=True, help="key of the training ratings (Parquet)")
    parser.add_argument("--output", required=True, help="key of what the job writes")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument(
        "--params", type=json.loads, default={}, help="the Luigi task's parameters, as JSON, recorded in the output"
    )
    return parser


def job_store(args: argparse.Namespace) -> Store:
    return Store.at(args.store_root, args.s3_endpoint, args.s3_region, args.s3_verify, args.s3_use_ssl)


def peak_memory() -> str | None:
    """The peak resident memory of the driver's processes as Linux records them: the JVM and
    this Python (its child, which spark-submit starts), or this Python alone when it runs
    without spark-submit; None elsewhere."""

    def peak_mib(pid: int | str) -> int | None:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
        return int(match[1]) // 1024 if match else None

    python = peak_mib("self")
    if python is None:
        return None
    try:
        parent = Path(f"/proc/{os.getppid()}/comm").read_text().strip()
    except OSError:
        parent = ""
    jvm = peak_mib(os.getppid()) if parent == "java" else None
    return f"JVM {jvm} MiB, Python {python} MiB" if jvm is not None else f"Python {python} MiB"


def progress(percent: int, message: str) -> None:
    """A line the Luigi task turns into progress and status in the scheduler's UI."""
    print(f"progress: {percent}% {message}", flush=True)


def report_peak_memory() -> None:
    if memory := peak_memory():
        print(f"driver peak resident memory: {memory}", flush=True)


def run_driver(parse: Callable[[list[str]], argparse.Namespace], commands: Mapping[str, Callable], argv) -> None:
    """Parses `argv`, runs the command it names (`args.command`) on the store, and reports the
    driver's peak memory."""
    args = parse(sys.argv[1:] if argv is None else argv)
    commands[args.command](args, job_store(args))
    report_peak_memory()


def read_training(store: Store, key: str) -> tuple[pa.Table, dict[str, Any]]:
    """The training ratings at `key`, and the record of what a model was fitted on: the key, the
    bytes' SHA-256 and the ratings' counts."""
    data = store.read_bytes(key)
    table = pq.read_table(pa.BufferReader(data))
    return table, {"key": key, "sha256": hashlib.sha256(data).hexdigest(), **describe(table)}


def warn_at_edge(result: Mapping[str, Any], grid: Mapping[str, Sequence[float]]) -> None:
    """A warning line when a search's winner sits at an edge of its grid."""
    from movielens_als.selection import edge_warning  # EASE's and the sampler's code: not for every driver

    if result["at_grid_edge"]:
        print(f"warning: {edge_warning(result['best'], grid, result['at_grid_edge'])}", flush=True)


class Pace:
    """The time left of work done in steps, at the pace so far."""

    def __init__(self) -> None:
        self.started = time.perf_counter()

    def seconds_left(self, done: int, total: int) -> float:
        return (time.perf_counter() - self.started) / done * (total - done)
