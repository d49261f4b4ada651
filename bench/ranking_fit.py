"""The ranking model's fit (TrainedEASE) against the rating model's (TrainedALS) on the same
split, alternating, with their peak memory; and the ranking chain once, with its quality.

    .venv/bin/python bench/ranking_fit.py [--runs 3] [--zip ../shared/data/ml-latest-small.zip]
    .venv/bin/movielens-als-generate --ratings 10000000 --users 69878 --items 10677 /tmp/r10m/ml-25m.zip
    .venv/bin/python bench/ranking_fit.py --runs 3 --zip /tmp/r10m/ml-25m.zip

The release is the one the zip's name says; a local HTTP mirror serves it. First the whole
ranking chain runs once on an empty store (`luigi --module pipeline EvaluatedRanking`: split,
TunedEASE, TrainedEASE, TrainedALS, EvaluatedRanking), then Recommendations (EASE's top 10
for every user). Then each fit is removed from the store
and run again, ALS and EASE in turn, `--runs` times, so a change in machine load hits both.
Times are the tasks' own ("finished in", spark-submit included); memory is each Spark
driver's peak resident set (JVM, and the Python that runs the job). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare_bare import LUIGI_WITH_PEAK, REPO, TASK_TIME, WORKER_MEMORY, machine, peak_memory, serve


def luigi(task: str, config: Path, dataset: str, scratch: Path) -> dict:
    started = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            LUIGI_WITH_PEAK,
            "--module",
            "pipeline",
            task,
            "--local-scheduler",
            "--dataset",
            dataset,
        ],
        env=dict(os.environ, LUIGI_CONFIG_PATH=str(config)),
        capture_output=True,
        text=True,
        cwd=scratch,
    )
    if result.returncode != 0:
        sys.exit(f"{task} failed:\n{result.stderr[-5000:]}")
    return {
        "seconds": time.perf_counter() - started,
        "tasks": {m[1]: float(m[2]) for m in TASK_TIME.finditer(result.stderr)},
        "memory": peak_memory(result.stderr),
        "worker_memory": int(WORKER_MEMORY.search(result.stderr)[1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--zip", type=Path, default=REPO.parent / "shared" / "data" / "ml-latest-small.zip")
    args = parser.parse_args()
    dataset = args.zip.name.removesuffix(".zip")
    scratch = Path(tempfile.mkdtemp(prefix="ranking-fit-"))
    mirror = scratch / "mirror"
    mirror.mkdir()
    shutil.copy(args.zip, mirror / args.zip.name)
    server, base_url = serve(mirror)
    config = configparser.ConfigParser(interpolation=None)
    config.read(os.environ.get("LUIGI_CONFIG_PATH", REPO / "luigi.cfg"))
    store = scratch / "store"
    config["store"] = {"root": str(store)}
    md5 = hashlib.md5(args.zip.read_bytes()).hexdigest()
    config["movielens"] = {"base_url": base_url, "md5s": json.dumps({dataset: md5})}
    config_path = scratch / "luigi.cfg"
    with open(config_path, "w") as f:
        config.write(f)
    try:
        chain = luigi("EvaluatedRanking", config_path, dataset, scratch)
        serving = luigi("Recommendations", config_path, dataset, scratch)  # the top 10 of every user
        [ranking_path] = store.glob("evaluations/*/*/ease-tuned-*/ranking-vs-*.json")
        ranking = json.loads(ranking_path.read_text())
        [tuning_path] = store.glob("tuning/*/*/ease-grid-*/tuning.json")
        best = json.loads(tuning_path.read_text())["best"]
        fits: dict[str, list[dict]] = {"TrainedALS": [], "TrainedEASE": []}
        for _ in range(args.runs):
            for task, pattern in (("TrainedALS", "biased_als-*"), ("TrainedEASE", "ease-tuned-*")):
                [model_dir] = store.glob(f"models/*/*/{pattern}")
                shutil.rmtree(model_dir)
                run = luigi(task, config_path, dataset, scratch)
                run["fit_seconds"] = json.loads((model_dir / "model.json").read_text())["fit_seconds"]
                fits[task].append(run)
                print(f"{task}: {run['tasks'][task]:.1f} s (fit {run['fit_seconds']:.1f} s)", file=sys.stderr)
    finally:
        server.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)
    report(dataset, args, chain, serving, ranking, best, fits)


def report(dataset, args, chain, serving, ranking, best, fits) -> None:
    def median(task: str, field: str) -> float:
        return statistics.median(r["tasks"][task] if field == "task" else r[field] for r in fits[task])

    def memory(task: str) -> str:
        jvm = max(r["memory"][0] for r in fits[task])
        python = max(r["memory"][1] for r in fits[task])
        return f"{jvm:,} / {python:,} MiB"

    als, ease_time = median("TrainedALS", "task"), median("TrainedEASE", "task")
    models = ranking["models"]
    print(f"\n{dataset} ({args.zip}), {args.runs} alternating runs of each fit; {machine()}\n")
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
