"""Wall time and peak memory of the whole chain against one spark-submit of bench/bare_als.py.

    .venv/bin/python bench/compare_bare.py [--runs 5] [--zip ../shared/data/ml-latest-small.zip]
    .venv/bin/movielens-als-generate --ratings 10000000 --output /tmp/r10m/ml-25m.zip
    .venv/bin/python bench/compare_bare.py --runs 3 --zip /tmp/r10m/ml-25m.zip

The release is the one the zip's name says (a generated ml-25m.zip has ml-25m's layout); its
MD5 is computed here and configured as the release's checksum. Both sides get the same Spark
settings (the [spark] section of luigi.cfg, or of the file LUIGI_CONFIG_PATH names) and the
same zip, served by a local HTTP mirror to the pipeline and read from disk by the bare
script. Runs alternate between the two so that a change in machine load hits both; every
pipeline run starts from an empty store, so it downloads, splits, trains and evaluates.
Then, on the last run's store, a rerun with nothing to do and a rerun with another rank (only
TrainedALS and EvaluatedRMSE run again). Prints a Markdown table of medians.
"""

from __future__ import annotations

import argparse
import configparser
import functools
import hashlib
import http.server
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TASK_TIME = re.compile(r"(\w+)\(.*\) finished in ([\d.]+) s")
# What spark_jobs/common.py and bench/bare_als.py print at the end of a Spark application.
PEAK_MEMORY = re.compile(r"driver peak resident memory: JVM (\d+) MiB, Python (\d+) MiB")
# The `luigi` command, printing on exit the peak resident memory of its own process, where the
# tasks without Spark (SplitData, EvaluatedRMSE) run.
LUIGI_WITH_PEAK = """
import atexit, resource, sys
from luigi.cmdline import luigi_run
atexit.register(lambda: print(
    f"luigi worker peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB",
    file=sys.stderr,
))
luigi_run(sys.argv[1:])
"""
WORKER_MEMORY = re.compile(r"luigi worker peak resident memory: (\d+) MiB")


