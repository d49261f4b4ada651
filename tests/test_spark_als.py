"""The Spark side of the model (spark_jobs/als.py), with a real local Spark."""

from collections import defaultdict

import pytest
from pyspark.sql import SparkSession

from spark_jobs import als
from tests.fakes import KNOWN_BIAS_RATINGS, KNOWN_ITEM_BIASES, KNOWN_USER_BIASES, ratings_rows, ratings_table

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def spark():
    session = (
        SparkSession.builder.master("local[1]")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    yield session
    session.stop()


def documented_biases(rows: list[tuple[int, int, float]], global_mean: float) -> tuple[dict, dict]:
    """The bias formula of docs/models.md, one rating at a time: three passes of
    b_i = Σ(r - μ - b_u) / (n_i + 10), then b_u = Σ(r - μ - b_i) / (n_u + 15). Written apart
    from movielens_als.model, so a wrong constant there cannot also be wrong here."""
    by_user, by_item = defaultdict(list), defaultdict(list)
    for user, item, rating in rows:
        by_user[user].append((item, rating))
        by_item[item].append((user, rating))
    user_bias = dict.fromkeys(by_user, 0.0)
    for _ in range(3):
        item_bias = {
            i: sum(r - global_mean - user_bias[u] for u, r in rs) / (len(rs) + 10) for i, rs in by_item.items()
        }
        user_bias = {
            u: sum(r - global_mean - item_bias[i] for i, r in rs) / (len(rs) + 15) for u, rs in by_user.items()
        }
    return user_bias, item_bias


def test_fit_stores_the_documented_biases_worked_out_by_hand(spark):
    users, items, global_mean = als.fit(
        spark, ratings_table(*KNOWN_BIAS_RATINGS), "biased_als", rank=2, reg_param=0.1, max_iter=2, seed=1
    )
    assert global_mean == 3.0
    assert dict(zip(users.column("id").to_pylist(), users.column("bias").to_pylist(), strict=True)) == pytest.approx(
        KNOWN_USER_BIASES, rel=1e-9
    )
    assert dict(zip(items.column("id").to_pylist(), items.column("bias").to_pylist(), strict=True)) == pytest.approx(
        KNOWN_ITEM_BIASES, rel=1e-9
    )


def test_fit_stores_every_id_with_its_bias_and_count(spark):
    rows = [(u, i, r) for u, i, r, _ in ratings_rows(n_users=30, n_items=40)]
    train = ratings_table(*zip(*rows, strict=True))
    users, items, global_mean = als.fit(spark, train, "biased_als", rank=4, reg_param=0.1, max_iter=5, seed=1)
    assert global_mean == pytest.approx(sum(r for _, _, r in rows) / len(rows))
    user_bias, item_bias = documented_biases(rows, global_mean)
    assert users.column("id").to_pylist() == sorted(user_bias)
    assert users.column("bias").to_pylist() == pytest.approx([user_bias[u] for u in sorted(user_bias)])
    assert users.column("count").to_pylist() == [sum(1 for u, _, _ in rows if u == user) for user in sorted(user_bias)]
    assert items.column("id").to_pylist() == sorted(item_bias)
    assert items.column("bias").to_pylist() == pytest.approx([item_bias[i] for i in sorted(item_bias)])
    assert len(users.column("features")[0]) == 4


def test_fit_is_deterministic_for_a_seed(spark):
    rows = ratings_rows(n_users=30, n_items=40)
    train = ratings_table(*zip(*[(u, i, r) for u, i, r, _ in rows], strict=True))
    first = als.fit(spark, train, "biased_als", rank=4, reg_param=0.1, max_iter=5, seed=1)
    again = als.fit(spark, train, "biased_als", rank=4, reg_param=0.1, max_iter=5, seed=1)
    assert first[0].equals(again[0]) and first[1].equals(again[1])


def test_fits_on_ratings_prepared_and_cached_once_are_the_fits_on_the_ratings(spark):
    rows = ratings_rows(n_users=30, n_items=40)
    train = ratings_table(*zip(*[(u, i, r) for u, i, r, _ in rows], strict=True))
    prepared = als.prepare(spark, train, "biased_als", cache=True)
    for rank, reg_param in ((4, 0.1), (3, 0.3)):
        shared = als.fit_prepared(spark, prepared, rank, reg_param, max_iter=5, seed=1)
        alone = als.fit(spark, train, "biased_als", rank=rank, reg_param=reg_param, max_iter=5, seed=1)
        assert shared[0].equals(alone[0]) and shared[1].equals(alone[1]) and shared[2] == alone[2]
    assert prepared.frame.is_cached and prepared.frame.count() == train.num_rows
    prepared.frame.unpersist()


def test_the_executors_blas_is_asked_of_their_jvms_and_in_local_mode_is_the_drivers(spark, capsys):
    jvm = spark.sparkContext._jvm
    driver_pid = jvm.java.lang.ProcessHandle.current().pid()
    [(executor, (blas_class, library))] = als.executors_blas(spark).items()
    assert executor.endswith(f" pid {driver_pid}")  # local mode: the driver's own JVM
    assert blas_class == jvm.dev.ludovic.netlib.blas.BLAS.getInstance().getClass().getSimpleName()
    assert library == als.blas_library(spark)
    assert als.report_blas(spark) == (als.linear_algebra(spark), library)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"linear algebra: {als.linear_algebra(spark)} (BLAS: {library})"
    assert printed[1].startswith(f"executors' BLAS: {blas_class}") and printed[1].endswith(f"({executor})")
    assert len(printed) == 2  # no warning
