"""Wall time and peak memory of the whole chain against one spark-submit of bench/bare_als.py.

    .venv/bin/python -m bench.compare_bare [--runs 5] [--zip path/to/ml-latest-small.zip]
    .venv/bin/movielens-als-generate --ratings 10000000 --users 69878 --items 10677 path/to/10m/ml-25m.zip
    .venv/bin/python -m bench.compare_bare --runs 3 --zip path/to/10m/ml-25m.zip

Run from the repository's root. The release is the one the zip's name says (a generated
ml-25m.zip has ml-25m's layout); the default zip is ml-latest-small.zip in ../shared/data.
Both sides get the same Spark settings (the pipeline's own spark-submit command line, from
the [spark] section of luigi.cfg or of the file LUIGI_CONFIG_PATH names) and the same zip,
served by a local HTTP mirror to the pipeline and read from disk by the bare script. Runs
alternate between the two so that a change in machine load hits both; every pipeline run
starts from an empty store, so it downloads, splits, trains and evaluates. Then, on the last
run's store, a rerun with nothing to do and a rerun with another rank (only TrainedALS and
EvaluatedRMSE run again). Prints the machine and a Markdown table of medians.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

from bench.harness import (
    REPO,
    SMALL_ZIP,
    Release,
    argument_parser,
    json_line,
    luigi_config,
    machine,
    mirror,
    peak_memory,
    run,
    run_luigi,
    write_config,
)


def pipeline_run(release: Release, base_url: str, scratch: Path, number: int, *args: str) -> dict:
    """One run of the chain on the store of run `number` (empty unless an earlier call filled it)."""
    store = scratch / f"store-{number}"
    config = write_config(luigi_config(release, base_url, store), scratch / f"luigi-{number}.cfg")
    result = run_luigi("EvaluatedRMSE", config, release.name, scratch, *args)
    metrics = max((store / "evaluations").rglob("metrics.json"), key=lambda m: m.stat().st_mtime)
    return {**result, "rmse": json.loads(metrics.read_text())["rmse"]}


def bare_run(release: Release, spark_args: list[str], scratch: Path) -> dict:
    script = str(REPO / "bench" / "bare_als.py")
    seconds, out, _ = run("bare_als.py", [*spark_args, script, str(release.path), release.ratings_member], scratch)
    return {"seconds": seconds, "rmse": json_line(out)["rmse"], "memory": peak_memory(out)}


def main() -> None:
    parser = argument_parser("bench.compare_bare", __doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--zip", type=Path, default=SMALL_ZIP)
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
    from pipeline import TrainedALS
    from pipeline.sparkjob import ClassArchive, spark_driver

    release = Release.at(args.zip)
    if RELEASES[release.name].delimiter != ",":
        sys.exit(f"{args.zip}: the bare script reads the ratings.csv layout; name the zip after such a release")

    # The pipeline's own spark-submit command line, without its --name: identical settings.
    task = TrainedALS(dataset=release.name)  # the same driver memory, which is sized from the release
    bare_args = task.spark_command()
    del bare_args[bare_args.index("--name") : bare_args.index("--name") + 2]

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp, mirror(release) as base_url:
        scratch = Path(tmp)
        sides = {
            "pipeline": lambda number: pipeline_run(release, base_url, scratch, number),
            "bare": lambda number: bare_run(release, bare_args, scratch),
        }
        if args.archive_side and spark_driver().class_archive_dir:
            archive = ClassArchive(Path(spark_driver().class_archive_dir), task.spark_submit)
            archive_args = list(bare_args)
            options = archive_args.index("--driver-java-options") + 1
            archive_args[options] += f" -XX:SharedArchiveFile={archive.path} -Xlog:cds*=off"
            sides["bare with the class archive"] = lambda number: bare_run(release, archive_args, scratch)
        results: dict[str, list[dict]] = {side: [] for side in sides}
        if not args.no_warm_up:
            warm_up = sides["pipeline"](-1)  # writes the class archive if there is none yet
            print(f"warm-up pipeline run: {warm_up['seconds']:.1f} s", file=sys.stderr)
        for number in range(args.runs):
            order = list(sides) if number % 2 == 0 else list(reversed(sides))
            for side in order:
                results[side].append(sides[side](number))
            print(
                f"run {number + 1}: " + ", ".join(f"{side} {results[side][-1]['seconds']:.1f} s" for side in sides),
                file=sys.stderr,
            )
        last = args.runs - 1
        reruns = {
            "rerun with nothing to do": pipeline_run(release, base_url, scratch, last),
            "rerun with rank 16 (train and evaluate only)": pipeline_run(
                release, base_url, scratch, last, "--rank", "16"
            ),
        }

    report(f"{release.name} from {args.zip}", args.runs, results, reruns)


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
