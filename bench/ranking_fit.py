"""The ranking model's fit (TrainedEASE) against the rating model's (TrainedALS) on the same
split, alternating, with their peak memory; and the ranking chain once, with its quality.

    .venv/bin/python -m bench.ranking_fit [--runs 3] [--zip path/to/ml-latest-small.zip]
    .venv/bin/movielens-als-generate --ratings 10000000 --users 69878 --items 10677 path/to/10m/ml-25m.zip
    .venv/bin/python -m bench.ranking_fit --runs 3 --zip path/to/10m/ml-25m.zip

Run from the repository's root. The release is the one the zip's name says (a generated
ml-25m.zip has ml-25m's layout; the default zip is ml-latest-small.zip in ../shared/data); a
local HTTP mirror serves it. First the whole ranking chain runs once on an empty store
(`luigi --module pipeline EvaluatedRanking`: split, TunedEASE, TrainedEASE, TrainedALS,
EvaluatedRanking), then Recommendations (EASE's top 10 for every user). Then each fit is
removed from the store and run again, ALS and EASE in turn, `--runs` times, so a change in
machine load hits both. Times are the tasks' own ("finished in", spark-submit included);
memory is each Spark driver's peak resident set (JVM, and the Python that runs the job).
Prints the machine and a Markdown table.
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench.harness import SMALL_ZIP, Release, argument_parser, luigi_config, machine, mirror, run_luigi, write_config


def main() -> None:
    parser = argument_parser("bench.ranking_fit", __doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--zip", type=Path, default=SMALL_ZIP)
    args = parser.parse_args()
    release = Release.at(args.zip)
    with tempfile.TemporaryDirectory(prefix="ranking-fit-") as tmp, mirror(release) as base_url:
        scratch = Path(tmp)
        store = scratch / "store"
        config = write_config(luigi_config(release, base_url, store), scratch / "luigi.cfg")
        chain = run_luigi("EvaluatedRanking", config, release.name, scratch)
        serving = run_luigi("Recommendations", config, release.name, scratch)  # the top 10 of every user
        [ranking_path] = store.glob("evaluations/*/*/ease-tuned-*/ranking-vs-*.json")
        ranking = json.loads(ranking_path.read_text())
        [tuning_path] = store.glob("tuning/*/*/ease-grid-*/tuning.json")
        best = json.loads(tuning_path.read_text())["best"]
        fits: dict[str, list[dict]] = {"TrainedALS": [], "TrainedEASE": []}
        for _ in range(args.runs):
            for task, pattern in (("TrainedALS", "biased_als-*"), ("TrainedEASE", "ease-tuned-*")):
                [model_dir] = store.glob(f"models/*/*/{pattern}")
                shutil.rmtree(model_dir)
                run = run_luigi(task, config, release.name, scratch)
                run["fit_seconds"] = json.loads((model_dir / "model.json").read_text())["fit_seconds"]
                fits[task].append(run)
                print(f"{task}: {run['tasks'][task]:.1f} s (fit {run['fit_seconds']:.1f} s)", file=sys.stderr)
    report(release.name, args, chain, serving, ranking, best, fits)


def report(dataset, args, chain, serving, ranking, best, fits) -> None:
    def median(task: str, field: str) -> float:
        return statistics.median(r["tasks"][task] if field == "task" else r[field] for r in fits[task])

    def memory(task: str) -> str:
        jvm = max(r["memory"][0] for r in fits[task])
        python = max(r["memory"][1] for r in fits[task])
        return f"{jvm:,} / {python:,} MiB" if jvm else f"no JVM / {python:,} MiB"  # numpy drivers start none

    als, ease_time = median("TrainedALS", "task"), median("TrainedEASE", "task")
    models = ranking["models"]
    print(f"\n{dataset} ({args.zip}), {args.runs} alternating runs of each fit\nMachine: {machine()}\n")
    print(
        "| ratings | TrainedALS | TrainedEASE | **EASE / ALS** | fit alone: ALS / EASE | peak JVM / Python: ALS "
        "| peak JVM / Python: EASE | TunedEASE | EvaluatedRanking | EASE | NDCG@10: EASE / ALS / popular |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {dataset} | {als:.1f} s | {ease_time:.1f} s | **{ease_time / als:.2f}×** | "
        f"{median('TrainedALS', 'fit_seconds'):.1f} / {median('TrainedEASE', 'fit_seconds'):.1f} s | "
        f"{memory('TrainedALS')} | {memory('TrainedEASE')} | {chain['tasks']['TunedEASE']:.1f} s | "
        f"{chain['tasks']['EvaluatedRanking']:.1f} s ({chain['worker_memory']:,} MiB) | "
        f"{models['ease']['label']} | "
        f"{models['ease']['ndcg']:.4f} / {models['explicit']['ndcg']:.4f} / {models['popularity']['ndcg']:.4f} |"
    )
    print(f"\nbest of the tuning: {best}; ranked users: {ranking['users']} of {ranking['eligible_users']}")
    print(
        f"Recommendations (EASE's top 10 for every user): {serving['tasks']['Recommendations']:.1f} s, "
        f"luigi worker peak {serving['worker_memory']:,} MiB; the chain's largest Spark driver peaks (JVM / Python): "
        f"{chain['memory'][0]:,} / {chain['memory'][1]:,} MiB"
    )


if __name__ == "__main__":
    main()
