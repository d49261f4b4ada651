"""Both models on the protocols the field publishes on, beside the published figures.

    .venv/bin/python -m bench.protocols [--folds u1,u2,u3,u4,u5] [--seeds 42,43,44] [--only rating|ranking|small]

Run from the repository's root; it reads ../shared/data/ml-100k.zip and ml-latest-small.zip
(ml-100k may not be redistributed: only a shared copy can be used) and serves them from a
local mirror, with their MD5s pinned. One store holds every run, so the downloads and splits
are shared. The tables:

- rating: RMSE on ml-100k's official folds (`--strategy official --fold uN`), the default
  model and `--tuned`, with the bias baseline from the same metrics.json, per fold and their
  mean; and the `--tuned` chain's time against the default chain's, per fold.
- ranking: recommenders' MovieLens-100k benchmark, `Recommendations --strategy item_random
  --test-fraction 0.25 --seed S --relevant-rating 1`: the served lists' NDCG, precision and
  recall at 10 (EvaluatedRanking's figures for them), per seed and their mean.
- small: RMSE on ml-latest-small's reference split (`--strategy random --seed 42`, the
  `default_rng(42).random(n) < 0.8` mask of shared/data/README.md), default and `--tuned`.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import tempfile
from pathlib import Path

from bench.harness import SMALL_ZIP, Release, argument_parser, luigi_config, machine, mirror, run_luigi, write_config

ML_100K_ZIP = SMALL_ZIP.parent / "ml-100k.zip"
# Published figures, with their sources (protocols as above).
PUBLISHED_RMSE_U1 = [
    ("GLocal-K (Han et al. 2021; epoch chosen on the test set)", 0.8889),
    ("IGMC (Zhang and Chen 2020)", 0.905),
    ("GC-MC (van den Berg et al. 2017)", 0.905),
]
PUBLISHED_RMSE_MEAN = [("Surprise 1.1.5 SVD++, u1–u5", 0.9218), ("Surprise 1.1.5 SVD, u1–u5", 0.9380)]
PUBLISHED_RANKING = [  # recommenders' MovieLens-100k benchmark: NDCG@10, P@10, R@10
    ("BiVAE", 0.4751, 0.4118, 0.2191),
    ("BPR", 0.4420, None, None),
    ("LightGCN", 0.4198, None, None),
    ("NCF", 0.3961, None, None),
    ("SAR", 0.3825, None, None),
    ("Spark ALS", 0.0442, None, None),
]


def main() -> None:
    parser = argument_parser("bench.protocols", __doc__)
    parser.add_argument("--folds", default="u1,u2,u3,u4,u5")
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--only", choices=("rating", "ranking", "small"))
    args = parser.parse_args()
    if not ML_100K_ZIP.is_file():
        sys.exit(f"{ML_100K_ZIP} is absent: this benchmark needs the shared copy of ml-100k")
    print(f"Machine: {machine()}\n")
    with tempfile.TemporaryDirectory(prefix="protocols-") as tmp, contextlib.ExitStack() as stack:
        scratch = Path(tmp)
        if args.only in (None, "rating", "ranking"):
            run_100k = runner(stack, scratch, ML_100K_ZIP)
        if args.only in (None, "rating"):
            rating(run_100k, args.folds.split(","))
        if args.only in (None, "ranking"):
            ranking(run_100k, [int(s) for s in args.seeds.split(",")])
        if args.only in (None, "small"):
            small(runner(stack, scratch, SMALL_ZIP))


def runner(stack: contextlib.ExitStack, scratch: Path, zip_path: Path):
    """A function that runs a task on the release of `zip_path` (served by a mirror for as long
    as `stack` is open), every run in one store."""
    release = Release.at(zip_path)
    store = scratch / "store"
    base_url = stack.enter_context(mirror(release))
    config = write_config(luigi_config(release, base_url, store), scratch / f"{release.name}.cfg")

    def run(task: str, *options: str) -> tuple[dict, Path]:
        return run_luigi(task, config, release.name, scratch, *options), store

    return run


def metrics_of(store: Path, pattern: str) -> dict:
    [path] = store.glob(pattern)
    return json.loads(path.read_text())


def rating(run, folds: list[str]) -> None:
    rows = []
    for fold in folds:
        split = ["--strategy", "official", "--fold", fold]
        default_run, store = run("EvaluatedRMSE", *split)
        tuned_run, _ = run("EvaluatedRMSE", *split, "--tuned")
        where = f"evaluations/ml-100k/official-{fold}-seed42"
        default = metrics_of(store, f"{where}/biased_als-rank32-*/metrics.json")
        tuned = metrics_of(store, f"{where}/biased_als-tuned-*/metrics.json")
        # The tuned chain reuses the download and the split: its cost is its own tasks.
        tuned_seconds = sum(
            s for t, s in tuned_run["tasks"].items() if t in ("TunedALS", "TrainedALS", "EvaluatedRMSE")
        )
        default_seconds = sum(s for t, s in default_run["tasks"].items() if t in ("TrainedALS", "EvaluatedRMSE"))
        rows.append((fold, default["baselines"]["bias"]["rmse"], default["rmse"], tuned["rmse"]))
        print(
            f"{fold}: default {default['rmse']:.4f}, tuned {tuned['rmse']:.4f} "
            f"(model {default_seconds:.1f} s, tuned {tuned_seconds:.1f} s)",
            file=sys.stderr,
        )
    print("RMSE on ml-100k's official folds (`--strategy official --fold uN`)\n")
    print("| fold | bias baseline | biased ALS, default | biased ALS, `--tuned` |")
    print("|---|---|---|---|")
    for fold, bias, default, tuned in rows:
        print(f"| {fold} | {bias:.4f} | {default:.4f} | {tuned:.4f} |")
    means = [statistics.mean(r[i] for r in rows) for i in (1, 2, 3)]
    print(f"| mean of {len(rows)} | {means[0]:.4f} | {means[1]:.4f} | **{means[2]:.4f}** |\n")
    for name, value in PUBLISHED_RMSE_U1:
        print(f"- published on u1: {name} {value}")
    for name, value in PUBLISHED_RMSE_MEAN:
        print(f"- published, mean of u1–u5: {name} {value}")
    print()


def ranking(run, seeds: list[int]) -> None:
    rows = []
    for seed in seeds:
        split = ["--strategy", "item_random", "--test-fraction", "0.25", "--seed", str(seed), "--relevant-rating", "1"]
        _, store = run("Recommendations", *split)
        _, store = run("EvaluatedRanking", *split)
        result = metrics_of(store, f"evaluations/ml-100k/item_random-0.25-seed{seed}/ease-tuned-*/ranking-vs-*.json")
        served = result["models"]["ease"]
        tuning = metrics_of(store, f"tuning/ml-100k/item_random-0.25-seed{seed}/ease-grid-*/tuning.json")["best"]
        rows.append((seed, served["ndcg"], served["precision"], served["recall"], tuning))
    print("Top 10 on recommenders' MovieLens-100k benchmark (per-item 75/25, every test rating relevant)\n")
    print("| seed | NDCG@10 | P@10 | R@10 | chosen on validation |")
    print("|---|---|---|---|---|")
    for seed, ndcg, precision, recall, best in rows:
        chosen = f"ratings ≥ {best['positive_rating']:g}, λ {best['l2']:g}"
        print(f"| {seed} | {ndcg:.4f} | {precision:.4f} | {recall:.4f} | {chosen} |")
    means = [statistics.mean(r[i] for r in rows) for i in (1, 2, 3)]
    print(f"| mean | **{means[0]:.4f}** | **{means[1]:.4f}** | **{means[2]:.4f}** | |\n")
    for name, *figures in PUBLISHED_RANKING:
        print(f"- published: {name} " + " / ".join("—" if f is None else f"{f:.4f}" for f in figures))
    print()


def small(run) -> None:
    split = ["--strategy", "random", "--seed", "42"]
    _, store = run("EvaluatedRMSE", *split)
    _, store = run("EvaluatedRMSE", *split, "--tuned")
    where = "evaluations/ml-latest-small/random-0.2-seed42"
    default = metrics_of(store, f"{where}/biased_als-rank32-*/metrics.json")
    tuned = metrics_of(store, f"{where}/biased_als-tuned-*/metrics.json")
    print("RMSE on ml-latest-small's reference split (`--strategy random --seed 42`)\n")
    print("| bias baseline | biased ALS, default | biased ALS, `--tuned` |")
    print("|---|---|---|")
    print(f"| {default['baselines']['bias']['rmse']:.4f} | {default['rmse']:.4f} | {tuned['rmse']:.4f} |\n")


if __name__ == "__main__":
    main()
