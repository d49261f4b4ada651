"""The Bayesian rating model (movielens_als.bpmf) on small generated data: the stored model is
the posterior mean it claims to be, it is seeded, it learns what the biases cannot, and it
falls back to the biases where it knows nobody; and the choice between it and ALS."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from movielens_als import bpmf, metrics, selection
from movielens_als.arrays import index_of
from movielens_als.model import damped_biases
from movielens_als.ratings import Ratings, rating_arrays
from tests.test_selection import generated

SCALE = (0.5, 5.0)


@pytest.fixture(scope="module")
def ratings() -> tuple[Ratings, Ratings]:
    train, held_out = selection.validation_split(generated(6000, 150, 100, seed=8), "random", seed=1)
    return rating_arrays(train), rating_arrays(held_out)


def test_the_stored_model_scores_exactly_the_mean_of_the_samples_it_keeps(ratings, monkeypatch):
    # With every sample past the burn-in laid side by side, the factor tables' dot product is
    # the samples' average: the model's validation RMSE equals that of the running mean.
    monkeypatch.setattr(bpmf, "MAX_SAMPLES", 1000)
    monkeypatch.setattr(bpmf, "STOP_PATIENCE", 30)  # every sweep runs: not a test of the stop
    train, held_out = ratings
    fitted = bpmf.fit(train, sweeps=30, seed=3, rating_scale=SCALE, validation=held_out)
    assert fitted.samples == 30 - bpmf.burn_in(30) == 25
    assert fitted.model.users.factors.shape == (len(np.unique(train.users)), bpmf.RANK * 25)
    scored = metrics.rmse(fitted.model.predict(held_out.users, held_out.items), held_out.ratings)
    assert scored == pytest.approx(fitted.curve[-1]["validation_rmse"], abs=1e-6)
    assert [point["sweep"] for point in fitted.curve] == list(range(6, 31))
    assert (fitted.burn_in, fitted.stopped_at) == (5, 30)


def test_it_keeps_at_most_max_samples_evenly_spaced_and_the_last(ratings, monkeypatch):
    monkeypatch.setattr(bpmf, "MAX_SAMPLES", 4)
    fitted = bpmf.fit(ratings[0], sweeps=30, seed=3, rating_scale=SCALE)
    assert fitted.samples == 4 and fitted.curve == []  # 25 kept sweeps, every 7th: 30, 23, 16, 9 (past burn-in 5)


def test_the_same_seed_gives_the_same_model_and_another_seed_another(ratings):
    first, again, other = (bpmf.fit(ratings[0], sweeps=12, seed=s, rating_scale=SCALE).model for s in (5, 5, 6))
    np.testing.assert_array_equal(first.users.factors, again.users.factors)
    assert first.global_mean == again.global_mean
    assert not np.allclose(first.items.factors, other.items.factors)


def test_it_beats_the_damped_biases_on_held_out_ratings(ratings):
    train, held_out = ratings
    fitted = bpmf.fit(train, sweeps=60, seed=3, rating_scale=SCALE, validation=held_out)
    mean = float(train.ratings.mean())
    (user_ids, user_bias, _), (item_ids, item_bias, _) = damped_biases(*train, mean)
    (user_row, user_known), (item_row, item_known) = (
        index_of(user_ids, held_out.users),
        index_of(item_ids, held_out.items),
    )
    baseline = mean + np.where(user_known, user_bias[user_row], 0) + np.where(item_known, item_bias[item_row], 0)
    bias_rmse = metrics.rmse(np.clip(baseline, *SCALE), held_out.ratings)
    assert fitted.curve[-1]["validation_rmse"] < bias_rmse - 0.02


def test_unseen_users_and_items_get_the_biases_alone(ratings):
    model = bpmf.fit(ratings[0], sweeps=6, seed=3, rating_scale=SCALE).model
    known_item = model.items.ids[0]
    unseen = np.array([10_000])
    assert model.predict(unseen, np.array([known_item]))[0] == pytest.approx(model.global_mean + model.items.bias[0])
    assert model.predict(unseen, np.array([10_001]))[0] == pytest.approx(model.global_mean)


def test_the_rating_model_with_the_lower_validation_rmse_is_chosen_and_als_wins_a_tie():
    assert selection.choose_rating_model({"als": 0.91, "bpmf": 0.88})["chosen"] == "bpmf"
    choice = selection.choose_rating_model({"als": 0.9, "bpmf": 0.9})
    assert choice == {"selected_by": "validation_rmse", "validation_rmse": {"als": 0.9, "bpmf": 0.9}, "chosen": "als"}


def test_a_seed_gives_the_same_fit_whatever_the_number_of_threads(ratings, monkeypatch):
    # Small blocks, so that the threads take several in any order; the compiled loops run on as
    # many threads as numba has (at most `workers`).
    monkeypatch.setattr(bpmf, "BLOCK_ROWS", 200)
    one, two, three = (bpmf.fit(ratings[0], sweeps=8, seed=5, rating_scale=SCALE, workers=n).model for n in (1, 2, 3))
    for other in (two, three):
        np.testing.assert_array_equal(one.users.factors, other.users.factors)
        np.testing.assert_array_equal(one.items.factors, other.items.factors)
        np.testing.assert_array_equal(one.users.bias, other.users.bias)


def test_a_seed_gives_the_same_stop_whatever_the_number_of_threads(ratings, monkeypatch):
    monkeypatch.setattr(bpmf, "BLOCK_ROWS", 200)
    train, held_out = ratings
    one, two = (bpmf.fit(train, sweeps=60, seed=5, rating_scale=SCALE, validation=held_out, workers=n) for n in (1, 2))
    assert (one.chosen, one.stopped_at, one.curve) == (two.chosen, two.stopped_at, two.curve)
    np.testing.assert_array_equal(one.model.users.factors, two.model.users.factors)


class _Scripted:
    """A validation tracker whose running mean's RMSE follows a script."""

    def __init__(self, curve: list[float]) -> None:
        self.curve = iter(curve)

    def add(self, *_) -> float:
        return next(self.curve)


