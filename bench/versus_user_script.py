"""The whole chain against the plain user script (bench/user_script.py: spark.read.csv,
randomSplit, stock ALS rank 32 / regParam 0.15 / 15 iterations, RMSE), alternating, on the
same release: wall time of each, and the ALS fit inside each.

    .venv/bin/python -m bench.versus_user_script [--runs 3] [--zip path/to/ml-25m.zip]
    .venv/bin/python -m bench.versus_user_script --user java-blas-infer-schema --zip path/to/ml-25m.zip
    .venv/bin/python -m bench.versus_user_script --user chain-blas --zip path/to/ml-25m.zip

Run from the repository's root; the zip's name says which release it is (a generated
ml-25m.zip has ml-25m's layout), and the default is ml-latest-small.zip in ../shared/data.
The chain runs `luigi --module pipeline EvaluatedRMSE` on an empty store (download from a
local mirror, split, biases and ALS, evaluation); the user script runs with spark-submit,
Spark's defaults and the same driver memory the chain's Spark driver gets (sized from the
release), on the ratings.csv extracted from the same zip beforehand. The user script runs as
--user says (USER_VARIANTS below); by default on equal footing with the chain as issue 19
defines it: on the same machine with what `make run` installs (the system's libblas.so.3 and
liblapack.so.3, Debian's OpenBLAS, serve it), and with its schema declared, as a user who knows
Spark writes it. `--user chain-blas` gives it the BLAS library the chain's ALS jobs name as
well (pipeline/blas.py, als_blas), which no plain script would know of. The fit of the
chain is TrainedALS's (model.json's fit_seconds), of the user script `ALS.fit`. Prints the machine and a Markdown row.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import zipfile
from pathlib import Path

from bench.harness import (
    JAVA_BLAS,
    REPO,
    SMALL_ZIP,
    Release,
    argument_parser,
    json_line,
    luigi_config,
    machine,
    mirror,
    run,
    run_luigi,
    write_config,
)
from pipeline.blas import NETLIB_BLAS_PATH, REFERENCE_BLAS, als_blas_options

# How the user script runs: (what the table calls it, the script's flags, driver JVM options).
CHAIN_BLAS = als_blas_options()
USER_VARIANTS: dict[str, tuple[str, list[str], list[str]]] = {
    "as-installed": ("user script (the system's libblas.so.3, declared schema)", [], []),
    # The native BLAS the chain's ALS computes with (pipeline/blas.py, als_blas).
    "chain-blas": (
        "user script (the chain's ALS BLAS, declared schema)",
        [],
        ["--driver-java-options", " ".join(CHAIN_BLAS)] if CHAIN_BLAS else [],
    ),
    # Debian's reference BLAS as packaged: the footing of BENCHMARKS.md's series before
    # native/als_blas.c.
    "reference-blas": (
        "user script (Debian's reference BLAS, declared schema)",
        [],
        ["--driver-java-options", f"{NETLIB_BLAS_PATH}={REFERENCE_BLAS}"],
    ),
    # The series BENCHMARKS.md reported first: a machine without the native BLAS `make run`
    # installs, and a first script that lets Spark infer the schema (an extra pass over the file).
    "java-blas-infer-schema": (
        "user script (Java BLAS, inferSchema)",
        ["--infer-schema"],
        ["--driver-java-options", " ".join(JAVA_BLAS)],
    ),
}


def chain_run(release: Release, base_url: str, scratch: Path, number: int) -> dict:
    """The whole chain on an empty store of its own."""
    store = scratch / f"store-{number}"
    config = write_config(luigi_config(release, base_url, store), scratch / f"luigi-{number}.cfg")
    result = run_luigi("EvaluatedRMSE", config, release.name, scratch)
    [model] = store.glob("models/*/*/*/model.json")
    metrics = max((store / "evaluations").rglob("metrics.json"), key=lambda m: m.stat().st_mtime)
    return {
        **result,
        "fit": json.loads(model.read_text())["fit_seconds"],
        "rmse": json.loads(metrics.read_text())["rmse"],
    }


def user_run(spark_submit: str, memory: str, variant: str, csv: Path, scratch: Path) -> dict:
    _, flags, options = USER_VARIANTS[variant]
    script = str(REPO / "bench" / "user_script.py")
    command = [spark_submit, "--master", "local[*]", "--driver-memory", memory, *options, script, str(csv), *flags]
    seconds, out, _ = run("user_script.py", command, scratch)
    line = json_line(out)
    return {"seconds": seconds, "fit": line["fit_seconds"], "rmse": line["rmse"]}


def main() -> None:
    parser = argument_parser("bench.versus_user_script", __doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--zip", type=Path, default=SMALL_ZIP)
    parser.add_argument("--user", choices=USER_VARIANTS, default="as-installed", help="how the user script runs")
    args = parser.parse_args()

    from movielens_als.releases import RELEASES
    from pipeline import TrainedALS

    release = Release.at(args.zip)
    if RELEASES[release.name].delimiter != ",":
        sys.exit(f"{args.zip}: the user script reads the ratings.csv layout; name the zip after such a release")
    task = TrainedALS(dataset=release.name)
    with tempfile.TemporaryDirectory(prefix="versus-") as tmp, mirror(release) as base_url:
        scratch = Path(tmp)
        with zipfile.ZipFile(release.path) as archive:
            csv = Path(archive.extract(release.ratings_member, scratch / "csv"))
        chain: list[dict] = []
        user: list[dict] = []
        for number in range(args.runs):
            sides = [("chain", chain), ("user", user)]
            for side, results in sides if number % 2 == 0 else reversed(sides):
                if side == "chain":
                    results.append(chain_run(release, base_url, scratch, number))
                else:
                    results.append(user_run(task.spark_submit, task.driver_memory, args.user, csv, scratch))
            print(
                f"run {number + 1}: chain {chain[-1]['seconds']:.1f} s (fit {chain[-1]['fit']:.1f} s), "
                f"user script {user[-1]['seconds']:.1f} s (fit {user[-1]['fit']:.1f} s)",
                file=sys.stderr,
            )

    def median(results: list[dict], field: str) -> float:
        return statistics.median(r[field] for r in results)

    c, u = median(chain, "seconds"), median(user, "seconds")
    cf, uf = median(chain, "fit"), median(user, "fit")
    label = USER_VARIANTS[args.user][0]
    print(f"\n{release.name} from {args.zip}, {args.runs} alternating runs; {label}\nMachine: {machine()}\n")
    print(
        f"| ratings | chain | {label} | **chain / user** | fit: TrainedALS | fit: user script | **fit speed-up** "
        "| RMSE: chain / user script | runs (chain / user) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    runs = "; ".join(f"{a['seconds']:.1f} / {b['seconds']:.1f}" for a, b in zip(chain, user, strict=True))
    print(
        f"| {release.name} | {c:.1f} s | {u:.1f} s | **{c / u:.2f}×** | {cf:.1f} s | {uf:.1f} s | **{uf / cf:.2f}×** | "
        f"{median(chain, 'rmse'):.6f} / {median(user, 'rmse'):.4f} | {runs} |"
    )


if __name__ == "__main__":
    main()
