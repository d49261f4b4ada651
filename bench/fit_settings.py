"""TrainedALS's fit under Spark settings to compare: one split, then the fit again and again,
a variant at a time in turn, so that a change in machine load hits them all.

    .venv/bin/python -m bench.fit_settings --zip path/to/ml-25m.zip --runs 2 stock current kryo
    .venv/bin/python -m bench.fit_settings --zip path/to/ml-25m.zip --profile current   # + a JFR profile
    git worktree add ../before HEAD~1    # a code change, against the code before it:
    .venv/bin/python -m bench.fit_settings --zip path/to/ml-25m.zip --tree before=../before native-blas before

Run from the repository's root; the zip's name says which release it is (a generated
ml-25m.zip has ml-25m's layout), and a local HTTP mirror serves it. A variant is a set of
Spark conf and driver JVM options laid over the [spark] section of luigi.cfg (VARIANTS below;
`stock` drops its conf and keeps only the master and the driver memory). Each run removes the
model and runs `luigi ... EvaluatedRMSE`, so TrainedALS fits again and the RMSE is checked.
Prints the machine, the median fit seconds (model.json's fit_seconds: the ALS fit alone), the
speed against the first variant, and the RMSE of each.

`--tree NAME=PATH` adds a variant NAME that runs the code of another checkout at PATH (its
pipeline and Spark jobs, through PYTHONPATH) with luigi.cfg's settings and the native BLAS.
`--blas NAME=PATH` adds a variant NAME whose ALS computes with the BLAS library at PATH, e.g.
one whose `dspr` does nothing, to see how much of the fit that routine is:

    mkdir /tmp/noop && cp native/build-als-blas /tmp/noop/   # it builds the als_blas.c beside it
    sed 's/^void dspr_(.*{$/&\n    return;/' native/als_blas.c > /tmp/noop/als_blas.c
    /tmp/noop/build-als-blas /tmp/noop/libnoopdspr.so
    .venv/bin/python -m bench.fit_settings --zip path/to/10m/ml-25m.zip --runs 1 \
        --blas noop-dspr=/tmp/noop/libnoopdspr.so reference-blas noop-dspr

With --profile, the first run of each variant records a Java Flight Recording and prints the
methods the driver's JVM spent its samples in (the executors run inside it in local mode).
"""

from __future__ import annotations

import collections
import configparser
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.harness import (
    JAVA_BLAS,
    Release,
    argument_parser,
    luigi_config,
    machine,
    mirror,
    run_luigi,
    write_config,
)
from pipeline.blas import NETLIB_BLAS_PATH, REFERENCE_BLAS

VECTOR = "--add-modules=jdk.incubator.vector"
SYSTEM_BLAS = f"{NETLIB_BLAS_PATH}={REFERENCE_BLAS.parent.parent / 'libblas.so.3'}"
KRYO = "spark.serializer=org.apache.spark.serializer.KryoSerializer"
NO_COMPRESS = ["spark.shuffle.compress=false", "spark.shuffle.spill.compress=false", "spark.rdd.compress=false"]
# name: (conf to add, driver JVM options to add, environment to add)
VARIANTS: dict[str, tuple[list[str], list[str], dict[str, str]]] = {
    "stock": ([], [*JAVA_BLAS], {}),
    "current": ([], [*JAVA_BLAS], {}),
    "kryo": ([KRYO], [*JAVA_BLAS], {}),
    "kryo-parallelgc": ([KRYO], [*JAVA_BLAS, "-XX:+UseParallelGC"], {}),
    "kryo-nocompress": ([KRYO, *NO_COMPRESS], [*JAVA_BLAS], {}),
    "native-blas": ([], [], {"OPENBLAS_NUM_THREADS": "1"}),
    "kryo-native-blas": ([KRYO], [], {"OPENBLAS_NUM_THREADS": "1"}),
    "native-nocompress": (NO_COMPRESS, [], {"OPENBLAS_NUM_THREADS": "1"}),
    "native-parallelgc": ([], ["-XX:+UseParallelGC"], {"OPENBLAS_NUM_THREADS": "1"}),
    "native-parallelgc-nocompress": (NO_COMPRESS, ["-XX:+UseParallelGC"], {"OPENBLAS_NUM_THREADS": "1"}),
    "native-thp": ([], ["-XX:+UseTransparentHugePages"], {"OPENBLAS_NUM_THREADS": "1"}),
    # netlib's BLAS in Java with the Vector API (its VectorBLAS: SIMD, no JNI call per rating),
    # LAPACK native.
    "vector-blas": ([], [VECTOR, *JAVA_BLAS[:2]], {"OPENBLAS_NUM_THREADS": "1"}),
    # The system's libblas.so.3 (Debian's OpenBLAS) for ALS's per-rating calls too, instead of
    # the library the ALS jobs name (pipeline/blas.py, als_blas).
    "openblas": ([], [SYSTEM_BLAS], {"OPENBLAS_NUM_THREADS": "1"}),
    # Debian's reference BLAS as packaged, without native/als_blas.c's dspr and daxpy.
    "reference-blas": ([], [f"{NETLIB_BLAS_PATH}={REFERENCE_BLAS}"], {"OPENBLAS_NUM_THREADS": "1"}),
}


