"""Wall time of the whole chain against one spark-submit of bench/bare_als.py.

    .venv/bin/python bench/compare_bare.py [--runs 5] [--zip ../shared/data/ml-latest-small.zip]

Both sides get the same Spark settings (the [spark] section of luigi.cfg, or of the file
LUIGI_CONFIG_PATH names) and the same release, served by a local HTTP mirror to the
pipeline and read from disk by the bare script. Runs alternate between the two so that a
change in machine load hits both; every pipeline run starts from an empty store, so it
downloads, splits, trains and evaluates. Prints a Markdown table of medians.
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


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def pipeline_run(base_url: str, scratch: Path, run: int) -> dict:
    config = configparser.ConfigParser(interpolation=None)
    config.read(os.environ.get("LUIGI_CONFIG_PATH", REPO / "luigi.cfg"))
    config["store"] = {"root": str(scratch / f"store-{run}")}
    config["movielens"] = {"base_url": base_url}
    path = scratch / f"luigi-{run}.cfg"
    with open(path, "w") as f:
        config.write(f)
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(path))
    started = time.perf_counter()
    result = subprocess.run(  # noqa: PLW1510 - the return code is checked below
        [str(BIN / "luigi"), "--module", "pipeline", "EvaluatedRMSE", "--local-scheduler"],
        env=env,
        capture_output=True,
        text=True,
        cwd=scratch,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"pipeline run failed:\n{result.stderr[-5000:]}")
    metrics = next((scratch / f"store-{run}" / "evaluations").rglob("metrics.json"))
    return {
        "seconds": seconds,
        "rmse": json.loads(metrics.read_text())["rmse"],
        "tasks": {m[1]: float(m[2]) for m in TASK_TIME.finditer(result.stderr)},
    }


def bare_run(zip_path: Path, spark_args: list[str], scratch: Path) -> dict:
    started = time.perf_counter()
    result = subprocess.run(  # noqa: PLW1510 - the return code is checked below
        [*spark_args, str(REPO / "bench" / "bare_als.py"), str(zip_path)],
        capture_output=True,
        text=True,
        cwd=scratch,
        env=dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable),
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"bare run failed:\n{result.stderr[-5000:]}")
    return {"seconds": seconds, "rmse": json.loads(result.stdout.strip().splitlines()[-1])["rmse"]}


def machine() -> str:
    java = subprocess.run(["java", "-version"], check=False, capture_output=True, text=True).stderr.splitlines()[0]
    import pyspark

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {memory:.0f} GiB RAM, {platform.platform()}; {java}; Spark {pyspark.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--zip", type=Path, default=REPO.parent / "shared" / "data" / "ml-latest-small.zip")
    args = parser.parse_args()

    from pipeline.sparkjob import ClassArchive, spark_driver
    from pipeline.tasks import TrainedALS

    # The pipeline's own spark-submit command line, without its --name: identical settings.
    task = TrainedALS()
    bare_args = task.spark_command()
    del bare_args[bare_args.index("--name") : bare_args.index("--name") + 2]
    archive = (
        ClassArchive(Path(spark_driver().class_archive_dir), task.spark_submit)
        if spark_driver().class_archive_dir
        else None
    )
    bare_archive_args = None
    if archive:
        # Also time the bare script starting from the pipeline's class archive, for a like-for-like JVM.
        options = " ".join(
            filter(None, [task.driver_java_options, f"-XX:SharedArchiveFile={archive.path} -Xlog:cds*=off"])
        )
        bare_archive_args = [*bare_args[:1], "--driver-java-options", options, *bare_args[1:]]

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        scratch = Path(tmp)
        mirror = scratch / "mirror"
        mirror.mkdir()
        data = args.zip.read_bytes()
        (mirror / "ml-latest-small.zip").write_bytes(data)
        (mirror / "ml-latest-small.zip.md5").write_text(f"{hashlib.md5(data).hexdigest()}  ml-latest-small.zip\n")
        server, base_url = serve(mirror)
        sides = {
            "pipeline": lambda run: pipeline_run(base_url, scratch, run),
            "bare": lambda run: bare_run(args.zip, bare_args, scratch),
        }
        if bare_archive_args:
            sides["bare with the class archive"] = lambda run: bare_run(args.zip, bare_archive_args, scratch)
        results: dict[str, list[dict]] = {side: [] for side in sides}
        try:
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
        finally:
            server.shutdown()

    median = {side: statistics.median(r["seconds"] for r in runs) for side, runs in results.items()}
    print(f"Machine: {machine()}\n")
    print(f"| {args.runs} runs each, alternating | median wall time | RMSE |")
    print("|---|---|---|")
    print(
        f"| whole chain (`luigi ... EvaluatedRMSE`, empty store) | {median['pipeline']:.1f} s | "
        f"{results['pipeline'][0]['rmse']:.6f} |"
    )
    for name in results["pipeline"][0]["tasks"]:
        print(f"| — {name} | {statistics.median(r['tasks'].get(name, 0.0) for r in results['pipeline']):.1f} s | |")
    for side in sides:
        if side != "pipeline":
            print(
                f"| {side} (`spark-submit bench/bare_als.py`) | {median[side]:.1f} s | {results[side][0]['rmse']:.6f} |"
            )
    for side in sides:
        if side != "pipeline":
            print(f"| **ratio chain / {side}** | **{median['pipeline'] / median[side]:.2f}×** | |")


if __name__ == "__main__":
    main()
