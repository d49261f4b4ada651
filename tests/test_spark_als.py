"""The Spark side of the model (spark_jobs/als.py), with a real local Spark."""

import pytest
from pyspark.sql import SparkSession

from movielens_als.model import damped_biases
from spark_jobs import als
from tests.fakes import ratings_rows, ratings_table


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


def test_fit_stores_every_id_with_its_bias_and_count(spark):
    rows = ratings_rows(n_users=30, n_items=40)
    train = ratings_table(*zip(*[(u, i, r) for u, i, r, _ in rows], strict=True))
    users, items, global_mean = als.fit(spark, train, "biased_als", rank=4, reg_param=0.1, max_iter=5, seed=1)
    (user_ids, user_bias, user_count), (_item_ids, item_bias, _) = damped_biases(
        train.column("user").to_numpy(), train.column("item").to_numpy(), train.column("rating").to_numpy(), global_mean
    )
    assert users.column("id").to_pylist() == user_ids.tolist()
    assert users.column("bias").to_numpy() == pytest.approx(user_bias)
    assert users.column("count").to_pylist() == user_count.tolist()
    assert items.column("bias").to_numpy() == pytest.approx(item_bias)
    assert len(users.column("features")[0]) == 4


def test_fit_is_deterministic_for_a_seed(spark):
    rows = ratings_rows(n_users=30, n_items=40)
    train = ratings_table(*zip(*[(u, i, r) for u, i, r, _ in rows], strict=True))
    first = als.fit(spark, train, "biased_als", rank=4, reg_param=0.1, max_iter=5, seed=1)
    again = als.fit(spark, train, "biased_als", rank=4, reg_param=0.1, max_iter=5, seed=1)
    assert first[0].equals(again[0]) and first[1].equals(again[1])
