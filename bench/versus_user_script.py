"""The whole chain against the plain user script (bench/user_script.py: spark.read.csv,
randomSplit, stock ALS rank 32 / regParam 0.15 / 15 iterations, RMSE), alternating, on the
same release: wall time of each, and the ALS fit inside each.

    .venv/bin/python bench/versus_user_script.py --runs 3 --zip /tmp/r1m/ml-25m.zip

The chain runs `luigi --module pipeline EvaluatedRMSE` on an empty store (download from a
local mirror, split, biases and ALS, evaluation); the user script runs with spark-submit,
Spark's defaults and the same driver memory the chain's Spark driver gets (sized from the
release), on the ratings.csv extracted from the same zip beforehand, with netlib's Java BLAS
and LAPACK: as on a machine without the native ones this project installs (Debian's
libopenblas0; `--user-native-blas` gives them to the user script too). The fit of the chain is
TrainedALS's (model.json's fit_seconds), of the user script `ALS.fit`. Prints a Markdown row.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from compare_bare import REPO, machine, pipeline_run, serve

JAVA_BLAS = "-Ddev.ludovic.netlib.blas.nativeLib=none -Ddev.ludovic.netlib.lapack.nativeLib=none"


def user_run(spark_submit: str, memory: str, csv: Path, scratch: Path, native_blas: bool) -> dict:
    started = time.perf_counter()
    options = [] if native_blas else ["--driver-java-options", JAVA_BLAS]
    script = str(REPO / "bench" / "user_script.py")
    result = subprocess.run(
        [spark_submit, "--master", "local[*]", "--driver-memory", memory, *options, script, str(csv)],
        capture_output=True,
        text=True,
        cwd=scratch,
        env=dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable),
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"user script failed:\n{result.stderr[-5000:]}")
    line = json.loads(next(line for line in result.stdout.splitlines() if line.startswith("{")))
    return {"seconds": seconds, "fit": line["fit_seconds"], "rmse": line["rmse"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--zip", type=Path, default=REPO.parent / "shared" / "data" / "ml-latest-small.zip")
    parser.add_argument("--user-native-blas", action="store_true", help="let the user script load the native BLAS too")
    args = parser.parse_args()

    from movielens_als.releases import RELEASES
    from pipeline.tasks import TrainedALS

    dataset = args.zip.name.removesuffix(".zip")
    md5 = hashlib.md5(args.zip.read_bytes()).hexdigest()
    task = TrainedALS(dataset=dataset)
    with tempfile.TemporaryDirectory(prefix="versus-") as tmp:
        scratch = Path(tmp)
        mirror = scratch / "mirror"
        mirror.mkdir()
        (mirror / args.zip.name).symlink_to(args.zip.resolve())
        with zipfile.ZipFile(args.zip) as archive:
            csv = Path(archive.extract(RELEASES[dataset].ratings_member, scratch / "csv"))
        server, base_url = serve(mirror)
        chain: list[dict] = []
        user: list[dict] = []
        try:
            for run in range(args.runs):
                sides = [("chain", chain), ("user", user)]
                for side, results in sides if run % 2 == 0 else reversed(sides):
                    if side == "chain":
                        result = pipeline_run(base_url, dataset, md5, scratch, run)
                        [model] = (scratch / f"store-{run}").glob("models/*/*/*/model.json")
                        result["fit"] = json.loads(model.read_text())["fit_seconds"]
                    else:
                        result = user_run(task.spark_submit, task.driver_memory, csv, scratch, args.user_native_blas)
                    results.append(result)
                print(
                    f"run {run + 1}: chain {chain[-1]['seconds']:.1f} s (fit {chain[-1]['fit']:.1f} s), "
                    f"user script {user[-1]['seconds']:.1f} s (fit {user[-1]['fit']:.1f} s)",
                    file=sys.stderr,
                )
        finally:
            server.shutdown()

    def median(results: list[dict], field: str) -> float:
        return statistics.median(r[field] for r in results)

    c, u = median(chain, "seconds"), median(user, "seconds")
    cf, uf = median(chain, "fit"), median(user, "fit")
    print(f"\n{dataset} from {args.zip}, {args.runs} alternating runs; {machine()}\n")
    print(
        "| ratings | chain | user script | **chain / user** | fit: TrainedALS | fit: user script | **fit speed-up** "
        "| RMSE: chain / user script | runs (chain / user) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    runs = "; ".join(f"{a['seconds']:.1f} / {b['seconds']:.1f}" for a, b in zip(chain, user, strict=True))
    print(
        f"| {dataset} | {c:.1f} s | {u:.1f} s | **{c / u:.2f}×** | {cf:.1f} s | {uf:.1f} s | **{uf / cf:.2f}×** | "
        f"{median(chain, 'rmse'):.6f} / {median(user, 'rmse'):.4f} | {runs} |"
    )


if __name__ == "__main__":
    main()
