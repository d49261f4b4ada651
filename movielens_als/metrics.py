"""Evaluation metrics on plain numpy arrays: errors, errors by user activity, and ranking
quality at k, and `evaluate`, which gathers them all for metrics.json. Every predictor is
measured on exactly the rows it is given."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from movielens_als.columns import ITEM, RATING, USER
from movielens_als.model import Model
from movielens_als.ranking import top_unseen

# Buckets of user activity, by the user's number of ratings in the training data.
ACTIVITY_BUCKETS = ((1, 10), (10, 50), (50, 200), (200, None))
RELEVANT_RATING = 4.0
# Ranking quality at this k; above RANKING_USERS users, on a seeded sample of them.
RANKING_K = 10
RANKING_USERS = 10_000


def rmse(prediction: np.ndarray, actual: np.ndarray) -> float | None:
    return float(np.sqrt(np.mean((prediction - actual) ** 2))) if len(actual) else None


def mae(prediction: np.ndarray, actual: np.ndarray) -> float | None:
    return float(np.mean(np.abs(prediction - actual))) if len(actual) else None


def rmse_by_activity(prediction: np.ndarray, actual: np.ndarray, user_train_count: np.ndarray) -> list[dict]:
    """RMSE per bucket of the user's training ratings; users with none are the "cold" bucket."""
    rows = []
    for low, high in ((0, 1), *ACTIVITY_BUCKETS):
        inside = (user_train_count >= low) & (user_train_count < (high or np.inf))
        label = "cold (0)" if high == 1 else (f"{low}-{high - 1}" if high else f"{low}+")
        rows.append(
            {"ratings_in_train": label, "n": int(inside.sum()), "rmse": rmse(prediction[inside], actual[inside])}
        )
    return rows


def rating_distribution(prediction: np.ndarray, actual: np.ndarray, scale: tuple[float, float]) -> dict:
    """Counts of actual ratings and of predictions rounded to the nearest half star."""
    bins = np.arange(scale[0], scale[1] + 0.25, 0.5)
    rounded = np.clip(np.round(prediction * 2) / 2, scale[0], scale[1])
    return {
        "rating": bins.tolist(),
        "actual": [int(n) for n in np.sum(np.isclose(actual[:, None], bins[None, :]), axis=0)],
        "predicted": [int(n) for n in np.sum(np.isclose(rounded[:, None], bins[None, :]), axis=0)],
    }


def ranking_at_k(top: np.ndarray, relevant: list[np.ndarray], k: int) -> dict[str, float]:
    """Mean precision, recall and NDCG at k (binary relevance) over the rows of `top`, given
    each row's relevant column indices. Rows without any relevant item must not be passed."""
    n_relevant = np.array([len(rel) for rel in relevant])
    # Each (row, item) pair as one int64 key, so that one isin finds every hit. Relevant items
    # below 0 (unknown to the model) are never hits but count in n_relevant.
    top = top[:, :k].astype(np.int64)
    rel_rows = np.repeat(np.arange(len(relevant)), n_relevant)
    rel_items = np.concatenate(relevant).astype(np.int64)
    width = max(int(top.max(initial=0)), int(rel_items.max(initial=0))) + 1
    relevant_keys = (rel_rows * width + rel_items)[rel_items >= 0]
    hits = (np.isin(np.arange(len(top))[:, None] * width + top, relevant_keys) & (top >= 0)).astype(float)
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discount)[np.minimum(n_relevant, k) - 1]
    return {
        "precision": float(np.mean(hits.sum(axis=1) / k)),
        "recall": float(np.mean(hits.sum(axis=1) / n_relevant)),
        "ndcg": float(np.mean((hits * discount).sum(axis=1) / ideal)),
    }


