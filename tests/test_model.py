import math

import numpy as np
import pytest

from movielens_als import model as model_module
from movielens_als.model import (
    CALIBRATION_TERMS,
    Model,
    Side,
    damped_biases,
    factor_table,
    fit_calibration,
    model_from_tables,
)
from tests.fakes import KNOWN_BIAS_RATINGS, KNOWN_ITEM_BIASES, KNOWN_USER_BIASES


def test_damped_biases_known_answer(monkeypatch):
    monkeypatch.setattr(model_module, "USER_DAMPING", 1.0)
    monkeypatch.setattr(model_module, "ITEM_DAMPING", 1.0)
    monkeypatch.setattr(model_module, "BIAS_ITERATIONS", 1)
    users, items, ratings = np.array([1, 1, 2]), np.array([10, 20, 10]), np.array([4.0, 2.0, 5.0])
    (user_ids, user_bias, user_count), (item_ids, item_bias, item_count) = damped_biases(users, items, ratings, 11 / 3)
    # items first: b_10 = (1/3 + 4/3) / (2 + 1), b_20 = (-5/3) / (1 + 1); then the users.
    assert item_ids.tolist() == [10, 20] and item_count.tolist() == [2, 1]
    assert item_bias == pytest.approx([5 / 9, -5 / 6])
    assert user_ids.tolist() == [1, 2] and user_count.tolist() == [2, 1]
    assert user_bias == pytest.approx([-19 / 54, 7 / 18])


def test_damped_biases_use_the_documented_damping_and_passes():
    users, items, ratings = map(np.array, KNOWN_BIAS_RATINGS)
    (user_ids, user_bias, user_count), (item_ids, item_bias, item_count) = damped_biases(users, items, ratings, 3.0)
    assert dict(zip(user_ids.tolist(), user_bias, strict=True)) == pytest.approx(KNOWN_USER_BIASES, rel=1e-9)
    assert dict(zip(item_ids.tolist(), item_bias, strict=True)) == pytest.approx(KNOWN_ITEM_BIASES, rel=1e-9)
    assert (user_count.tolist(), item_count.tolist()) == ([2, 1], [2, 1])


def test_damping_pulls_rare_users_towards_zero():
    users = np.array([1] * 50 + [2])
    items = np.arange(51)
    ratings = np.array([5.0] * 51)
    (_, user_bias, _), _ = damped_biases(users, items, ratings, 3.0)
    assert user_bias[0] > 3 * user_bias[1] > 0  # the same +2 everywhere, but one rating proves little


def tiny(biased=True, calibration=None) -> Model:
    users = Side(np.array([1, 2]), np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([0.5, -0.5]), np.array([3, 1]))
    items = Side(np.array([10, 20]), np.array([[2.0, 0.0], [1.0, 1.0]]), np.array([0.25, 0.0]), np.array([2, 5]))
    return Model(3.0, users, items, (1.0, 5.0), biased, calibration)


PAIRS = (np.array([1, 2, 1, 3, 2, 9]), np.array([10, 20, 20, 10, 30, 99]))


def test_biased_predictions_and_cold_start_fallbacks():
    # 5.75 clipped; 2.5 + 2; 3.5 + 1; unseen user: mu + b_i; unseen item: mu + b_u; both unseen: mu
    assert tiny().predict(*PAIRS) == pytest.approx([5.0, 4.5, 4.5, 3.25, 2.5, 3.0])


def test_plain_als_predictions_fall_back_to_the_global_mean():
    assert tiny(biased=False).predict(*PAIRS) == pytest.approx([2.0, 2.0, 1.0, 3.0, 3.0, 3.0])


def test_calibrated_predictions_weigh_the_factors_by_activity():
    c = {
        "intercept": 0.1,
        "baseline": 0.9,
        "factors": 0.5,
        "factors_x_log_user_ratings": 0.1,
        "factors_x_log_item_ratings": 0.2,
    }
    prediction = tiny(calibration=c).predict(np.array([2, 3]), np.array([20, 10]))
    weight = 0.5 + 0.1 * math.log1p(1) + 0.2 * math.log1p(5)
    assert prediction == pytest.approx([0.1 + 0.9 * 2.5 + weight * 2.0, 0.1 + 0.9 * 3.25])


CALIBRATION = dict(zip(CALIBRATION_TERMS, [0.1, 0.9, 0.5, 0.1, 0.2], strict=True))


@pytest.mark.parametrize("biased, calibration", [(True, None), (False, None), (True, CALIBRATION)])
@pytest.mark.parametrize("clip", [True, False])
def test_scoring_all_items_is_combine_of_the_matrices_to_the_last_bit(biased, calibration, clip):
    rng = np.random.default_rng(2)
    users, items = (
        Side(np.arange(n), rng.normal(size=(n, 4)).astype(np.float32), rng.normal(0, 0.5, n), rng.integers(1, 9, n))
        for n in (5, 7)
    )
    model = Model(3.5, users, items, (0.5, 5.0), biased, calibration)
    baseline = model.global_mean + users.bias[:, None] + items.bias[None, :]
    counts = users.count[:, None], items.count[None, :]
    expected = model.combine(baseline, users.factors @ items.factors.T, True, *counts, clip=clip)
    scores = model.score_all_items(np.arange(5), clip=clip)
    assert scores.tolist() == expected.tolist()
    # And the pairwise prediction, whose dot products sum in another order.
    pairs = np.repeat(np.arange(5), 7), np.tile(np.arange(7), 5)
    if clip:
        np.testing.assert_allclose(scores.ravel(), model.predict(*pairs), rtol=1e-6)


def test_fit_calibration_recovers_known_weights():
    rng = np.random.default_rng(0)
    baseline, dot = rng.normal(3.5, 0.5, 500), rng.normal(0, 0.5, 500)
    users, items = rng.integers(1, 100, 500), rng.integers(1, 100, 500)
    truth = {
        "intercept": -0.3,
        "baseline": 1.1,
        "factors": -0.5,
        "factors_x_log_user_ratings": 0.2,
        "factors_x_log_item_ratings": 0.3,
    }
    ratings = (
        truth["intercept"]
        + truth["baseline"] * baseline
        + (truth["factors"] + 0.2 * np.log1p(users) + 0.3 * np.log1p(items)) * dot
    )
    assert fit_calibration(baseline, dot, users, items, ratings) == pytest.approx(truth)


def test_a_stored_model_reads_back_the_same():
    model = tiny()
    tables = [factor_table(s.ids, s.factors, s.bias, s.count) for s in (model.users, model.items)]
    back = model_from_tables({"model": "biased_als", "global_mean": 3.0, "rating_scale": [1, 5]}, *tables)
    assert back.predict(*PAIRS) == pytest.approx(model.predict(*PAIRS))
    assert back.users.factors.dtype == np.float32
