import numpy as np
import pyarrow as pa
import pytest

from movielens_als import split
from movielens_als.split import STRATEGIES, describe, split_ratings


def ratings(users, timestamps=None) -> pa.Table:
    n = len(users)
    return pa.table(
        {
            "user": pa.array(users, pa.int32()),
            "item": pa.array(range(n), pa.int32()),
            "rating": pa.array([3.0] * n, pa.float32()),
            "timestamp": pa.array(timestamps if timestamps is not None else range(n), pa.int64()),
        }
    )


@pytest.fixture
def skewed() -> pa.Table:
    """400 users with 1 to 60 ratings each, in shuffled order, with timestamps that repeat."""
    rng = np.random.default_rng(7)
    users = np.repeat(np.arange(400), rng.integers(1, 61, 400))
    rng.shuffle(users)
    return ratings(users, rng.integers(0, 5000, len(users)))


def items(table: pa.Table) -> set[int]:
    return set(table.column("item").to_pylist())  # item ids are row ids in these tables


@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if s != "item_random"])  # one rating per item here
def test_every_strategy_partitions_the_rows(skewed, strategy):
    train, test = split_ratings(skewed, strategy, 0.2, seed=1)
    assert items(train).isdisjoint(items(test))
    assert items(train) | items(test) == items(skewed)
    assert train.schema == skewed.schema
    assert abs(test.num_rows / skewed.num_rows - 0.2) < 0.03


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_is_deterministic_for_a_seed(skewed, strategy):
    first = split_ratings(skewed, strategy, 0.25, seed=3)
    again = split_ratings(skewed, strategy, 0.25, seed=3)
    assert first[1].equals(again[1])


@pytest.mark.parametrize("strategy", ["random", "user_random"])
def test_random_strategies_depend_on_the_seed(skewed, strategy):
    assert items(split_ratings(skewed, strategy, 0.2, seed=1)[1]) != items(
        split_ratings(skewed, strategy, 0.2, seed=2)[1]
    )


def test_random_reproduces_the_reference_mask():
    # shared/data/README.md: train is `default_rng(42).random(n) < 0.8`, in file order.
    table = ratings(np.zeros(1000))
    expected_train = np.random.default_rng(42).random(1000) < 0.8
    train, _test = split_ratings(table, "random", 0.2, seed=42)
    assert train.column("item").to_pylist() == np.flatnonzero(expected_train).tolist()


@pytest.mark.parametrize("strategy", ["user_random", "user_time"])
def test_per_user_strategies_put_every_user_on_both_sides(skewed, strategy):
    train, test = split_ratings(skewed, strategy, 0.2, seed=5)
    counts = dict(zip(*np.unique(skewed.column("user").to_numpy(), return_counts=True), strict=True))
    test_counts = dict(zip(*np.unique(test.column("user").to_numpy(), return_counts=True), strict=True))
    train_users = set(train.column("user").to_pylist())
    for user, n in counts.items():
        if n == 1:
            assert user in train_users and user not in test_counts
        else:
            assert user in train_users
            assert test_counts[user] == min(max(1, int(np.floor(0.2 * n + 0.5))), n - 1)


def test_user_random_known_answer():
    # user 1: 10 ratings -> 2 in test; user 2: 2 ratings -> 1; user 3: 1 rating -> 0.
    table = ratings([1] * 10 + [2, 2] + [3])
    _train, test = split_ratings(table, "user_random", 0.2, seed=0)
    assert sorted(test.column("user").to_pylist()) == [1, 1, 2]


def test_user_time_takes_each_users_latest_ratings():
    table = ratings([1, 1, 1, 1, 1, 2, 2, 2], timestamps=[50, 10, 40, 20, 30, 5, 7, 6])
    _train, test = split_ratings(table, "user_time", 0.4, seed=0)
    assert sorted(zip(test.column("user").to_pylist(), test.column("timestamp").to_pylist(), strict=True)) == [
        (1, 40),
        (1, 50),
        (2, 7),
    ]


def test_user_time_never_trains_on_a_users_future(skewed):
    train, test = split_ratings(skewed, "user_time", 0.3, seed=0)
    latest_train = {}
    for u, t in zip(train.column("user").to_pylist(), train.column("timestamp").to_pylist(), strict=True):
        latest_train[u] = max(t, latest_train.get(u, t))
    for u, t in zip(test.column("user").to_pylist(), test.column("timestamp").to_pylist(), strict=True):
        assert t >= latest_train[u]


