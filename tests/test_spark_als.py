"""The Spark side of the model (spark_jobs/als.py, the evaluation), with a real local Spark."""

import numpy as np
import pyarrow as pa
import pytest
from pyspark.sql import SparkSession

from pipeline.model import damped_biases, factor_table
from spark_jobs import als
from spark_jobs.evaluate_als import evaluate
from tests.fakes import ratings_rows
from tests.test_model import PAIRS, tiny


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


def tables(model):
    return [factor_table(s.ids, s.factors, s.bias, s.count) for s in (model.users, model.items)]


def ratings_table(users, items, ratings) -> pa.Table:
    return pa.table(
        {
            "user": pa.array(users, pa.int32()),
            "item": pa.array(items, pa.int32()),
            "rating": pa.array(ratings, pa.float32()),
            "timestamp": pa.array(np.zeros(len(users)), pa.int64()),
        }
    )


@pytest.mark.parametrize("biased", [True, False])
def test_spark_scoring_agrees_with_the_numpy_formula(spark, biased):
    model = tiny(biased=biased)
    parts = als.score(spark, ratings_table(*PAIRS, np.ones(6)), *tables(model))
    baseline = model.global_mean + parts["user_bias"] + parts["item_bias"]
    combined = model.combine(baseline, parts["dot"], parts["both_known"], parts["user_count"], parts["item_count"])
    assert combined == pytest.approx(model.predict(*PAIRS))
    assert parts["user_known"].tolist() == [True, True, True, False, True, False]


def test_fit_stores_every_id_with_its_bias_and_count(spark):
    rows = ratings_rows(n_users=30, n_items=40)
    train = ratings_table(*zip(*[(u, i, r) for u, i, r, _ in rows]))
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
    train = ratings_table(*zip(*[(u, i, r) for u, i, r, _ in rows]))
    first = als.fit(spark, train, "biased_als", rank=4, reg_param=0.1, max_iter=5, seed=1)
    again = als.fit(spark, train, "biased_als", rank=4, reg_param=0.1, max_iter=5, seed=1)
    assert first[0].equals(again[0]) and first[1].equals(again[1])


def test_evaluate_reports_the_model_against_the_baselines_on_the_same_rows(spark):
    model = tiny()
    train = ratings_table([1, 1, 2], [10, 20, 20], [4.0, 5.0, 3.0])
    test = ratings_table(*PAIRS, [5.0, 4.0, 4.0, 3.0, 2.5, 3.0])
    result = evaluate(model, als.score(spark, test, *tables(model)), train, test, seed=0)
    predictions = model.predict(*PAIRS)
    actual = np.array([5.0, 4.0, 4.0, 3.0, 2.5, 3.0])
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean((predictions - actual) ** 2)))
    assert result["baselines"]["global_mean"]["rmse"] == pytest.approx(np.sqrt(np.mean((3.0 - actual) ** 2)))
    bias = np.clip([3.75, 2.5, 3.5, 3.25, 2.5, 3.0], 1, 5)
    assert result["baselines"]["bias"]["rmse"] == pytest.approx(np.sqrt(np.mean((bias - actual) ** 2)))
    assert result["improvement_over_bias"] == pytest.approx(1 - result["rmse"] / result["baselines"]["bias"]["rmse"])
    assert result["coverage"] == pytest.approx(3 / 6)
    assert result["cold"] == {
        "users": {"n": 2, "rmse": pytest.approx(np.sqrt((0.25**2 + 0) / 2))},
        "items": {"n": 2, "rmse": pytest.approx(0.0)},
    }
    assert result["n_test"] == 6 and sum(result["distribution"]["actual"]) == 6