def variant_config(base: configparser.ConfigParser, variant: str, profile: Path | None) -> configparser.ConfigParser:
    """`base` with the variant's Spark conf and driver JVM options, and a JFR recording to
    `profile` if given."""
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
    return config


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
    parser = argument_parser("bench.fit_settings", __doc__)
    parser.add_argument("variants", nargs="+", help=f"of {', '.join(VARIANTS)} and the --tree names")
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH", help="another checkout's code")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--blas", action="append", default=[], metavar="NAME=PATH", help="another BLAS library")
    args = parser.parse_args()
    for blas in args.blas:
        name, _, path = blas.partition("=")
        if not Path(path).is_file():
            parser.error(f"--blas {blas}: {path} is not a file")
        VARIANTS[name] = ([], [f"{NETLIB_BLAS_PATH}={Path(path).resolve()}"], {"OPENBLAS_NUM_THREADS": "1"})
    for tree in args.tree:
        name, _, path = tree.partition("=")
        if not (Path(path) / "spark_jobs" / "als.py").is_file():
            parser.error(f"--tree {tree}: {path} is not a checkout of this repository")
        VARIANTS[name] = ([], [], {"OPENBLAS_NUM_THREADS": "1", "PYTHONPATH": str(Path(path).resolve())})
    if unknown := set(args.variants) - set(VARIANTS):
        parser.error(f"unknown variants {sorted(unknown)}; choose from {sorted(VARIANTS)}")
    release = Release.at(args.zip)
    results: dict[str, list[dict]] = {v: [] for v in args.variants}
    profiles: dict[str, list[tuple[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="fit-settings-") as tmp, mirror(release) as base_url:
        scratch = Path(tmp)
        store = scratch / "store"
        base = luigi_config(release, base_url, store)
        split_config = write_config(variant_config(base, "current", None), scratch / "split.cfg")
        run_luigi("SplitData", split_config, release.name, scratch)
        for number in range(args.runs):
            for variant in args.variants if number % 2 == 0 else reversed(args.variants):
                recording = scratch / f"{variant}.jfr" if args.profile and number == 0 else None
                config = write_config(variant_config(base, variant, recording), scratch / f"{variant}.cfg")
                for old in [*store.glob("models/*/*/*"), *store.glob("evaluations")]:
                    shutil.rmtree(old)
                run = run_luigi("EvaluatedRMSE", config, release.name, scratch, env=VARIANTS[variant][2])
                [model] = store.glob("models/*/*/*/model.json")
                [metrics] = store.glob("evaluations/*/*/*/metrics.json")
                fit = json.loads(model.read_text())["fit_seconds"]
                task = run["tasks"]["TrainedALS"]
                results[variant].append({"fit": fit, "task": task, "rmse": json.loads(metrics.read_text())["rmse"]})
                if recording:
                    profiles[variant] = hot_methods(recording)
                print(f"run {number + 1} {variant}: fit {fit:.1f} s, TrainedALS {task:.1f} s", file=sys.stderr)

    first = statistics.median(r["fit"] for r in results[args.variants[0]])
    print(f"\n{release.name} from {args.zip}, {args.runs} alternating runs\nMachine: {machine()}\n")
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