def ranking_report(
    model: Model, train_users, train_items, test_users, test_items, test_ratings, k: int, max_users: int, seed: int
) -> dict:
    """Precision, recall and NDCG at k of the model and of a most-popular baseline. A user
    counts if the model knows them and they have a relevant test rating (≥ RELEVANT_RATING);
    candidates are the model's items minus the user's training items; ties go to the lower
    item id. Above `max_users` such users, a seeded sample of them is ranked."""
    relevant = test_ratings >= RELEVANT_RATING
    user_rows, user_known = model.users.lookup(test_users)
    eligible = np.unique(user_rows[relevant & user_known])
    rows = eligible
    if len(eligible) > max_users:
        rows = np.sort(np.random.default_rng(seed).choice(eligible, max_users, replace=False))
    item_rows, item_known = model.items.lookup(test_items)
    # Relevant items the model does not know can never be recommended, but they still count.
    relevant_items = np.where(item_known, item_rows, -1)
    keep = relevant & user_known & np.isin(user_rows, rows)
    relevant_by_user = _group(user_rows[keep], relevant_items[keep], rows)
    seen_rows, seen_items = model.users.lookup(train_users)[0], model.items.lookup(train_items)[0]
    popularity = model.items.count.astype(np.float64)
    n_items = len(model.items.ids)
    top_model = top_unseen(
        lambda block: model.score_all_items(block, clip=False), rows, seen_rows, seen_items, k, n_items
    )
    top_popular = top_unseen(
        lambda block: np.tile(popularity, (len(block), 1)), rows, seen_rows, seen_items, k, n_items
    )
    report: dict[str, Any] = {
        "k": k,
        "relevant_rating": RELEVANT_RATING,
        "users": len(rows),
        "eligible_users": len(eligible),
    }
    report["sampled"] = {"seed": seed} if len(rows) < len(eligible) else None
    if not len(rows):
        return report | {"model": None, "popularity": None}
    report["model"] = ranking_at_k(top_model, relevant_by_user, k)
    report["popularity"] = ranking_at_k(top_popular, relevant_by_user, k)
    return report


def _group(keys: np.ndarray, values: np.ndarray, groups: np.ndarray) -> list[np.ndarray]:
    """values[keys == g] for each g in `groups` (sorted), without a Python loop over values."""
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    bounds = np.asarray(np.searchsorted(keys, np.r_[groups, np.iinfo(np.int64).max]))
    return [values[bounds[i] : bounds[i + 1]] for i in range(len(groups))]


def evaluate(model: Model, train: pa.Table, test: pa.Table, seed: int) -> dict:
    """Every metric of metrics.json for `model` on every rating of `test` (columns user, item,
    rating), with `train` (the ratings it was fitted on) for the ranking metrics: its errors,
    the baselines' on the same rows, errors by user activity and for cold users and items,
    ranking quality at RANKING_K, and the distribution of predicted and actual ratings."""
    test_users, test_items = test.column(USER).to_numpy(), test.column(ITEM).to_numpy()
    actual = test.column(RATING).to_numpy().astype(np.float64)
    parts = model.parts(test_users, test_items)
    prediction = model.combine(
        parts["baseline"], parts["dot"], parts["both_known"], parts["user_count"], parts["item_count"]
    )
    bias = np.clip(parts["baseline"], *model.rating_scale)
    global_mean = np.full(len(actual), np.clip(model.global_mean, *model.rating_scale))
    covered, user_known, item_known = parts["both_known"], parts["user_known"], parts["item_known"]
    bias_rmse = rmse(bias, actual)
    model_rmse = rmse(prediction, actual)
    if model_rmse is None or bias_rmse is None:
        raise ValueError("there are no test ratings to evaluate the model on")
    return {
        "rmse": model_rmse,
        "mae": mae(prediction, actual),
        "n_test": len(actual),
        "coverage": float(covered.mean()),
        "rmse_covered": rmse(prediction[covered], actual[covered]),
        "baselines": {
            "global_mean": {"rmse": rmse(global_mean, actual), "mae": mae(global_mean, actual)},
            "bias": {"rmse": bias_rmse, "mae": mae(bias, actual)},
        },
        "improvement_over_bias": 1.0 - model_rmse / bias_rmse,
        "by_activity": rmse_by_activity(prediction, actual, parts["user_count"]),
        "cold": {
            "users": {"n": int((~user_known).sum()), "rmse": rmse(prediction[~user_known], actual[~user_known])},
            "items": {"n": int((~item_known).sum()), "rmse": rmse(prediction[~item_known], actual[~item_known])},
        },
        "ranking": ranking_report(
            model,
            train.column(USER).to_numpy(),
            train.column(ITEM).to_numpy(),
            test_users,
            test_items,
            actual,
            RANKING_K,
            RANKING_USERS,
            seed,
        ),
        "distribution": rating_distribution(prediction, actual, model.rating_scale),
    }
