"""TunedALS's driver: searches rank x regParam x maxIter in one Spark application, on a
validation split carved from the training ratings only (the test ratings are never read),
and writes tuning.json: every candidate's validation RMSE and the winner.

Each candidate is fitted on the rest of the training ratings (ALS on Spark) and scored on
the validation ratings (numpy, from the factor tables, as the evaluation does). For biased
ALS, calibration weights (see movielens_als.model) are then fitted on the validation ratings
too, and candidates are ranked by their calibrated validation RMSE; the
winner's weights go into the final model, which TrainedALS fits on all the training ratings.
"""

from __future__ import annotations

import itertools
import json
import sys
import time

import numpy as np

from movielens_als import metrics
from movielens_als.columns import ITEM, RATING, USER
from movielens_als.model import MODELS, fit_calibration, model_from_tables
from movielens_als.split import STRATEGIES, describe, split_ratings
from pipeline.store import utc_now
from spark_jobs import als
from spark_jobs.common import job_parser, job_store, progress, spark_session

VALIDATION_FRACTION = 0.2


def parse_args(argv: list[str] | None):
    parser = job_parser(__doc__)
    parser.add_argument("--train", required=True, help="key of the training ratings (Parquet)")
    parser.add_argument("--output", required=True, help="key of tuning.json")
    parser.add_argument("--model", choices=MODELS, required=True)
    parser.add_argument("--ranks", type=json.loads, required=True, help="JSON list")
    parser.add_argument("--reg-params", type=json.loads, required=True, help="JSON list")
    parser.add_argument("--max-iters", type=json.loads, required=True, help="JSON list")
    parser.add_argument("--strategy", choices=list(STRATEGIES), required=True, help="how to carve the validation split")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--rating-min", type=float, required=True)
    parser.add_argument("--rating-max", type=float, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    store = job_store(args)
    grid = list(itertools.product(args.ranks, args.reg_params, args.max_iters))
    with spark_session() as spark:
        train = store.read_parquet(args.train)
        # A seed of its own, so the validation split is not the test split's twin.
        fit_part, validation = split_ratings(train, args.strategy, VALIDATION_FRACTION, args.seed + 1)
        validation_users, validation_items = validation.column(USER).to_numpy(), validation.column(ITEM).to_numpy()
        actual = validation.column(RATING).to_numpy().astype(np.float64)
        candidates = []
        for n, (rank, reg_param, max_iter) in enumerate(grid):
            progress(
                5 + 90 * n // len(grid),
                f"candidate {n + 1} of {len(grid)}: rank {rank}, regParam {reg_param}, {max_iter} iterations",
            )
            started = time.perf_counter()
            users, items, global_mean = als.fit(spark, fit_part, args.model, rank, reg_param, max_iter, args.seed)
            description = {
                "model": args.model,
                "global_mean": global_mean,
                "rating_scale": [args.rating_min, args.rating_max],
            }
            model = model_from_tables(description, users, items)
            parts = model.parts(validation_users, validation_items)
            scored = parts["baseline"], parts["dot"], parts["both_known"], parts["user_count"], parts["item_count"]
            candidate = {
                "rank": rank,
                "reg_param": reg_param,
                "max_iter": max_iter,
                "validation_rmse": metrics.rmse(model.combine(*scored), actual),
                "calibration": None,
            }
            if args.model == "biased_als":
                calibration = fit_calibration(
                    parts["baseline"], parts["dot"], parts["user_count"], parts["item_count"], actual
                )
                calibrated = model_from_tables({**description, "calibration": calibration}, users, items)
                candidate["calibration"] = calibration
                candidate["validation_rmse_calibrated"] = metrics.rmse(calibrated.combine(*scored), actual)
            candidate["seconds"] = round(time.perf_counter() - started, 2)
            candidates.append(candidate)
        key = "validation_rmse_calibrated" if args.model == "biased_als" else "validation_rmse"
        best = min(candidates, key=lambda c: c[key])
        store.write_json(
            args.output,
            {
                "model": args.model,
                "params": args.params,
                "grid": {"ranks": args.ranks, "reg_params": args.reg_params, "max_iters": args.max_iters},
                "selected_by": key,
                "validation": {
                    "strategy": args.strategy,
                    "fraction": VALIDATION_FRACTION,
                    "seed": args.seed + 1,
                    "fit": describe(fit_part),
                    "validation": describe(validation),
                },
                "candidates": candidates,
                "best": best,
                "spark_version": spark.version,
                "tuned_at": utc_now(),
            },
        )
        progress(
            100,
            f"best of {len(grid)}: rank {best['rank']}, regParam {best['reg_param']}, "
            f"{best['max_iter']} iterations ({key} {best[key]:.4f})",
        )


if __name__ == "__main__":
    main(sys.argv[1:])
