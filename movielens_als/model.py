"""The recommender as numbers: damped biases, factor scores, calibration, and the one formula
that turns them into a predicted rating. Pure numpy, so a stored model can be scored
anywhere, without Spark.

Biased ALS predicts   r̂(u, i) = μ + b_u + b_i + p_u·q_i,   with ALS fitted on r - μ - b_u - b_i.
Plain ALS predicts    r̂(u, i) = p_u·q_i.
A tuned model is also calibrated on held-out training ratings:
    r̂ = c0 + c1 (μ + b_u + b_i) + (c2 + c3 log(1 + n_u) + c4 log(1 + n_i)) p_u·q_i,
which lets the factors count for more where a user or an item has many ratings.
Fallbacks: a user or item without factors contributes no factor term and a bias of 0, so an
unseen user gets μ + b_i, an unseen item μ + b_u, and both unseen μ (plain ALS: μ).
Every prediction is clipped to the release's rating scale.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from movielens_als.arrays import distinct, index_of
from movielens_als.columns import BIAS, COUNT, FEATURES, ID

# Damping of the biases: a user's or item's bias counts as if it had this many extra ratings
# at the global mean (Koren 2008; the same as Surprise's BaselineOnly defaults).
USER_DAMPING = 15.0
ITEM_DAMPING = 10.0
BIAS_ITERATIONS = 3
MODELS = ("biased_als", "als")
# The files of a stored model, in its directory. The factor tables have the columns id,
# features (list of float32), bias and count (training ratings).
USER_FACTORS = "user_factors.parquet"
ITEM_FACTORS = "item_factors.parquet"
MODEL_JSON = "model.json"
FILES = (USER_FACTORS, ITEM_FACTORS, MODEL_JSON)
CALIBRATION_TERMS = ("intercept", "baseline", "factors", "factors_x_log_user_ratings", "factors_x_log_item_ratings")


def damped_biases(
    users: np.ndarray, items: np.ndarray, ratings: np.ndarray, global_mean: float
) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(ids, bias, count) of the users and of the items, ids sorted: biases around
    `global_mean` from a few alternating passes of b_i = Σ(r - μ - b_u) / (n_i + ITEM_DAMPING)
    and b_u = Σ(r - μ - b_i) / (n_u + USER_DAMPING)."""
    user_ids, user_index = distinct(users)
    item_ids, item_index = distinct(items)
    user_count = np.bincount(user_index)
    item_count = np.bincount(item_index)
    centred = ratings.astype(np.float64) - global_mean
    user_bias = np.zeros(len(user_ids))
    for _ in range(BIAS_ITERATIONS):
        item_bias = np.bincount(item_index, centred - user_bias[user_index]) / (item_count + ITEM_DAMPING)
        user_bias = np.bincount(user_index, centred - item_bias[item_index]) / (user_count + USER_DAMPING)
    return (user_ids, user_bias, user_count), (item_ids, item_bias, item_count)