def peak_memory(log: str) -> tuple[int, int]:
    """The largest JVM and Python driver peaks (MiB) of the Spark applications in `log`."""
    peaks = [(int(m[1]), int(m[2])) for m in PEAK_MEMORY.finditer(log)]
    return max((p[0] for p in peaks), default=0), max((p[1] for p in peaks), default=0)


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def pipeline_run(base_url: str, dataset: str, md5: str, scratch: Path, run: int, extra: tuple[str, ...] = ()) -> dict:
    """One run of the chain on the store of `run` (empty unless an earlier call filled it)."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(os.environ.get("LUIGI_CONFIG_PATH", REPO / "luigi.cfg"))
    config["store"] = {"root": str(scratch / f"store-{run}")}
    config["movielens"] = {"base_url": base_url, "md5s": json.dumps({dataset: md5})}
    path = scratch / f"luigi-{run}.cfg"
    with open(path, "w") as f:
        config.write(f)
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(path))
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            LUIGI_WITH_PEAK,
            "--module",
            "pipeline",
            "EvaluatedRMSE",
            "--local-scheduler",
            "--dataset",
            dataset,
            *extra,
        ],
        env=env,
        capture_output=True,
        text=True,
        cwd=scratch,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"pipeline run failed:\n{result.stderr[-5000:]}")
    metrics = max((scratch / f"store-{run}" / "evaluations").rglob("metrics.json"), key=lambda m: m.stat().st_mtime)
    return {
        "seconds": seconds,
        "rmse": json.loads(metrics.read_text())["rmse"],
        "tasks": {m[1]: float(m[2]) for m in TASK_TIME.finditer(result.stderr)},
        "memory": peak_memory(result.stderr),
        "worker_memory": int(WORKER_MEMORY.search(result.stderr)[1]),
    }


def bare_run(zip_path: Path, member: str, spark_args: list[str], scratch: Path) -> dict:
    started = time.perf_counter()
    result = subprocess.run(
        [*spark_args, str(REPO / "bench" / "bare_als.py"), str(zip_path), member],
        capture_output=True,
        text=True,
        cwd=scratch,
        env=dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable),
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"bare run failed:\n{result.stderr[-5000:]}")
    return {
        "seconds": seconds,
        "rmse": json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))["rmse"],
        "memory": peak_memory(result.stdout),
    }


def machine() -> str:
    java = subprocess.run(["java", "-version"], check=False, capture_output=True, text=True).stderr.splitlines()[0]
    import pyspark

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {memory:.0f} GiB RAM, {platform.platform()}; {java}; Spark {pyspark.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--zip", type=Path, default=REPO.parent / "shared" / "data" / "ml-latest-small.zip")
    parser.add_argument(
        "--archive-side",
        action="store_true",
        help="also time the bare script started from the pipeline's JVM class archive",
    )
    parser.add_argument(
        "--no-warm-up", action="store_true", help="skip the untimed first run (it writes the class archive if missing)"
    )
    args = parser.parse_args()

    from movielens_als.releases import RELEASES
    from pipeline.sparkjob import ClassArchive, spark_driver
    from pipeline.tasks import TrainedALS

    dataset = args.zip.name.removesuffix(".zip")
    if dataset not in RELEASES or RELEASES[dataset].delimiter != ",":
        sys.exit(f"{args.zip}: the bare script reads the ratings.csv layout; name the zip after such a release")
    md5 = hashlib.md5(args.zip.read_bytes()).hexdigest()

    # The pipeline's own spark-submit command line, without its --name: identical settings.
    task = TrainedALS(dataset=dataset)  # the same driver memory, which is sized from the release
    bare_args = task.spark_command()
    del bare_args[bare_args.index("--name") : bare_args.index("--name") + 2]

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        scratch = Path(tmp)
        mirror = scratch / "mirror"
        mirror.mkdir()
        (mirror / args.zip.name).symlink_to(args.zip.resolve())
        server, base_url = serve(mirror)
        member = RELEASES[dataset].ratings_member
        sides = {
            "pipeline": lambda run: pipeline_run(base_url, dataset, md5, scratch, run),
            "bare": lambda run: bare_run(args.zip, member, bare_args, scratch),
        }
        if args.archive_side and spark_driver().class_archive_dir:
            archive = ClassArchive(Path(spark_driver().class_archive_dir), task.spark_submit)
            archive_args = list(bare_args)
            options = archive_args.index("--driver-java-options") + 1
            archive_args[options] += f" -XX:SharedArchiveFile={archive.path} -Xlog:cds*=off"
            sides["bare with the class archive"] = lambda run: bare_run(args.zip, member, archive_args, scratch)
        results: dict[str, list[dict]] = {side: [] for side in sides}
        try:
            if not args.no_warm_up:
                warm_up = sides["pipeline"](-1)  # writes the class archive if there is none yet
                print(f"warm-up pipeline run: {warm_up['seconds']:.1f} s", file=sys.stderr)
            for run in range(args.runs):
                order = list(sides) if run % 2 == 0 else list(reversed(sides))
                for side in order:
                    results[side].append(sides[side](run))
                print(
                    f"run {run + 1}: " + ", ".join(f"{side} {results[side][-1]['seconds']:.1f} s" for side in sides),
                    file=sys.stderr,
                )
            last = args.runs - 1
            reruns = {
                "rerun with nothing to do": pipeline_run(base_url, dataset, md5, scratch, last),
                "rerun with rank 16 (train and evaluate only)": pipeline_run(
                    base_url, dataset, md5, scratch, last, ("--rank", "16")
                ),
            }
        finally:
            server.shutdown()

    report(f"{dataset} from {args.zip}", args.runs, results, reruns)


def report(release: str, runs: int, results: dict[str, list[dict]], reruns: dict[str, dict]) -> None:
    """The Markdown table of medians."""

    def median(values) -> float:
        return statistics.median(list(values))

    def memory(side: str) -> str:
        jvm, python = (median(r["memory"][k] for r in results[side]) for k in (0, 1))
        return f"JVM {jvm:.0f} MiB, Python {python:.0f} MiB" if jvm else ""

    seconds = {side: median(r["seconds"] for r in side_runs) for side, side_runs in results.items()}
    print(f"Machine: {machine()}\n")
    worker = median(r["worker_memory"] for r in results["pipeline"])
    print(f"| {release}: {runs} runs each, alternating, median | wall time | peak RSS | RMSE |")
    print("|---|---|---|---|")
    print(
        f"| whole chain (`luigi ... EvaluatedRMSE`, empty store) | {seconds['pipeline']:.1f} s | "
        f"Spark driver: {memory('pipeline')}; luigi worker {worker:.0f} MiB | {results['pipeline'][0]['rmse']:.6f} |"
    )
    for name in results["pipeline"][0]["tasks"]:
        print(f"| — {name} | {median(r['tasks'].get(name, 0.0) for r in results['pipeline']):.1f} s | | |")
    for side in sides_other_than_pipeline(results):
        print(
            f"| {side} (`spark-submit bench/bare_als.py`) | {seconds[side]:.1f} s | {memory(side)} | "
            f"{results[side][0]['rmse']:.6f} |"
        )
    for side in sides_other_than_pipeline(results):
        print(f"| **ratio chain / {side}** | **{seconds['pipeline'] / seconds[side]:.2f}×** | | |")
    for name, rerun in reruns.items():
        ran = ", ".join(f"{task} {s:.1f} s" for task, s in rerun["tasks"].items()) or "no task ran"
        print(f"| {name} | {rerun['seconds']:.1f} s ({ran}) | | {rerun['rmse']:.6f} |")


def sides_other_than_pipeline(results: dict) -> list[str]:
    return [side for side in results if side != "pipeline"]


if __name__ == "__main__":
    main()
