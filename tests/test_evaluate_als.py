"""evaluate_als.py's scoring on a tiny hand-computed case, with a real local Spark."""

import math

import pyarrow as pa
import pytest
from pyspark.sql import SparkSession

from spark_jobs.evaluate_als import error_metrics, score


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


def factors(rows: dict[int, list[float]]) -> pa.Table:
    return pa.table(
        {"id": pa.array(list(rows), pa.int32()), "features": pa.array(list(rows.values()), pa.list_(pa.float32()))}
    )


def test_scores_with_factors_falls_back_to_the_mean_and_clips(spark):
    users = factors({1: [1.0, 0.0], 2: [0.5, 2.0]})
    items = factors({10: [2.0, 1.0], 20: [0.0, 1.0], 40: [12.0, 0.0]})
    #         user item rating   prediction                     error
    cases = [
        (1, 10, 2.5),  # 2.0                          -0.5
        (2, 20, 5.0),  # 2.0                          -3.0
        (2, 10, 1.0),  # 1.0 + 2.0 = 3.0              +2.0
        (1, 20, 0.5),  # 0.0, clipped up to 0.5        0.0
        (2, 40, 4.0),  # 6.0, clipped down to 5.0     +1.0
        (3, 10, 4.0),  # unseen user: global mean 3.0 -1.0
        (1, 30, 3.0),  # unseen item: 3.0              0.0
        (2, 30, 4.5),
    ]  # unseen item: 3.0             -1.5
    test = pa.table(
        {
            "user": pa.array([c[0] for c in cases], pa.int32()),
            "item": pa.array([c[1] for c in cases], pa.int32()),
            "rating": pa.array([c[2] for c in cases], pa.float32()),
            "timestamp": pa.array(range(len(cases)), pa.int64()),
        }
    )
    scored = score(spark, test, users, items, global_mean=3.0, rating_scale=(0.5, 5.0))
    predictions = {(r.user, r.item): (r.prediction, r.covered) for r in scored.collect()}
    assert predictions == {
        (1, 10): (2.0, True),
        (2, 20): (2.0, True),
        (2, 10): (3.0, True),
        (1, 20): (0.5, True),
        (2, 40): (5.0, True),
        (3, 10): (3.0, False),
        (1, 30): (3.0, False),
        (2, 30): (3.0, False),
    }
    metrics = error_metrics(scored, global_mean=3.0)
    assert metrics["n_test"] == 8
    assert metrics["rmse"] == pytest.approx(math.sqrt(17.5 / 8))
    assert metrics["mae"] == pytest.approx(9 / 8)
    assert metrics["coverage"] == pytest.approx(5 / 8)
    assert metrics["rmse_covered"] == pytest.approx(math.sqrt(14.25 / 5))
    assert metrics["global_mean_rmse"] == pytest.approx(math.sqrt(18.75 / 8))