@dataclass(frozen=True)
class Side:
    """The users or the items of a model: ids (sorted), factors, biases and training counts."""

    ids: np.ndarray  # int, sorted
    factors: np.ndarray  # (n, rank) float32
    bias: np.ndarray  # float64; zeros for plain ALS
    count: np.ndarray  # ratings in training

    def lookup(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(row index, known) for each id; the index of an unknown id is meaningless."""
        return index_of(self.ids, ids)


@dataclass(frozen=True)
class Model:
    global_mean: float
    users: Side
    items: Side
    rating_scale: tuple[float, float]
    biased: bool = True
    calibration: dict[str, float] | None = None

    def combine(self, baseline, dot, both_known, user_count, item_count, clip: bool = True) -> np.ndarray:
        """The predicted ratings from their parts; `dot` only counts where `both_known`.
        Unclipped scores rank items without the ties clipping makes at the top of the scale."""
        if not self.biased:
            prediction = np.where(both_known, dot, self.global_mean)
        elif self.calibration is None:
            prediction = baseline + np.where(both_known, dot, 0.0)
        else:
            c = self.calibration
            weight = (
                c["factors"]
                + c["factors_x_log_user_ratings"] * np.log1p(user_count)
                + c["factors_x_log_item_ratings"] * np.log1p(item_count)
            )
            prediction = c["intercept"] + c["baseline"] * baseline + weight * np.where(both_known, dot, 0.0)
        return np.clip(prediction, *self.rating_scale) if clip else prediction

    def parts(self, users: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
        """What a prediction is made of, for each (user, item) pair: baseline, dot, both_known,
        user_count, item_count, and user_known and item_known."""
        user_index, user_known = self.users.lookup(users)
        item_index, item_known = self.items.lookup(items)
        both = user_known & item_known
        dot = np.zeros(len(users))
        rows = np.flatnonzero(both)
        # Bounded memory for tens of millions of rows, whatever the factors' width: the two
        # gathered blocks take 2 × 4 bytes × 2²⁵ = 256 MiB (1 M rows at rank 32; the Bayesian
        # model's 50 samples of rank 10 side by side are 500 wide, and 1 M rows took 4 GiB).
        step = max(1, (1 << 25) // max(1, self.users.factors.shape[1]))
        for start in range(0, len(rows), step):
            block = rows[start : start + step]
            dot[block] = np.einsum(
                "ij,ij->i", self.users.factors[user_index[block]], self.items.factors[item_index[block]]
            )
        return {
            "baseline": self._baseline(user_index, user_known, item_index, item_known),
            "dot": dot,
            "both_known": both,
            "user_count": np.where(user_known, self.users.count[user_index], 0),
            "item_count": np.where(item_known, self.items.count[item_index], 0),
            "user_known": user_known,
            "item_known": item_known,
        }

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        p = self.parts(users, items)
        return self.combine(p["baseline"], p["dot"], p["both_known"], p["user_count"], p["item_count"])

    def score_all_items(self, user_rows: np.ndarray, clip: bool = True) -> np.ndarray:
        """Predicted ratings of every item of the model for the users at rows `user_rows` of
        `self.users`: a (len(user_rows), n_items) matrix."""
        baseline = self.global_mean + self.users.bias[user_rows][:, None] + self.items.bias[None, :]
        dot = self.users.factors[user_rows] @ self.items.factors.T
        if self.biased and self.calibration is None:  # combine's sum, made in place: two passes fewer
            baseline += dot
            return np.clip(baseline, *self.rating_scale, out=baseline) if clip else baseline
        counts = self.users.count[user_rows][:, None], self.items.count[None, :]
        return self.combine(baseline, dot, True, *counts, clip=clip)

    def _baseline(self, user_index, user_known, item_index, item_known) -> np.ndarray:
        """μ + b_u + b_i, a bias counting 0 where its user or item is unknown."""
        return (
            self.global_mean
            + np.where(user_known, self.users.bias[user_index], 0.0)
            + np.where(item_known, self.items.bias[item_index], 0.0)
        )


def fit_calibration(baseline: np.ndarray, dot: np.ndarray, user_count, item_count, ratings) -> dict[str, float]:
    """Least-squares weights of CALIBRATION_TERMS that best predict `ratings` (held-out ones)."""
    design = np.column_stack([np.ones(len(dot)), baseline, dot, np.log1p(user_count) * dot, np.log1p(item_count) * dot])
    weights, *_ = np.linalg.lstsq(design, np.asarray(ratings, dtype=np.float64), rcond=None)
    return dict(zip(CALIBRATION_TERMS, map(float, weights), strict=True))


def factor_table(ids: np.ndarray, factors: np.ndarray, bias: np.ndarray, count: np.ndarray) -> pa.Table:
    rank = factors.shape[1]
    flat = pa.array(np.ascontiguousarray(factors, dtype=np.float32).ravel())
    return pa.table(
        {
            ID: pa.array(ids, pa.int32()),
            FEATURES: pa.FixedSizeListArray.from_arrays(flat, rank).cast(pa.list_(pa.float32())),
            BIAS: pa.array(bias, pa.float64()),
            COUNT: pa.array(count, pa.int64()),
        }
    )


def side_from_table(table: pa.Table) -> Side:
    table = table.sort_by(ID)
    features = table.column(FEATURES).combine_chunks()
    rank = len(features[0]) if len(features) else 0
    return Side(
        ids=table.column(ID).to_numpy(),
        factors=pc.list_flatten(features).to_numpy().reshape(len(features), rank),
        bias=table.column(BIAS).to_numpy(),
        count=table.column(COUNT).to_numpy(),
    )


def model_from_tables(description: dict, users: pa.Table, items: pa.Table) -> Model:
    """The model stored as model.json (`description`) and its two factor tables."""
    return Model(
        global_mean=description["global_mean"],
        users=side_from_table(users),
        items=side_from_table(items),
        rating_scale=tuple(description["rating_scale"]),
        biased=description["model"] != "als",
        calibration=description.get("calibration"),
    )


def describe(
    model: str,
    global_mean: float,
    rating_scale: tuple[float, float],
    als: Mapping[str, Any],
    calibration: Mapping[str, float] | None = None,
    **record: Any,
) -> dict:
    """model.json of a rating model: what `model_from_tables` reads to score it (the kind,
    global mean, rating scale, calibration), the ALS settings it was fitted with, and
    `record` (where it came from: parameters, training data, timings)."""
    return {
        "model": model,
        "formula": "mu + b_u + b_i + p_u.q_i" if model == "biased_als" else "p_u.q_i",
        "global_mean": global_mean,
        "biases": {"user_damping": USER_DAMPING, "item_damping": ITEM_DAMPING} if model == "biased_als" else None,
        "calibration": dict(calibration) if calibration else None,
        "rating_scale": list(rating_scale),
        "als": dict(als),
        **record,
    }


def to_files(description: dict, users: pa.Table, items: pa.Table) -> dict[str, Any]:
    """The files of a stored rating model (FILES), by name: its two factor tables and model.json."""
    return {USER_FACTORS: users, ITEM_FACTORS: items, MODEL_JSON: description}


def from_files(files: Mapping[str, Any]) -> Model:
    """The rating model of `to_files`' files."""
    return model_from_tables(files[MODEL_JSON], files[USER_FACTORS], files[ITEM_FACTORS])