def test_time_is_one_global_cut(skewed):
    train, test = split_ratings(skewed, "time", 0.2, seed=0)
    assert max(train.column("timestamp").to_pylist()) < min(test.column("timestamp").to_pylist())


def test_time_known_answer():
    table = ratings([1] * 10, timestamps=[9, 1, 8, 2, 7, 3, 6, 4, 5, 0])
    _train, test = split_ratings(table, "time", 0.3, seed=0)
    assert sorted(test.column("timestamp").to_pylist()) == [7, 8, 9]


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_a_fraction_outside_zero_one_is_rejected(skewed, fraction):
    with pytest.raises(ValueError, match="test_fraction must be strictly between 0 and 1"):
        split_ratings(skewed, "random", fraction, seed=0)


def test_an_unknown_strategy_is_rejected_with_the_valid_ones(skewed):
    with pytest.raises(
        ValueError, match=r"unknown split strategy 'newest'.*random, user_random, item_random, time, user_time"
    ):
        split_ratings(skewed, "newest", 0.2, seed=0)


def test_describe_counts_rows_users_items():
    assert describe(ratings([1, 1, 2])) == {"rows": 3, "users": 2, "items": 3}


def by_item(counts, seed=0) -> pa.Table:
    """Items 0.. with `counts[i]` ratings each, rows shuffled; each row's timestamp is its id."""
    items = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(seed).shuffle(items)
    n = len(items)
    return pa.table(
        {
            "user": pa.array(np.arange(n) % 37, pa.int32()),
            "item": pa.array(items, pa.int32()),
            "rating": pa.array([3.0] * n, pa.float32()),
            "timestamp": pa.array(range(n), pa.int64()),
        }
    )


def test_item_random_puts_round_three_quarters_of_each_items_ratings_in_train():
    counts = [1, 2, 3, 4, 6, 10, 40]
    table = by_item(counts)
    train, test = split_ratings(table, "item_random", 0.25, seed=42)
    # recommenders' python_stratified_split: round(0.75 · n) to train, halves to even
    # (1 -> 1: an item rated once stays in train; 2 -> 2 (1.5); 6 -> 4 (4.5); 10 -> 8 (7.5)).
    expected_train = [1, 2, 2, 3, 4, 8, 30]
    train_counts = np.bincount(train.column("item").to_numpy(), minlength=len(counts))
    test_counts = np.bincount(test.column("item").to_numpy(), minlength=len(counts))
    assert train_counts.tolist() == expected_train
    assert (train_counts + test_counts).tolist() == counts
    stamps = set(train.column("timestamp").to_pylist())
    assert stamps.isdisjoint(test.column("timestamp").to_pylist())
    assert len(stamps) + test.num_rows == table.num_rows


def test_item_random_is_seeded():
    table = by_item([50] * 8)
    first = split_ratings(table, "item_random", 0.25, seed=1)[1].column("timestamp").to_pylist()
    assert sorted(first) == sorted(split_ratings(table, "item_random", 0.25, seed=1)[1].column("timestamp").to_pylist())
    assert set(first) != set(split_ratings(table, "item_random", 0.25, seed=2)[1].column("timestamp").to_pylist())


class NoDraws:
    """A generator whose every 32-bit draw is 0: every rating of a user (or an item) ties."""

    def integers(self, low, high, size, dtype):
        return np.zeros(size, dtype=dtype)


@pytest.mark.parametrize("strategy", ["user_random", "item_random", "user_time"])
def test_ties_fall_in_row_order_whatever_the_sort_implementation(monkeypatch, strategy):
    """Equal sort keys are broken by the row, not by numpy's sort (on AVX-512, x86-simd-sort
    orders them otherwise), so a seed gives the same split on every CPU."""
    monkeypatch.setattr(split.np.random, "default_rng", lambda seed: NoDraws())
    n = 3000
    rows = np.arange(n)
    table = pa.table(
        {
            "user": pa.array(rows % 3, pa.int32()),
            "item": pa.array(rows % 3, pa.int32()),
            "rating": pa.array(np.full(n, 4.0), pa.float32()),
            "timestamp": pa.array(np.zeros(n), pa.int64()),
        }
    )
    is_test = split.STRATEGIES[strategy](table, 0.2, 0)
    group_row = rows // 3  # the row's place among its user's (and item's) rows
    if strategy == "item_random":
        assert np.array_equal(is_test, group_row >= 800)  # the first 800 of each item's 1000 train
    else:
        assert np.array_equal(is_test, group_row < 200)  # the first 200 of each user's 1000 test
