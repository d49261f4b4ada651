"""Both models on the protocols the field publishes on, beside the published figures.

    .venv/bin/python -m bench.protocols [--folds u1,u2,u3,u4,u5] [--seeds 42,43,44] [--only rating|ranking|small]

Run from the repository's root; it reads ../shared/data/ml-100k.zip and ml-latest-small.zip
(ml-100k may not be redistributed: only a shared copy can be used) and serves them from a
local mirror, with their MD5s pinned. One store holds every run, so the downloads and splits
are shared. The tables:

- rating: RMSE on ml-100k's official folds (`--strategy official --fold uN`): the default
  model, TunedALS's best alone (`--tuned --bpmf-sweeps 0`) and `--tuned` (TunedALS's best or
  the Bayesian model, as validation chooses), with the bias baseline from the same
  metrics.json, per fold and their mean; and the `--tuned` chain's seconds with and without
  the Bayesian model.
- ranking: recommenders' MovieLens-100k benchmark, `Recommendations --strategy item_random
  --test-fraction 0.25 --seed S --relevant-rating 1`: the served lists' NDCG, precision and
  recall at 10 (EvaluatedRanking's figures for them), per seed and their mean.
- small: the same three on ml-latest-small's reference split (`--strategy random --seed 42`,
  the `default_rng(42).random(n) < 0.8` mask of shared/data/README.md).
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


TUNED_ALS_TASKS = ("TunedALS", "TrainedALS", "EvaluatedRMSE")
BAYESIAN_TASKS = ("ValidatedBPMF", "TrainedBPMF", "EvaluatedRMSE")


def three_models(run, where: str, *split: str) -> dict:
    """The default model, `--tuned --bpmf-sweeps 0` (TunedALS's best alone, the tuned chain
    before the Bayesian model) and `--tuned` (the one validation prefers of TunedALS's best and
    the Bayesian model) on one split, with each tuned chain's seconds: the second reuses
    TunedALS and TrainedALS from the first, so they count in both."""
    run("EvaluatedRMSE", *split)
    als_alone, store = run("EvaluatedRMSE", *split, "--tuned", "--bpmf-sweeps", "0")
    chosen, _ = run("EvaluatedRMSE", *split, "--tuned")
    seconds = {
        "als": sum(s for t, s in als_alone["tasks"].items() if t in TUNED_ALS_TASKS),
        "bayesian": sum(s for t, s in chosen["tasks"].items() if t in BAYESIAN_TASKS),
    }
    seconds["both"] = seconds["als"] - als_alone["tasks"].get("EvaluatedRMSE", 0.0) + seconds["bayesian"]
    tuned = metrics_of(store, f"{where}/biased_als-tuned-*-or-bpmf-*/metrics.json")
    return {
        "default": metrics_of(store, f"{where}/biased_als-rank32-*/metrics.json"),
        "als": metrics_of(store, f"{where}/biased_als-tuned-grid-????????/metrics.json"),
        "tuned": tuned,
        "chosen": "Bayesian" if tuned["model_type"] == "bpmf" else "ALS",
        "seconds": seconds,
    }


def cost(seconds: dict) -> str:
    return f"{seconds['als']:.0f} / {seconds['both']:.0f} ({seconds['both'] / seconds['als']:.2f}×)"


def rating(run, folds: list[str]) -> None:
    rows = []
    for fold in folds:
        result = three_models(
            run, f"evaluations/ml-100k/official-{fold}-seed42", "--strategy", "official", "--fold", fold
        )
        rows.append((fold, result))
        print(f"{fold}: {json.dumps({k: v for k, v in result.items() if k == 'seconds'})}", file=sys.stderr)
    print("RMSE on ml-100k's official folds (`--strategy official --fold uN`)\n")
    print(
        "| fold | bias baseline | biased ALS, default | TunedALS's best alone (`--bpmf-sweeps 0`) | **`--tuned`** "
        "| chosen on validation | tuned chain, s: ALS alone / with the Bayesian model |"
    )
    print("|---|---|---|---|---|---|---|")
    for fold, r in rows:
        print(
            f"| {fold} | {r['default']['baselines']['bias']['rmse']:.4f} | {r['default']['rmse']:.4f} "
            f"| {r['als']['rmse']:.4f} | **{r['tuned']['rmse']:.4f}** | {r['chosen']} "
            f"| {cost(r['seconds'])} |"
        )
    means = [
        statistics.mean(f(r) for _, r in rows)
        for f in (
            lambda r: r["default"]["baselines"]["bias"]["rmse"],
            lambda r: r["default"]["rmse"],
            lambda r: r["als"]["rmse"],
            lambda r: r["tuned"]["rmse"],
        )
    ]
    total = {k: sum(r["seconds"][k] for _, r in rows) for k in ("als", "both")}
    print(
        f"| mean of {len(rows)} | {means[0]:.4f} | {means[1]:.4f} | {means[2]:.4f} | **{means[3]:.4f}** | "
        f"| {cost(total)} (all folds) |\n"
    )
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
        chosen = (
            f"ratings ≥ {best['positive_rating']:g}, λ {best['l2']:g}, genre weight {best['genre_weight']:g}, "
            f"β {best['popularity_exponent']:g}"
        )
        print(f"| {seed} | {ndcg:.4f} | {precision:.4f} | {recall:.4f} | {chosen} |")
    means = [statistics.mean(r[i] for r in rows) for i in (1, 2, 3)]
    print(f"| mean | **{means[0]:.4f}** | **{means[1]:.4f}** | **{means[2]:.4f}** | |\n")
    for name, *figures in PUBLISHED_RANKING:
        print(f"- published: {name} " + " / ".join("—" if f is None else f"{f:.4f}" for f in figures))
    print()


def small(run) -> None:
    r = three_models(run, "evaluations/ml-latest-small/random-0.2-seed42", "--strategy", "random", "--seed", "42")
    print("RMSE on ml-latest-small's reference split (`--strategy random --seed 42`)\n")
    print(
        "| bias baseline | biased ALS, default | TunedALS's best alone | **`--tuned`** | chosen on validation "
        "| tuned chain, s: ALS alone / with the Bayesian model |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| {r['default']['baselines']['bias']['rmse']:.4f} | {r['default']['rmse']:.4f} | {r['als']['rmse']:.4f} "
        f"| **{r['tuned']['rmse']:.4f}** | {r['chosen']} | {cost(r['seconds'])} |\n"
    )


if __name__ == "__main__":
    main()
