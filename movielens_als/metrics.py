"""Evaluation metrics on plain numpy arrays: errors, errors by user activity, and ranking
quality at k, and `evaluate`, which gathers them all for metrics.json. Every predictor is
measured on exactly the rows it is given."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from movielens_als.arrays import distinct, index_of
from movielens_als.model import Model, damped_biases
from movielens_als.ranking import Ranker, explicit_ranker, popularity_ranker, top_items
from movielens_als.ratings import Ratings, rating_arrays

# Buckets of user activity, by the user's number of ratings in the training data.
ACTIVITY_BUCKETS = ((1, 10), (10, 50), (50, 200), (200, None))
# A test rating at or above this is relevant to the ranking metrics, unless a task says otherwise
# (--relevant-rating); at or below a release's lowest rating, every test rating is relevant.
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

    def counts(values: np.ndarray) -> list[int]:
        # The values close to each bin (np.isclose), found through the nearest bin of each.
        nearest = np.clip(np.rint((values - scale[0]) * 2), 0, len(bins) - 1).astype(np.int64)
        return np.bincount(nearest[np.isclose(values, bins[nearest])], minlength=len(bins)).tolist()

    return {"rating": bins.tolist(), "actual": counts(actual), "predicted": counts(rounded)}


def ranking_at_k(top: np.ndarray, relevant: list[np.ndarray], k: int) -> dict[str, float]:
    """Mean precision, recall, NDCG (with its standard error) and MAP at k (binary relevance)
    over the rows of `top` (item ids, -1 for none), given each row's relevant item ids. Rows
    without any relevant item must not be passed. AP at k divides by min(relevant, k), so a
    perfect list scores 1."""
    hits, n_relevant = _hits(top, relevant, k)
    positions = np.arange(1, k + 1)
    average_precision = (hits * np.cumsum(hits, axis=1) / positions).sum(axis=1) / np.minimum(n_relevant, k)
    ndcg = _ndcg(hits, n_relevant, k)
    return {
        "ndcg": float(np.mean(ndcg)),
        # The standard error of that mean over the rows: how far a sample of users can move it.
        "ndcg_se": standard_error(ndcg),
        "precision": float(np.mean(hits.sum(axis=1) / k)),
        "recall": float(np.mean(hits.sum(axis=1) / n_relevant)),
        "map": float(np.mean(average_precision)),
    }


def ndcg_rows(top: np.ndarray, relevant: list[np.ndarray], k: int) -> np.ndarray:
    """Each row's NDCG at k, as ranking_at_k averages it."""
    return _ndcg(*_hits(top, relevant, k), k)


