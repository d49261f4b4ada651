"""EvaluatedRMSE's driver: scores every test rating with the stored model and writes
metrics.json: errors of the model and of the baselines on the same rows, errors by user
activity and for cold users and items, ranking quality at k against a most-popular
baseline, and the distribution of predicted and actual ratings.

Spark joins the test ratings with both factor tables and computes the factor products; the
driver turns them into predictions with the model's formula (pipeline.model) and computes
the metrics (pipeline.metrics). Unseen users and items fall back to the bias terms (to the
global mean for plain ALS), so every test row counts.
"""

from __future__ import annotations

import sys

import numpy as np

from pipeline import metrics
from pipeline.model import ITEM_FACTORS, MODEL_JSON, USER_FACTORS, model_from_tables
from pipeline.store import Store
from spark_jobs import als
from spark_jobs.common import job_parser, progress, spark_session, utc_now

# Above this many users, ranking metrics are computed on a seeded sample of them.
RANKING_USERS = 10_000
RANKING_K = 10


def parse_args(argv: list[str] | None):
    parser = job_parser(__doc__)
    parser.add_argument("--train", required=True, help="key of the training ratings (Parquet)")
    parser.add_argument("--test", required=True, help="key of the test ratings (Parquet)")
    parser.add_argument("--model", required=True, help="key of the model directory written by train_als.py")
    parser.add_argument("--output", required=True, help="key of metrics.json")
    parser.add_argument("--seed", type=int, default=42, help="seed of the ranking users' sample")
    return parser.parse_args(argv)


def evaluate(model, parts: dict[str, np.ndarray], train, test, seed: int) -> dict:
    """Every metric of metrics.json from the scored test rows (`parts`, from als.score)."""
    actual = test.column("rating").to_numpy().astype(np.float64)
    baseline = model.global_mean + parts["user_bias"] + parts["item_bias"]
    prediction = model.combine(baseline, parts["dot"], parts["both_known"], parts["user_count"], parts["item_count"])
    bias = np.clip(baseline, *model.rating_scale)
    global_mean = np.full(len(actual), np.clip(model.global_mean, *model.rating_scale))
    covered, user_known, item_known = parts["both_known"], parts["user_known"], parts["item_known"]
    bias_rmse = metrics.rmse(bias, actual)
    model_rmse = metrics.rmse(prediction, actual)
    return {
        "rmse": model_rmse,
        "mae": metrics.mae(prediction, actual),
        "n_test": len(actual),
        "coverage": float(covered.mean()),
        "rmse_covered": metrics.rmse(prediction[covered], actual[covered]),
        "baselines": {
            "global_mean": {"rmse": metrics.rmse(global_mean, actual), "mae": metrics.mae(global_mean, actual)},
            "bias": {"rmse": bias_rmse, "mae": metrics.mae(bias, actual)},
        },
        "improvement_over_bias": 1.0 - model_rmse / bias_rmse,
        "by_activity": metrics.rmse_by_activity(prediction, actual, parts["user_count"]),
        "cold": {
            "users": {
                "n": int((~user_known).sum()),
                "rmse": metrics.rmse(prediction[~user_known], actual[~user_known]),
            },
            "items": {
                "n": int((~item_known).sum()),
                "rmse": metrics.rmse(prediction[~item_known], actual[~item_known]),
            },
        },
        "ranking": metrics.ranking_report(
            model,
            train.column("user").to_numpy(),
            train.column("item").to_numpy(),
            test.column("user").to_numpy(),
            test.column("item").to_numpy(),
            actual,
            RANKING_K,
            RANKING_USERS,
            seed,
        ),
        "distribution": metrics.rating_distribution(prediction, actual, model.rating_scale),
    }


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    store = Store.from_job_arguments(args)
    with spark_session() as spark:
        progress(5, f"reading {store.uri(args.test)} and the model at {store.uri(args.model)}")
        description = store.read_json(f"{args.model}/{MODEL_JSON}")
        users = store.read_parquet(f"{args.model}/{USER_FACTORS}")
        items = store.read_parquet(f"{args.model}/{ITEM_FACTORS}")
        model = model_from_tables(description, users, items)
        test = store.read_parquet(args.test)
        progress(20, f"scoring {test.num_rows} test ratings")
        parts = als.score(spark, test, users, items)
        progress(60, "computing the metrics")
        result = evaluate(model, parts, store.read_parquet(args.train), test, args.seed)
        store.write_json(
            args.output,
            {
                **result,
                "model_type": description["model"],
                "fallback": "unseen users and items: their bias is 0 and they have no factor term "
                "(plain ALS: the global mean)",
                "params": args.params,
                "model": store.uri(args.model),
                "test": store.uri(args.test),
                "spark_version": spark.version,
                "evaluated_at": utc_now(),
            },
        )
        progress(100, f"RMSE {result['rmse']:.4f} on {result['n_test']} test ratings; {store.uri(args.output)}")


if __name__ == "__main__":
    main(sys.argv[1:])
