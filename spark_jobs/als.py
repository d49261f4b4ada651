"""Fitting the models with Spark, shared by the train and tune jobs.

Ratings and factors travel between the driver and Spark as Arrow tables; the biases are
computed in the driver with numpy (movielens_als.model), ALS runs on Spark. Scoring needs no Spark:
movielens_als.model does it with numpy from the factor tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from pyspark.ml.recommendation import ALS
from pyspark.sql import DataFrame, SparkSession

from movielens_als.arrays import distinct
from movielens_als.columns import FEATURES, ID, ITEM, RATING, USER
from movielens_als.model import damped_biases, factor_table

# The JVM property that tells netlib which native BLAS to load (pipeline.blas names it), and
# the class of its BLAS when a native library loaded.
NATIVE_LIB_PATH = "dev.ludovic.netlib.blas.nativeLibPath"
NATIVE_BLAS = "JNIBLAS"


@dataclass(frozen=True)
class Prepared:
    """Training ratings ready for ALS: the Spark frame of what ALS fits (the ratings, or for
    biased ALS what the damped biases leave of them), and each side's ids, biases and counts."""

    model: str
    frame: DataFrame
    users: tuple[np.ndarray, np.ndarray, np.ndarray]
    items: tuple[np.ndarray, np.ndarray, np.ndarray]
    global_mean: float


def prepare(spark: SparkSession, train: pa.Table, model: str, cache: bool = False) -> Prepared:
    """`train` (columns user, item, rating) ready for `model`'s fits. With `cache`, Spark keeps
    the frame once it is first read, for several fits (TunedALS's candidates); `release` it."""
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
    # Below 48 MB of Arrow (4 M ratings) Spark would make the ratings a LocalRelation, rows
    # inside the query plan: ALS's queries then spend a quarter of the fit transforming that
    # plan and serialising it into tasks (a Java Flight Recording at 1 M ratings). As an RDD
    # they cost nothing to plan: fits 1.38x faster at 1 M ratings (BENCHMARKS.md).
    spark.conf.set("spark.sql.execution.arrow.localRelationThreshold", "0")
    frame = spark.createDataFrame(pa.table({USER: users, ITEM: items, "target": target.astype(np.float32)}))
    if cache:
        frame = frame.cache()
    return Prepared(model, frame, (user_ids, user_bias, user_count), (item_ids, item_bias, item_count), global_mean)


def fit(
    spark: SparkSession, train: pa.Table, model: str, rank: int, reg_param: float, max_iter: int, seed: int
) -> tuple[pa.Table, pa.Table, float]:
    """(user factor table, item factor table, global mean) of `model` fitted on `train`
    (columns user, item, rating): plain ALS on the ratings, or biased ALS on what the damped
    biases leave of them."""
    return fit_prepared(spark, prepare(spark, train, model), rank, reg_param, max_iter, seed)


def fit_prepared(
    spark: SparkSession, prepared: Prepared, rank: int, reg_param: float, max_iter: int, seed: int
) -> tuple[pa.Table, pa.Table, float]:
    """fit's result on ratings already `prepare`d."""
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
    fitted = als.fit(prepared.frame)
    return (
        _with_biases(fitted.userFactors.toArrow(), *prepared.users, rank),
        _with_biases(fitted.itemFactors.toArrow(), *prepared.items, rank),
        prepared.global_mean,
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
    path: pipeline.blas.als_blas); anything else is netlib's Java fallback, about
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
    return jvm.java.lang.System.getProperty(NATIVE_LIB_PATH) or "libblas.so.3"


def executors_blas(spark: SparkSession) -> dict[str, tuple[str, str]]:
    """The BLAS each executor's JVM loaded, by JVM ("host/address pid N"): (netlib's BLAS class,
    the native library it was told to load, else libblas.so.3). Executors run no Python, so the
    JVMs are asked with Spark SQL's reflect, in one task per core: Spark's scheduler deals a
    job's first tasks round every registered executor's free cores, so each runs at least one.
    In local mode the one executor is the driver's own JVM."""
    slots = spark.sparkContext.defaultParallelism
    rows = (
        spark.range(0, slots, 1, slots)
        .selectExpr(
            "reflect('java.net.InetAddress', 'getLocalHost') AS host",
            "reflect('java.lang.ProcessHandle', 'current') AS pid",
            "reflect('dev.ludovic.netlib.blas.BLAS', 'getInstance') AS blas",  # its class@hash
            f"reflect('java.lang.System', 'getProperty', '{NATIVE_LIB_PATH}') AS library",
        )
        .collect()
    )
    return {
        f"{row.host} pid {row.pid}": (
            row.blas.split("@")[0].rsplit(".", 1)[-1],
            row.library if row.library not in (None, "null") else "libblas.so.3",
        )
        for row in rows
    }


def blas_report(driver: tuple[str, str], executors: dict[str, tuple[str, str]]) -> list[str]:
    """The lines that say which BLAS the executors loaded, one per kind, then a `warning:` line
    for each kind that is not the one the driver named: (BLAS class, native library) each."""
    by_kind: dict[tuple[str, str], list[str]] = {}
    for executor, kind in sorted(executors.items()):
        by_kind.setdefault(kind, []).append(executor)
    lines = [
        f"executors' BLAS: {_described(kind)} in {len(jvms)} JVM{'s' * (len(jvms) > 1)} ({', '.join(jvms)})"
        for kind, jvms in sorted(by_kind.items())
    ]
    for kind, jvms in sorted(by_kind.items()):
        if kind != driver:
            hint = "every worker needs the same library at the same path"
            if driver[1].startswith("/"):
                hint = f"install {driver[1]} on their machines, and keep -D{NATIVE_LIB_PATH}={driver[1]} in "
                hint += "spark.executor.extraJavaOptions if you set your own"
            lines.append(
                f"warning: {', '.join(jvms)} compute{'s' * (len(jvms) == 1)} ALS with {_described(kind)}, not with "
                f"{_described(driver)} as the driver names: {hint} (docs/deployment.md, ALS's BLAS on a cluster)"
            )
    return lines


def _described(kind: tuple[str, str]) -> str:
    blas, library = kind
    return f"{blas} on {library}" if blas == NATIVE_BLAS else f"{blas} (netlib's Java BLAS; {library} did not load)"


def report_blas(spark: SparkSession) -> tuple[str, str]:
    """Prints the driver's BLAS and LAPACK and the executors' BLAS, warning of any executor
    whose BLAS is not the driver's (a missing library falls back to Java silently, 1.2x
    slower); returns the driver's (linear_algebra, blas_library) for the model's record."""
    algebra, library = linear_algebra(spark), blas_library(spark)
    print(f"linear algebra: {algebra} (BLAS: {library})", flush=True)
    for line in blas_report((algebra.split(", ")[0], library), executors_blas(spark)):
        print(line, flush=True)
    return algebra, library