def standard_error(values: np.ndarray) -> float:
    """The standard error of the mean of `values`; 0 for fewer than two."""
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def _hits(top: np.ndarray, relevant: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """1.0 where a row's item at each of the k positions is relevant, and each row's relevant count."""
    n_relevant = np.array([len(rel) for rel in relevant])
    # Each (row, item) pair as one int64 key, so that one isin finds every hit.
    top = top[:, :k].astype(np.int64)
    rel_rows = np.repeat(np.arange(len(relevant)), n_relevant)
    rel_items = np.concatenate(relevant).astype(np.int64)
    width = max(int(top.max(initial=0)), int(rel_items.max(initial=0))) + 1
    relevant_keys = (rel_rows * width + rel_items)[rel_items >= 0]
    hits = (np.isin(np.arange(len(top))[:, None] * width + top, relevant_keys) & (top >= 0)).astype(float)
    return hits, n_relevant


def _ndcg(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    discount = 1.0 / np.log2(np.arange(1, k + 1) + 1)
    ideal = np.cumsum(discount)[np.minimum(n_relevant, k) - 1]
    return (hits * discount).sum(axis=1) / ideal


def served_diversity(top: np.ndarray, catalogue: np.ndarray, count: np.ndarray) -> dict[str, float]:
    """Of the lists `top` (item ids, -1 for none): the share of the catalogue (item ids, with
    their training ratings `count`) served to anyone, and the mean training ratings of what
    is served."""
    served = top[top >= 0]
    index, known = index_of(catalogue, served)
    return {
        "coverage": len(np.unique(served[known])) / len(catalogue) if len(catalogue) else 0.0,
        "mean_popularity": float(np.mean(np.where(known, count[index], 0))) if len(served) else 0.0,
    }


class Judge:
    """The ranking metrics' users, their relevant items and the catalogue, prepared once from
    `train` and `test` so that many rankers (the tuning's candidates) are judged on the same
    users without redoing it: those with a training rating and a relevant test rating
    (≥ `relevant_rating`); above `max_users`, a seeded sample of them. Each ranker ranks the
    items it knows that the user did not rate in training; a relevant item it does not know
    counts as missed. The catalogue is every item of the training ratings."""

    def __init__(
        self,
        train: Ratings,
        test: Ratings,
        *,
        k: int = RANKING_K,
        max_users: int = RANKING_USERS,
        seed: int,
        relevant_rating: float = RELEVANT_RATING,
    ):
        relevant = test.ratings >= relevant_rating
        eligible = np.unique(test.users[relevant & np.isin(test.users, train.users)])
        users = eligible
        if len(eligible) > max_users:
            users = np.sort(np.random.default_rng(seed).choice(eligible, max_users, replace=False))
        keep = relevant & np.isin(test.users, users)
        self.k, self.users = k, users
        self.relevant = _group(test.users[keep], test.items[keep], users)
        self.catalogue, item_index = distinct(train.items)
        self.count = np.bincount(item_index, minlength=len(self.catalogue))
        mine = np.isin(train.users, users)
        # The judged users' training ratings: all a ranker needs of them, and all they have seen.
        self.seen = Ratings(train.users[mine], train.items[mine], train.ratings[mine])
        self.header = {
            "k": k,
            "relevant_rating": relevant_rating,
            "users": len(users),
            "eligible_users": len(eligible),
            "sampled": {"seed": seed} if len(users) < len(eligible) else None,
            "catalogue": len(self.catalogue),
        }

    @property
    def reach(self) -> int:
        """How many of any fixed list's first items serve every judged user's top k: k plus the
        most training ratings a judged user has (popularity_ranker's `reach`)."""
        return self.k + int(np.bincount(distinct(self.seen.users)[1]).max(initial=0))

    def __call__(self, ranker: Ranker) -> dict | None:
        """The ranker's metrics at k (see ranking_at_k) and what it serves; None without users."""
        return self.metrics(self.top(ranker)) if len(self.users) else None

    def top(self, ranker: Ranker) -> np.ndarray:
        """The ranker's top k for each judged user (item ids, -1 for none)."""
        return top_items(ranker, self.users, self.seen.users, self.seen.items, self.k)[0]

    def metrics(self, top: np.ndarray) -> dict:
        return ranking_at_k(top, self.relevant, self.k) | served_diversity(top, self.catalogue, self.count)


def ranking_report(model: Model, train: Ratings, test: Ratings, **options) -> dict:
    """The Judge's header (who was judged; `options` are the Judge's own) and the metrics of
    the rating model ("model") and of the most popular items ("popularity"), ties to the lower
    item id, under their names."""
    judge = Judge(train, test, **options)
    rankers = {
        "model": explicit_ranker(model),
        "popularity": popularity_ranker(model.items.ids, model.items.count, judge.reach),
    }
    return judge.header | {name: judge(ranker) for name, ranker in rankers.items()}


def _group(keys: np.ndarray, values: np.ndarray, groups: np.ndarray) -> list[np.ndarray]:
    """values[keys == g] for each g in `groups` (sorted), without a Python loop over values."""
    order = np.argsort(keys, kind="stable")
    keys, values = keys[order], values[order]
    bounds = np.asarray(np.searchsorted(keys, np.r_[groups.astype(np.int64), np.iinfo(np.int64).max]))
    return [values[bounds[i] : bounds[i + 1]] for i in range(len(groups))]


def baselines(train: Ratings, test: Ratings, rating_scale: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The two baselines' predictions of `test`, clipped: the damped user+item biases of `train`
    around its mean (as biased ALS's own) and that mean; the same for every model judged."""
    mean = float(train.ratings.mean())
    (user_ids, user_bias, _), (item_ids, item_bias, _) = damped_biases(*train, mean)
    (user_row, user_known), (item_row, item_known) = index_of(user_ids, test.users), index_of(item_ids, test.items)
    bias = mean + np.where(user_known, user_bias[user_row], 0.0) + np.where(item_known, item_bias[item_row], 0.0)
    return np.clip(bias, *rating_scale), np.full(len(test.users), np.clip(mean, *rating_scale))


def _baselines_of_model(model: Model, baseline: np.ndarray, train: Ratings) -> tuple[np.ndarray, np.ndarray]:
    """`baselines`' two predictions from the model's own mean and biases (its `baseline`
    parts), which must be those of `train`."""
    if model.global_mean != float(train.ratings.mean()):
        raise ValueError("the model's biases are not those of the training ratings it is evaluated with")
    return np.clip(baseline, *model.rating_scale), np.full(
        len(baseline), np.clip(model.global_mean, *model.rating_scale)
    )


def evaluate(
    model: Model,
    train: pa.Table,
    test: pa.Table,
    seed: int,
    relevant_rating: float = RELEVANT_RATING,
    *,
    biases_of_train: bool = False,
) -> dict:
    """Every metric of metrics.json for `model` on every rating of `test` (columns user, item,
    rating), with `train` (the ratings it was fitted on) for the ranking metrics: its errors,
    the baselines' on the same rows, errors by user activity and for cold users and items,
    ranking quality at RANKING_K (a test rating ≥ `relevant_rating` is relevant), and the
    distribution of predicted and actual ratings. With `biases_of_train`, the model's mean and
    biases are `baselines`' own (an ALS model keeps the damped biases of all of `train`), which
    serve the baselines instead of computing them again."""
    train_ratings, test_ratings = rating_arrays(train), rating_arrays(test)
    actual = test_ratings.ratings
    parts = model.parts(test_ratings.users, test_ratings.items)
    prediction = model.combine(
        parts["baseline"], parts["dot"], parts["both_known"], parts["user_count"], parts["item_count"]
    )
    bias, global_mean = (
        _baselines_of_model(model, parts["baseline"], train_ratings)
        if biases_of_train
        else baselines(train_ratings, test_ratings, model.rating_scale)
    )
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
        "ranking": ranking_report(model, train_ratings, test_ratings, seed=seed, relevant_rating=relevant_rating),
        "distribution": rating_distribution(prediction, actual, model.rating_scale),
    }
