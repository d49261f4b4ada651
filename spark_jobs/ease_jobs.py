"""The drivers of TunedEASE and TrainedEASE (movielens_als.ease): the ranking model's tuning
and fit, submitted through spark-submit like every fit, so they run where the pipeline's
Spark drivers run, with the memory, environment and logs the pipeline gives them.

They start no SparkContext. EASE's work is one sparse Gram matrix and one dense Cholesky
inverse of at most max_items² cells: dense linear algebra in one process, which LAPACK does
at the machine's peak (about 150 Gflop/s here) and Spark does not distribute (MLlib's
RowMatrix collects its Gram matrix to the driver as float64 and has no inverse), while a
SparkContext would only add its start-up (see README, "The ranking model").

    python -m spark_jobs.ease_jobs tune  --train K --output K --l2s JSON --positive-ratings JSON ...
    python -m spark_jobs.ease_jobs train --train K --output K --l2 X --positive-rating X ...
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

import pyarrow as pa
import pyarrow.parquet as pq

from movielens_als import ease, metrics
from movielens_als.model import MODEL_JSON
from movielens_als.ranking import ease_ranker, rating_arrays
from movielens_als.split import STRATEGIES, describe, split_ratings
from pipeline.store import utc_now
from spark_jobs.common import job_parser, job_store, peak_memory, progress

# The share of each user's training ratings the tuning holds out, as TunedALS does.
VALIDATION_FRACTION = 0.2


def parse_args(argv: list[str] | None):
    parser = job_parser(__doc__)
    parser.add_argument("command", choices=("tune", "train"))
    parser.add_argument("--train", required=True, help="key of the training ratings (Parquet)")
    parser.add_argument("--output", required=True, help="key of tuning.json (tune) or of the model directory (train)")
    parser.add_argument("--max-items", type=int, required=True, help="the most-liked items modelled")
    parser.add_argument("--seed", type=int, required=True, help="seed of the validation split (tune)")
    parser.add_argument("--strategy", choices=list(STRATEGIES), help="how to carve the validation split (tune)")
    parser.add_argument("--l2s", type=json.loads, help="λs to try, as a JSON list (tune)")
    parser.add_argument("--positive-ratings", type=json.loads, help="thresholds to try, as a JSON list (tune)")
    parser.add_argument("--l2", type=float, help="λ (train)")
    parser.add_argument("--positive-rating", type=float, help="the lowest rating that counts as liked (train)")
    parser.add_argument("--tuning", help="key of the tuning.json the hyper-parameters come from (train)")
    return parser.parse_args(argv)


def tune(args, store) -> None:
    """Every (positive rating, λ) fitted on the training ratings less a validation split
    carved from them, ranked by NDCG at metrics.RANKING_K on it; the test ratings are never
    read. tuning.json holds every candidate and the winner."""
    train = store.read_parquet(args.train)
    # A seed of its own, so the validation split is not the test split's twin.
    fit_part, validation = split_ratings(train, args.strategy, VALIDATION_FRACTION, args.seed + 1)
    fit_columns, validation_columns = rating_arrays(fit_part), rating_arrays(validation)
    candidates = []
    grid = len(args.positive_ratings) * len(args.l2s)
    for threshold in args.positive_ratings:
        started = time.perf_counter()
        for model in ease.fit(*fit_columns, threshold, args.l2s, args.max_items):
            ranker = ease_ranker(model, *fit_columns)
            result = metrics.compare_rankers(
                {"ease": ranker},
                fit_columns[0],
                fit_columns[1],
                *validation_columns,
                metrics.RANKING_K,
                metrics.RANKING_USERS,
                args.seed,
            )
            candidate = {"positive_rating": threshold, "l2": model.l2, **result["ease"], "items": len(model.items)}
            candidates.append(candidate)
            progress(
                5 + 90 * len(candidates) // grid,
                f"ratings ≥ {threshold:g}, λ {model.l2:g}: validation NDCG@{result['k']} {candidate['ndcg']:.4f} "
                f"({time.perf_counter() - started:.1f} s)",
            )
            started = time.perf_counter()
    best = max(candidates, key=lambda c: (c["ndcg"], -c["l2"], -c["positive_rating"]))
    # A winner at either end of the λ grid may not be the best λ at all.
    edge = len(args.l2s) > 1 and best["l2"] in (min(args.l2s), max(args.l2s))
    if edge:
        warning = f"the best λ, {best['l2']:g}, is at an end of the grid {args.l2s}; try --l2s beyond it"
        print(f"warning: {warning}", flush=True)
    store.write_json(
        args.output,
        {
            "params": args.params,
            "selected_by": "ndcg",
            "k": metrics.RANKING_K,
            "validation": {
                "fraction": VALIDATION_FRACTION,
                "seed": args.seed + 1,
                "fit": describe(fit_part),
                "validation": describe(validation),
            },
            "candidates": candidates,
            "best": {"positive_rating": best["positive_rating"], "l2": best["l2"], "ndcg": best["ndcg"]},
            "best_at_grid_edge": edge,
            "tuned_at": utc_now(),
        },
    )
    progress(100, f"best: ratings ≥ {best['positive_rating']:g}, λ {best['l2']:g} (validation NDCG {best['ndcg']:.4f})")


def train(args, store) -> None:
    """EASE fitted on all the training ratings: items.parquet, weights.npy and model.json, flag last."""
    train_bytes = store.read_bytes(args.train)
    table = pq.read_table(pa.BufferReader(train_bytes))
    progress(10, f"fitting EASE (ratings ≥ {args.positive_rating:g}, λ {args.l2:g}) on {table.num_rows} ratings")
    started = time.perf_counter()
    [model] = ease.fit(*rating_arrays(table), args.positive_rating, [args.l2], args.max_items)
    fit_seconds = time.perf_counter() - started
    progress(80, f"fitted {len(model.items)} items in {fit_seconds:.1f} s; writing {store.uri(args.output)}")
    for name, content in ease.to_files(model).items():
        if isinstance(content, pa.Table):
            store.write_parquet(f"{args.output}/{name}", content)
        else:
            store.write_bytes(f"{args.output}/{name}", content)
    store.write_json(
        f"{args.output}/{MODEL_JSON}",
        {
            "model": "ease",
            "params": args.params,
            "formula": "s(u, j) = sum_i X_ui B_ij, B = -P / diag(P) with a zero diagonal, P = (X'X + l2 I)^-1",
            "positive_rating": args.positive_rating,
            "l2": args.l2,
            "max_items": args.max_items,
            "items": len(model.items),
            "tuning": args.tuning,
            "train": {"key": args.train, "sha256": hashlib.sha256(train_bytes).hexdigest(), **describe(table)},
            "fit_seconds": round(fit_seconds, 3),
            "trained_at": utc_now(),
        },
    )
    store.mark_complete(args.output)
    progress(100, f"model stored at {store.uri(args.output)}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    (tune if args.command == "tune" else train)(args, job_store(args))
    if memory := peak_memory():
        print(f"driver peak resident memory: {memory}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
