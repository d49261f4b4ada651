"""EvaluatedRMSE's driver: scores every test rating with the stored factors and writes
metrics.json.

Fallback: a test row whose user or item has no factors (it never appeared in the training
ratings) is predicted as the global mean of the training ratings, so every row counts and
the RMSE is not flattered by dropping the hard cases. Every prediction is clipped to the
release's rating scale.
"""

from __future__ import annotations

import sys

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from pipeline.store import Store
from spark_jobs.common import ITEM_FACTORS, MODEL_JSON, USER_FACTORS, job_parser, progress, spark_session, utc_now

FALLBACK = "global mean of the training ratings, for test rows whose user or item has no factors"


def parse_args(argv: list[str] | None):
    parser = job_parser(__doc__)
    parser.add_argument("--test", required=True, help="key of the test ratings (Parquet)")
    parser.add_argument("--model", required=True, help="key of the model directory written by train_als.py")
    parser.add_argument("--output", required=True, help="key of metrics.json")
    parser.add_argument("--rating-min", type=float, required=True, help="the release's lowest rating")
    parser.add_argument("--rating-max", type=float, required=True, help="the release's highest rating")
    return parser.parse_args(argv)


def score(
    spark: SparkSession,
    test: pa.Table,
    user_factors: pa.Table,
    item_factors: pa.Table,
    global_mean: float,
    rating_scale: tuple[float, float],
) -> DataFrame:
    """The test ratings with `prediction` and `covered` (both user and item have factors)."""
    users = spark.createDataFrame(user_factors).withColumnsRenamed({"id": "user", "features": "user_features"})
    items = spark.createDataFrame(item_factors).withColumnsRenamed({"id": "item", "features": "item_features"})
    covered = F.col("user_features").isNotNull() & F.col("item_features").isNotNull()
    dot = F.aggregate(
        F.zip_with("user_features", "item_features", lambda u, i: u * i), F.lit(0.0), lambda acc, x: acc + x
    )
    low, high = rating_scale
    return (
        spark.createDataFrame(test)
        .join(users, "user", "left")
        .join(items, "item", "left")
        .withColumn("covered", covered)
        .withColumn("prediction", _clip(F.when(covered, dot).otherwise(F.lit(global_mean)), low, high))
    )


def error_metrics(scored: DataFrame, global_mean: float) -> dict:
    rating = F.col("rating").cast("double")
    error = F.col("prediction") - rating
    covered = F.col("covered")
    row = scored.agg(
        F.count(F.lit(1)).alias("n_test"),
        F.sqrt(F.avg(error * error)).alias("rmse"),
        F.avg(F.abs(error)).alias("mae"),
        F.avg(covered.cast("double")).alias("coverage"),
        F.sqrt(F.avg(F.when(covered, error * error))).alias("rmse_covered"),
        F.sqrt(F.avg((rating - global_mean) ** 2)).alias("global_mean_rmse"),
    ).first()
    return row.asDict()


def _clip(column: Column, low: float, high: float) -> Column:
    return F.least(F.greatest(column, F.lit(low)), F.lit(high))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    store = Store.from_job_arguments(args)
    spark = spark_session()
    try:
        progress(5, f"reading {store.uri(args.test)} and the model at {store.uri(args.model)}")
        model = store.read_json(f"{args.model}/{MODEL_JSON}")
        scored = score(
            spark,
            store.read_parquet(args.test),
            store.read_parquet(f"{args.model}/{USER_FACTORS}"),
            store.read_parquet(f"{args.model}/{ITEM_FACTORS}"),
            model["global_mean"],
            (args.rating_min, args.rating_max),
        )
        progress(30, "scoring the test ratings")
        metrics = error_metrics(scored, model["global_mean"])
        store.write_json(
            args.output,
            {
                **metrics,
                "fallback": FALLBACK,
                "params": args.params,
                "model": store.uri(args.model),
                "test": store.uri(args.test),
                "spark_version": spark.version,
                "evaluated_at": utc_now(),
            },
        )
        progress(100, f"RMSE {metrics['rmse']:.4f} on {metrics['n_test']} test ratings; {store.uri(args.output)}")
    finally:
        spark.stop()


if __name__ == "__main__":
    main(sys.argv[1:])
