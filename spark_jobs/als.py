"""Fitting and scoring the models with Spark, shared by the train, tune and evaluate jobs.

Ratings and factors travel between the driver and Spark as Arrow tables; the biases are
computed in the driver with numpy (pipeline.model), ALS runs on Spark, and the scoring of
rating pairs (a join with both factor tables and a dot product) runs on Spark too.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyspark.ml.recommendation import ALS
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from pipeline.model import damped_biases, factor_table, side_from_table


def fit(
    spark: SparkSession, train: pa.Table, model: str, rank: int, reg_param: float, max_iter: int, seed: int
) -> tuple[pa.Table, pa.Table, float]:
    """(user factor table, item factor table, global mean) of `model` fitted on `train`
    (columns user, item, rating): plain ALS on the ratings, or biased ALS on what the damped
    biases leave of them."""
    users, items = train.column("user").to_numpy(), train.column("item").to_numpy()
    ratings = train.column("rating").to_numpy().astype(np.float64)
    global_mean = float(ratings.mean())
    (user_ids, user_bias, user_count), (item_ids, item_bias, item_count) = damped_biases(
        users, items, ratings, global_mean
    )
    # Plain ALS fits the ratings themselves; its tables keep the biases all the same, for the
    # bias baseline its evaluation reports.
    target = ratings
    if model == "biased_als":
        target = ratings - global_mean - user_bias[np.searchsorted(user_ids, users)]
        target -= item_bias[np.searchsorted(item_ids, items)]
    blocks = spark.sparkContext.defaultParallelism
    als = ALS(
        rank=rank,
        regParam=reg_param,
        maxIter=max_iter,
        seed=seed,
        userCol="user",
        itemCol="item",
        ratingCol="target",
        implicitPrefs=False,
        # One block per core: ALS's default of 10 blocks only adds shuffle overhead here.
        numUserBlocks=blocks,
        numItemBlocks=blocks,
    )
    frame = spark.createDataFrame(pa.table({"user": users, "item": items, "target": target.astype(np.float32)}))
    fitted = als.fit(frame)
    return (
        _with_biases(fitted.userFactors.toArrow(), user_ids, user_bias, user_count, rank),
        _with_biases(fitted.itemFactors.toArrow(), item_ids, item_bias, item_count, rank),
        global_mean,
    )


def _with_biases(factors: pa.Table, ids: np.ndarray, bias: np.ndarray, count: np.ndarray, rank: int) -> pa.Table:
    """The factor table of every id in `ids` (all have factors after ALS) with its bias and count."""
    factors = factors.sort_by("id")
    if not np.array_equal(factors.column("id").to_numpy(), ids):
        raise RuntimeError("ALS returned factors for other ids than the training ratings hold")
    flat = np.asarray(factors.column("features").combine_chunks().flatten(), dtype=np.float32)
    return factor_table(ids, flat.reshape(len(ids), rank), bias, count)


def score(spark: SparkSession, pairs: pa.Table, users: pa.Table, items: pa.Table) -> dict[str, np.ndarray]:
    """What the predictions of (user, item) `pairs` are made of, computed by Spark (a join of
    the pairs with both factor tables): the arrays pipeline.model.Model.combine takes, in the
    order of `pairs`."""
    users, items = _columns(users, "user"), _columns(items, "item")
    rank = users.num_columns - 3  # id, bias and count besides the factors
    # One column per factor makes the dot product a plain arithmetic expression, which Spark
    # compiles; over array columns (zip_with + aggregate) it is interpreted, twice as slow.
    # Parsed from one string: built term by term it costs a py4j call per term. The float
    # products are summed in double precision (0D first).
    dot = F.expr(" + ".join(["0D", *(f"user_{k} * item_{k}" for k in range(rank))]))
    both_known = F.col("user_count").isNotNull() & F.col("item_count").isNotNull()
    numbered = pairs.select(["user", "item"]).append_column("row", pa.array(np.arange(pairs.num_rows)))
    scored = (
        spark.createDataFrame(numbered)
        # Factor tables are small next to the pairs: broadcast, the pairs are never shuffled.
        .join(F.broadcast(spark.createDataFrame(users)), "user", "left")
        .join(F.broadcast(spark.createDataFrame(items)), "item", "left")
        .select(
            "row",
            F.when(both_known, dot).otherwise(0.0).alias("dot"),
            both_known.alias("both_known"),
            F.col("user_count").isNotNull().alias("user_known"),
            F.col("item_count").isNotNull().alias("item_known"),
            F.coalesce("user_bias", F.lit(0.0)).alias("user_bias"),
            F.coalesce("item_bias", F.lit(0.0)).alias("item_bias"),
            F.coalesce("user_count", F.lit(0)).alias("user_count"),
            F.coalesce("item_count", F.lit(0)).alias("item_count"),
        )
        .toArrow()
        .sort_by("row")
    )
    return {name: scored.column(name).to_numpy() for name in scored.column_names if name != "row"}


def _columns(table: pa.Table, side: str) -> pa.Table:
    """A factor table (id, features, bias, count) with `side` as the name of its id column and
    one column per factor: side, side_0, side_1, ..., side_bias, side_count."""
    parts = side_from_table(table)
    factors = {f"{side}_{k}": parts.factors[:, k] for k in range(parts.factors.shape[1])}
    return pa.table({side: parts.ids, **factors, f"{side}_bias": parts.bias, f"{side}_count": parts.count})
