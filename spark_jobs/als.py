"""Fitting the models with Spark, shared by the train and tune jobs.

Ratings and factors travel between the driver and Spark as Arrow tables; the biases are
computed in the driver with numpy (movielens_als.model), ALS runs on Spark. Scoring needs no Spark:
movielens_als.model does it with numpy from the factor tables.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyspark.ml.recommendation import ALS
from pyspark.sql import SparkSession

from movielens_als.arrays import distinct
from movielens_als.columns import FEATURES, ID, ITEM, RATING, USER
from movielens_als.model import damped_biases, factor_table


def fit(
    spark: SparkSession, train: pa.Table, model: str, rank: int, reg_param: float, max_iter: int, seed: int
) -> tuple[pa.Table, pa.Table, float]:
    """(user factor table, item factor table, global mean) of `model` fitted on `train`
    (columns user, item, rating): plain ALS on the ratings, or biased ALS on what the damped
    biases leave of them."""
    users, items = train.column(USER).to_numpy(), train.column(ITEM).to_numpy()
    ratings = train.column(RATING).to_numpy().astype(np.float64)
    global_mean = float(ratings.mean())
    (user_ids, user_bias, user_count), (item_ids, item_bias, item_count) = damped_biases(
        users, items, ratings, global_mean
    )
    # Plain ALS fits the ratings themselves; its tables keep the biases all the same, for the
    # bias baseline its evaluation reports.
    target = ratings
    if model == "biased_als":
        target = ratings - global_mean - user_bias[distinct(users)[1]] - item_bias[distinct(items)[1]]
    blocks = spark.sparkContext.defaultParallelism
    als = ALS(
        rank=rank,
        regParam=reg_param,
        maxIter=max_iter,
        seed=seed,
        userCol=USER,
        itemCol=ITEM,
        ratingCol="target",
        implicitPrefs=False,
        # One block per core: ALS's default of 10 blocks only adds shuffle overhead here.
        numUserBlocks=blocks,
        numItemBlocks=blocks,
    )
    # Below 48 MB of Arrow (4 M ratings) Spark would make the ratings a LocalRelation, rows
    # inside the query plan: ALS's queries then spend a quarter of the fit transforming that
    # plan and serialising it into tasks (a Java Flight Recording at 1 M ratings). As an RDD
    # they cost nothing to plan: fits 1.38x faster at 1 M ratings (BENCHMARKS.md).
    spark.conf.set("spark.sql.execution.arrow.localRelationThreshold", "0")
    frame = spark.createDataFrame(pa.table({USER: users, ITEM: items, "target": target.astype(np.float32)}))
    fitted = als.fit(frame)
    return (
        _with_biases(fitted.userFactors.toArrow(), user_ids, user_bias, user_count, rank),
        _with_biases(fitted.itemFactors.toArrow(), item_ids, item_bias, item_count, rank),
        global_mean,
    )


def _with_biases(factors: pa.Table, ids: np.ndarray, bias: np.ndarray, count: np.ndarray, rank: int) -> pa.Table:
    """The factor table of every id in `ids` (all have factors after ALS) with its bias and count."""
    factors = factors.sort_by(ID)
    if not np.array_equal(factors.column(ID).to_numpy(), ids):
        raise RuntimeError("ALS returned factors for other ids than the training ratings hold")
    flat = np.asarray(factors.column(FEATURES).combine_chunks().flatten(), dtype=np.float32)
    return factor_table(ids, flat.reshape(len(ids), rank), bias, count)


def linear_algebra(spark: SparkSession) -> str:
    """The BLAS and LAPACK Spark's ALS computes with, by class: JNIBLAS and JNILAPACK are native
    libraries (the system's libblas.so.3 and liblapack.so.3, or the BLAS the job names by
    path: pipeline.sparkjob.als_blas); anything else is netlib's Java fallback, about
    1.2x slower for ALS (BENCHMARKS.md)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None  # a live session's
    blas = jvm.dev.ludovic.netlib.blas.BLAS.getInstance().getClass().getSimpleName()
    lapack = jvm.dev.ludovic.netlib.lapack.LAPACK.getInstance().getClass().getSimpleName()
    return f"{blas}, {lapack}"


def blas_library(spark: SparkSession) -> str:
    """Which native BLAS netlib was told to load: a path, or the system's libblas.so.3."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    return jvm.java.lang.System.getProperty("dev.ludovic.netlib.blas.nativeLibPath") or "libblas.so.3"