def _run_rule(curve: list[float], sweeps: int, first: int) -> int:
    """Sweeps a chain runs under the stopping rule when its running mean's RMSE follows `curve`."""
    entities = SimpleNamespace(ids=np.arange(2))
    side = SimpleNamespace(bias=np.zeros(2), vectors=np.zeros((2, 1)))
    state = SimpleNamespace(mean=3.0, users=side, items=side)
    posterior = bpmf._Posterior(sweeps, first, entities, entities, _Scripted(curve))
    done = 0
    while done < sweeps and not posterior.stop(done):
        posterior.add(done, state)
        done += 1
    return done


def test_the_chain_stops_when_the_running_mean_stops_falling_and_not_while_it_falls():
    tolerance, patience, first = bpmf.STOP_TOLERANCE, bpmf.STOP_PATIENCE, 10
    # Flat after the burn-in: the first sample is the best, and the chain stops `patience` later.
    assert _run_rule([0.9] * 200, 200, first) == first + 1 + patience
    # Falling by the tolerance every sweep: it runs to the end.
    assert _run_rule([0.9 - 1.01 * tolerance * k for k in range(200)], 200, first) == 200
    # Falling by a fifth of it: a fall of the tolerance every five sweeps, within the patience.
    assert _run_rule([0.9 - tolerance / 5 * k for k in range(200)], 200, first) == 200
    # Falling by half the tolerance within the patience: it stops.
    assert _run_rule([0.9 - tolerance / (2 * patience) * k for k in range(200)], 200, first) < 200
    # Falling, then rising: it stops `patience` sweeps after the last fall by the tolerance.
    curve = [0.9 - 2 * tolerance * k for k in range(30)] + [0.9 - 2 * tolerance * (29 - k) for k in range(200)]
    assert _run_rule(curve, 200, first) == first + 30 + patience


def test_with_validation_it_stops_early_and_replaying_the_choice_gives_the_running_mean_at_the_stop(
    ratings, monkeypatch
):
    # Every sample laid side by side, so the replayed model is exactly the running mean at the choice.
    monkeypatch.setattr(bpmf, "MAX_SAMPLES", 1000)
    train, held_out = ratings
    validated = bpmf.fit(train, sweeps=300, seed=4, rating_scale=SCALE, validation=held_out)
    assert validated.burn_in == bpmf.burn_in(300) == 50
    assert validated.stopped_at < 300 and len(validated.curve) == validated.stopped_at - 50
    # None of the last STOP_PATIENCE sweeps fell by the tolerance below the best before them:
    # every sweep run is replayed.
    last = validated.curve[-1]
    assert validated.chosen == validated.stopped_at == last["sweep"]
    rmses = [p["validation_rmse"] for p in validated.curve]
    patience = bpmf.STOP_PATIENCE
    assert min(rmses[-patience:]) > min(rmses[:-patience]) - bpmf.STOP_TOLERANCE
    best = last
    replay = bpmf.fit(train, sweeps=validated.chosen, burn_in=validated.burn_in, seed=4, rating_scale=SCALE)
    assert (replay.burn_in, replay.samples, replay.stopped_at) == (50, validated.chosen - 50, validated.chosen)
    scored = metrics.rmse(replay.model.predict(held_out.users, held_out.items), held_out.ratings)
    assert scored == pytest.approx(best["validation_rmse"], abs=1e-6)


def test_an_explicit_burn_in_is_honoured_and_checked(ratings):
    fitted = bpmf.fit(ratings[0], sweeps=12, burn_in=2, seed=5, rating_scale=SCALE)
    assert (fitted.burn_in, fitted.samples, fitted.chosen) == (2, 10, 12)
    with pytest.raises(ValueError):
        bpmf.fit(ratings[0], sweeps=12, burn_in=12, seed=5, rating_scale=SCALE)


def test_it_recovers_a_known_low_rank_structure():
    # Ratings 3 + u·v with rank-2 tastes and noise of standard deviation 0.1, half of every
    # user's and item's cells observed: the posterior mean predicts the other half nearly to
    # the noise, where the biases alone cannot.
    rng = np.random.default_rng(0)
    users, items = rng.standard_normal((120, 2)) * 0.7, rng.standard_normal((90, 2)) * 0.7
    user, item = (a.ravel() for a in np.meshgrid(np.arange(120), np.arange(90), indexing="ij"))
    rating = 3 + _rowdot(users[user], items[item]) + rng.normal(0, 0.1, len(user))
    seen = rng.random(len(user)) < 0.5
    train, held_out = (Ratings(user[m], item[m], rating[m]) for m in (seen, ~seen))
    fitted = bpmf.fit(train, sweeps=40, seed=1, rating_scale=(-10.0, 10.0), validation=held_out)
    assert fitted.curve[-1]["validation_rmse"] < 0.15
    assert float(np.std(held_out.ratings - held_out.ratings.mean())) > 0.5


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


def test_the_kernels_are_compiled_for_the_samplers_rank():
    """bpmf_kernels compiles its rank in (numba's cache knows only that file): the two must agree."""
    from movielens_als import bpmf_kernels

    assert bpmf_kernels.RANK == bpmf.RANK
