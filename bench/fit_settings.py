"""TrainedALS's fit under Spark settings to compare: one split, then the fit again and again,
a variant at a time in turn, so that a change in machine load hits them all.

    .venv/bin/python bench/fit_settings.py --zip /tmp/r10m/ml-25m.zip --runs 2 stock current kryo
    .venv/bin/python bench/fit_settings.py --zip /tmp/r10m/ml-25m.zip --profile current   # + a JFR profile
    git worktree add /tmp/before HEAD~1    # a code change, against the code before it:
    .venv/bin/python bench/fit_settings.py --zip /tmp/r10m/ml-25m.zip --tree before=/tmp/before native-blas before

A variant is a set of Spark conf and driver JVM options laid over the [spark] section of
luigi.cfg (VARIANTS below; `stock` drops its conf and keeps only the master and the driver
memory). Each run removes the model and runs `luigi ... EvaluatedRMSE`, so TrainedALS fits
again and the RMSE is checked. Prints the median fit seconds (model.json's fit_seconds: the
ALS fit alone), the speed against the first variant, and the RMSE of each.

`--tree NAME=PATH` adds a variant NAME that runs the code of another checkout at PATH (its
pipeline and Spark jobs, through PYTHONPATH) with luigi.cfg's settings and the native BLAS.

With --profile, the first run of each variant records a Java Flight Recording and prints the
methods the driver's JVM spent its samples in (the executors run inside it in local mode).
"""

from __future__ import annotations

import argparse
import collections
import configparser
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from compare_bare import REPO, TASK_TIME, machine, serve

LOCAL = ("--local-scheduler",)
KRYO = "spark.serializer=org.apache.spark.serializer.KryoSerializer"
# Spark's netlib loads the system's libblas.so.3 and liblapack.so.3 when they exist (Debian:
# libopenblas0); these names make it fall back to its Java implementations, as on a machine
# without them.
JAVA_BLAS = ["-Ddev.ludovic.netlib.blas.nativeLib=none", "-Ddev.ludovic.netlib.lapack.nativeLib=none"]
NO_COMPRESS = ["spark.shuffle.compress=false", "spark.shuffle.spill.compress=false", "spark.rdd.compress=false"]
# name: (conf to add, driver JVM options to add, environment to add)
VARIANTS: dict[str, tuple[list[str], list[str], dict[str, str]]] = {
    "stock": ([], JAVA_BLAS, {}),
    "current": ([], JAVA_BLAS, {}),
    "kryo": ([KRYO], JAVA_BLAS, {}),
    "kryo-parallelgc": ([KRYO], [*JAVA_BLAS, "-XX:+UseParallelGC"], {}),
    "kryo-nocompress": ([KRYO, *NO_COMPRESS], JAVA_BLAS, {}),
    "native-blas": ([], [], {"OPENBLAS_NUM_THREADS": "1"}),
    "kryo-native-blas": ([KRYO], [], {"OPENBLAS_NUM_THREADS": "1"}),
}


def write_config(base: configparser.ConfigParser, variant: str, path: Path, profile: Path | None) -> None:
    config = configparser.ConfigParser(interpolation=None)
    config.read_dict(base)
    conf, java, _ = VARIANTS[variant]
    spark = config["spark"]
    if variant == "stock":
        spark.pop("conf", None)
        spark.pop("driver_java_options", None)
    else:
        current = [c for c in spark.get("conf", "").split("|") if c]
        spark["conf"] = "|".join([*current, *conf])
    options = [*spark.get("driver_java_options", "").split(), *java]
    if profile:
        options.append(f"-XX:StartFlightRecording=filename={profile},settings=profile")
    if options:
        spark["driver_java_options"] = " ".join(options)
    with open(path, "w") as f:
        config.write(f)


def luigi(task: str, config: Path, dataset: str, scratch: Path, env: dict[str, str]) -> str:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "luigi"), "--module", "pipeline", task, *LOCAL, "--dataset", dataset],
        env=dict(os.environ, LUIGI_CONFIG_PATH=str(config), **env),
        capture_output=True,
        text=True,
        cwd=scratch,
    )
    if result.returncode != 0:
        sys.exit(f"{task} failed:\n{result.stderr[-5000:]}")
    return result.stderr


def hot_methods(recording: Path, top: int = 25) -> list[tuple[str, float]]:
    """The methods the JVM's execution samples were in (the top frame), as shares."""
    text = subprocess.run(
        ["jfr", "print", "--events", "jdk.ExecutionSample", str(recording)], capture_output=True, text=True
    ).stdout
    frames = re.findall(r"stackTrace = \[\s*\n\s*(\S+)", text)
    counts = collections.Counter(re.sub(r"\(.*", "", f) for f in frames)
    total = sum(counts.values()) or 1
    return [(method, n / total) for method, n in counts.most_common(top)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="+", help=f"of {', '.join(VARIANTS)} and the --tree names")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH", help="another checkout's code")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    for tree in args.tree:
        name, _, path = tree.partition("=")
        if not (Path(path) / "spark_jobs" / "als.py").is_file():
            parser.error(f"--tree {tree}: {path} is not a checkout of this repository")
        VARIANTS[name] = ([], [], {"OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(Path(path).resolve())})
    if unknown := set(args.variants) - set(VARIANTS):
        parser.error(f"unknown variants {sorted(unknown)}; choose from {sorted(VARIANTS)}")
    dataset = args.zip.name.removesuffix(".zip")
    scratch = Path(tempfile.mkdtemp(prefix="fit-settings-"))
    mirror = scratch / "mirror"
    mirror.mkdir()
    (mirror / args.zip.name).symlink_to(args.zip.resolve())
    server, base_url = serve(mirror)
    base = configparser.ConfigParser(interpolation=None)
    base.read(os.environ.get("LUIGI_CONFIG_PATH", REPO / "luigi.cfg"))
    base["store"] = {"root": str(scratch / "store")}
    md5 = hashlib.md5(args.zip.read_bytes()).hexdigest()
    base["movielens"] = {"base_url": base_url, "md5s": json.dumps({dataset: md5})}
    results: dict[str, list[dict]] = {v: [] for v in args.variants}
    profiles: dict[str, list[tuple[str, float]]] = {}
    try:
        write_config(base, "current", scratch / "split.cfg", None)
        luigi("SplitData", scratch / "split.cfg", dataset, scratch, {})
        for run in range(args.runs):
            for variant in args.variants if run % 2 == 0 else reversed(args.variants):
                recording = scratch / f"{variant}.jfr" if args.profile and run == 0 else None
                config = scratch / f"{variant}.cfg"
                write_config(base, variant, config, recording)
                for old in (scratch / "store").glob("models/*/*/*"):
                    shutil.rmtree(old)
                for old in (scratch / "store").glob("evaluations"):
                    shutil.rmtree(old)
                log = luigi("EvaluatedRMSE", config, dataset, scratch, VARIANTS[variant][2])
                [model] = (scratch / "store").glob("models/*/*/*/model.json")
                [metrics] = (scratch / "store").glob("evaluations/*/*/*/metrics.json")
                fit = json.loads(model.read_text())["fit_seconds"]
                tasks = {m[1]: float(m[2]) for m in TASK_TIME.finditer(log)}
                results[variant].append(
                    {"fit": fit, "task": tasks["TrainedALS"], "rmse": json.loads(metrics.read_text())["rmse"]}
                )
                if recording:
                    profiles[variant] = hot_methods(recording)
                print(
                    f"run {run + 1} {variant}: fit {fit:.1f} s, TrainedALS {tasks['TrainedALS']:.1f} s", file=sys.stderr
                )
    finally:
        server.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)

    first = statistics.median(r["fit"] for r in results[args.variants[0]])
    print(f"\n{dataset} from {args.zip}, {args.runs} alternating runs; {machine()}\n")
    print(f"| variant | fit (median) | TrainedALS | speed against {args.variants[0]} | fits | RMSE |")
    print("|---|---|---|---|---|---|")
    for variant, runs in results.items():
        fit = statistics.median(r["fit"] for r in runs)
        task = statistics.median(r["task"] for r in runs)
        fits = " / ".join(f"{r['fit']:.1f}" for r in runs)
        rmses = sorted({f"{r['rmse']:.6f}" for r in runs})
        print(f"| {variant} | {fit:.1f} s | {task:.1f} s | {first / fit:.2f}× | {fits} | {', '.join(rmses)} |")
    for variant, methods in profiles.items():
        print(f"\nWhere {variant}'s JVM spent its samples (top frames):\n")
        for method, share in methods:
            print(f"- {share:6.1%} {method}")


if __name__ == "__main__":
    main()
