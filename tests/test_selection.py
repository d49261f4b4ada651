"""Model selection (movielens_als.selection) on tiny data: the validation carve, the grid, the
choice and its edge flag, for ALS (with a numpy stand-in for Spark's fit) and for EASE."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow as pa
import pytest

from movielens_als import ease, selection
from movielens_als.model import damped_biases, factor_table
from movielens_als.ratings import Ratings, rating_arrays
from movielens_als.synthetic import synthetic_ratings


def generated(n_ratings: int, n_users: int, n_items: int, seed: int) -> pa.Table:
    """Generated half-star ratings with the pipeline's column names."""
    table = synthetic_ratings(n_ratings, n_users, n_items, seed=seed)
    return table.rename_columns(["user", "item", "rating", "timestamp"])


@pytest.fixture(scope="module")
def train() -> pa.Table:
    return generated(3000, 100, 80, seed=5)


def pairs(table: pa.Table) -> set[tuple[int, int]]:
    return set(zip(table.column("user").to_pylist(), table.column("item").to_pylist(), strict=True))


@pytest.mark.parametrize("strategy", ["user_random", "item_random", "official"])
def test_the_validation_split_is_carved_from_the_training_ratings_with_a_seed_of_its_own(train, strategy):
    fit_part, validation = selection.validation_split(train, strategy, seed=42)
    assert pairs(fit_part) | pairs(validation) == pairs(train) and not pairs(fit_part) & pairs(validation)
    assert validation.num_rows == pytest.approx(selection.VALIDATION_FRACTION * train.num_rows, rel=0.15)
    again = selection.validation_split(train, strategy, seed=42)[1]
    assert pairs(again) == pairs(validation)
    record = selection.validation_record(strategy, 42, fit_part, validation)
    assert (record["seed"], record["fit"]["rows"] + record["validation"]["rows"]) == (43, train.num_rows)


def test_edges_name_the_parameters_whose_winner_ends_its_values():
    grid = {"rank": [16, 32, 64], "reg_param": [0.05, 0.1], "max_iter": [15]}
    assert selection.edges({"rank": 64, "reg_param": 0.1, "max_iter": 15}, grid) == ["rank", "reg_param"]
    assert selection.edges({"rank": 32, "reg_param": 0.1, "max_iter": 15}, grid) == ["reg_param"]
    message = selection.edge_warning({"rank": 64}, grid, ["rank"])
    assert message == (
        "the best candidate may lie beyond the grid searched: rank 64 is at an end of [16, 32, 64]; "
        "widen the grid past it"
    )


def numpy_als(table: pa.Table, rank: int, reg_param: float, max_iter: int):
    """A stand-in for Spark's ALS of the same shape: the damped biases and random factors."""
    users, items, ratings = rating_arrays(table)
    mean = float(ratings.mean())
    (user_ids, user_bias, user_count), (item_ids, item_bias, item_count) = damped_biases(users, items, ratings, mean)
    rng = np.random.default_rng(rank)
    scale = 1.0 / rank
    return (
        factor_table(user_ids, rng.normal(0, scale, (len(user_ids), 2)), user_bias, user_count),
        factor_table(item_ids, rng.normal(0, scale, (len(item_ids), 2)), item_bias, item_count),
        mean,
    )


def test_tune_als_scores_its_candidates_and_flags_a_winner_at_the_grids_edge(train):
    fit_part, validation = selection.validation_split(train, "user_random", seed=1)
    grid = {"ranks": [1, 2, 8], "reg_params": [0.1, 0.2], "max_iters": [5]}
    seen = []
    result = selection.tune_als(
        numpy_als,
        fit_part,
        validation,
        "biased_als",
        selection.AlsGrid(**grid),
        (0.5, 5.0),
        lambda *a: seen.append(a[:2]),
        stop_ranks=False,
    )
    candidates = result["candidates"]
    # Two regParams: the bracket from the lower middle fits both, at every rank.
    assert [(c["rank"], c["reg_param"], c["max_iter"]) for c in candidates] == [
        (r, g, 5) for r in (1, 2, 8) for g in (0.1, 0.2)
    ]
    assert seen == [(n, 6) for n in range(1, 7)] and result["skipped"] == []
    assert result["selected_by"] == "validation_rmse_calibrated"
    assert result["best"] == min(candidates, key=lambda c: (c["validation_rmse_calibrated"], -c["rank"]))
    assert result["at_grid_edge"] == selection.edges(result["best"], selection.AlsGrid(**grid).axes)
    assert "reg_param" in result["at_grid_edge"]  # of two values, either is an end
    assert all(c["validation_rmse_calibrated"] <= c["validation_rmse"] + 1e-12 for c in candidates)
    plain = selection.tune_als(
        numpy_als, fit_part, validation, "als", selection.AlsGrid([2], [0.1, 0.2], [5]), (0.5, 5.0)
    )
    assert plain["selected_by"] == "validation_rmse" and plain["best"]["calibration"] is None


def toy_fit(score):
    """A stand-in for plain ALS whose validation RMSE is `score(rank, reg_param, max_iter)` on
    ratings that are all 3: every prediction (a user factor 1 times an item factor) is 3 + score."""

    def fit(table, rank, reg_param, max_iter):
        users, items, ratings = rating_arrays(table)
        (user_ids, _, user_count), (item_ids, _, item_count) = damped_biases(users, items, ratings, 3.0)
        user_factors = np.tile([1.0, 0.0], (len(user_ids), 1))
        item_factors = np.tile([3.0 + score(rank, reg_param, max_iter), 0.0], (len(item_ids), 1))
        return (
            factor_table(user_ids, user_factors, np.zeros(len(user_ids)), user_count),
            factor_table(item_ids, item_factors, np.zeros(len(item_ids)), item_count),
            3.0,
        )

    return fit


@pytest.fixture(scope="module")
def flat() -> tuple[pa.Table, pa.Table]:
    """Ratings of 3.0 only: a model predicting 3 + s everywhere has RMSE s on them."""
    table = generated(2000, 80, 60, seed=2)
    table = table.set_column(2, "rating", pa.array(np.full(table.num_rows, 3.0), type=table.schema.field(2).type))
    return selection.validation_split(table, "user_random", seed=1)


BOWL = {16: 0.12, 32: 0.1, 64: 0.11}  # the best regParam's RMSE by rank, lowest at rank 32


def bowl(rank, reg_param, max_iter):
    """Convex in regParam (lowest at 0.2 for rank 32, 0.15 otherwise) and in maxIter (10)."""
    best_reg = 0.2 if rank == 32 else 0.15
    return BOWL[rank] + abs(reg_param - best_reg) + 0.001 * abs(max_iter - 10)


def test_the_search_finds_the_grids_best_with_fewer_fits_and_lists_every_one(flat):
    fit_part, validation = flat
    grid = selection.AlsGrid([64, 16, 32], [0.3, 0.05, 0.1, 0.15, 0.2, 0.4], [5, 10, 20])
    fitted = []

    def fit(table, rank, reg_param, max_iter):
        fitted.append((rank, reg_param, max_iter))
        return toy_fit(bowl)(table, rank, reg_param, max_iter)

    told = []
    result = selection.tune_als(
        fit, fit_part, validation, "als", grid, (0.5, 5.0), lambda done, most, c: told.append((done, most))
    )
    assert result["best"]["validation_rmse"] == pytest.approx(0.1)
    assert (result["best"]["rank"], result["best"]["reg_param"], result["best"]["max_iter"]) == (32, 0.2, 10)
    points = [(c["rank"], c["reg_param"], c["max_iter"]) for c in result["candidates"]]
    assert points == fitted and len(set(points)) == len(points)  # each fit listed, once
    assert [c["rank"] for c in result["candidates"]] == sorted(c["rank"] for c in result["candidates"])
    # Rank 64's best (0.11) is worse than rank 32's: the ranks stop there, and rank 64 was tried.
    assert {r for r, _, _ in points} == {16, 32, 64}
    assert told == [(n, 54) for n in range(1, len(points) + 1)] and len(points) < 54 / 2
    assert sorted(map(tuple, result["skipped"])) == sorted(set(map(tuple, map(list, _grid(grid)))) - set(points))
    for c in result["candidates"]:
        assert c["validation_rmse"] == pytest.approx(bowl(c["rank"], c["reg_param"], c["max_iter"]))
    assert result["at_grid_edge"] == []
    assert "bracket along reg_param" in result["search"]


def _grid(grid: selection.AlsGrid) -> list[tuple]:
    return [(p["rank"], p["reg_param"], p["max_iter"]) for p in grid.points()]


def test_the_ranks_stop_growing_once_one_is_no_better_and_ties_go_low(flat):
    fit_part, validation = flat
    grid = selection.AlsGrid([8, 16, 32, 64], [0.05, 0.1, 0.2], [15])

    def worse_with_rank(rank, reg_param, max_iter):
        return 0.5 + rank / 1000 + abs(reg_param - 0.1)

    result = selection.tune_als(toy_fit(worse_with_rank), fit_part, validation, "als", grid, (0.5, 5.0))
    assert {c["rank"] for c in result["candidates"]} == {8, 16}  # 16 is worse than 8: 32 and 64 skipped
    assert [32, 0.1, 15] in result["skipped"] and [64, 0.05, 15] in result["skipped"]
    assert (result["best"]["rank"], result["best"]["reg_param"]) == (8, 0.1)
    assert result["at_grid_edge"] == ["rank"]  # the edge is still against the grid
    every = selection.tune_als(
        toy_fit(worse_with_rank), fit_part, validation, "als", grid, (0.5, 5.0), stop_ranks=False
    )
    assert {c["rank"] for c in every["candidates"]} == {8, 16, 32, 64}

    def untimed(candidate: dict) -> dict:  # a fit's seconds differ between runs on a loaded machine
        return {k: v for k, v in candidate.items() if k != "seconds"}

    assert untimed(every["best"]) == untimed(result["best"])

    def flat_score(rank, reg_param, max_iter):
        return 0.5

    tie = selection.tune_als(toy_fit(flat_score), fit_part, validation, "als", grid, (0.5, 5.0), stop_ranks=False)
    assert (tie["best"]["rank"], tie["best"]["reg_param"], tie["best"]["max_iter"]) == (8, 0.05, 15)


def test_large_training_ratings_are_sampled_by_whole_users_before_the_carve(train):
    cap = 1000
    fit_part, validation = selection.validation_split(train, "user_random", seed=7, max_ratings=cap)
    sample = pa.concat_tables([fit_part, validation])
    users = set(sample.column("user").to_pylist())
    # Every rating of each user kept, and only theirs.
    assert pairs(sample) == {p for p in pairs(train) if p[0] in users} and not pairs(fit_part) & pairs(validation)
    counts = np.bincount(train.column("user").to_numpy())
    assert sample.num_rows <= cap and sample.num_rows + counts.max() > cap  # about the cap
    assert 0 < len(users) < len(set(train.column("user").to_pylist()))
    again = selection.validation_split(train, "user_random", seed=7, max_ratings=cap)
    assert pairs(again[0]) == pairs(fit_part) and pairs(again[1]) == pairs(validation)
    other = selection.validation_split(train, "user_random", seed=8, max_ratings=cap)
    assert set(pa.concat_tables(other).column("user").to_pylist()) != users
    record = selection.validation_record("user_random", 7, fit_part, validation)
    assert record["sample"] == {
        "max_ratings": cap,
        "users": len(users),
        "of_users": len(set(train.column("user").to_pylist())),
        "ratings": sample.num_rows,
        "of_ratings": train.num_rows,
    }
    assert record["fit"]["rows"] + record["validation"]["rows"] == sample.num_rows


def test_training_ratings_within_the_cap_are_carved_whole(train):
    whole = selection.validation_split(train, "user_random", seed=7, max_ratings=None)
    at_cap = selection.validation_split(train, "user_random", seed=7, max_ratings=train.num_rows)
    default = selection.validation_split(train, "user_random", seed=7)
    assert train.num_rows < selection.TUNING_RATINGS
    for fit_part, validation in (at_cap, default):
        assert fit_part.equals(whole[0]) and validation.equals(whole[1])
    assert selection.validation_record("user_random", 7, *default)["sample"] is None


def test_thresholds_that_like_the_same_ratings_are_one():
    whole_stars = np.array([1.0, 2, 3, 4, 5])
    assert selection.distinct_thresholds(whole_stars, [0.5, 1.0, 3.5, 4.0, 4.5]) == {
        0.5: 0.5,
        1.0: 0.5,  # at or below the lowest rating: every rating
        3.5: 3.5,
        4.0: 3.5,  # no rating between 3.5 and 4
        4.5: 4.5,
    }
    half_stars = np.array([0.5, 3.5, 4.0, 5.0])
    assert selection.distinct_thresholds(half_stars, [0.5, 3.5, 4.0]) == {0.5: 0.5, 3.5: 3.5, 4.0: 4.0}


def ease_data() -> tuple[Ratings, Ratings]:
    table = generated(4000, 120, 90, seed=11)
    fit_part, validation = selection.validation_split(table, "user_random", seed=3)
    return rating_arrays(fit_part), rating_arrays(validation)


def search(
    positive_ratings: list[float],
    l2s: list[float],
    max_items: int = 50,
    *,
    tune_items: int = 50,
    relevant_rating: float = 4.0,
    genre_weights: list[float] | None = None,
    popularity_exponents: list[float] | None = None,
) -> selection.EaseSearch:
    """An EASE search without genres or a popularity discount unless given."""
    return selection.EaseSearch(
        l2s=l2s,
        positive_ratings=positive_ratings,
        genre_weights=genre_weights or [0.0],
        popularity_exponents=popularity_exponents or [0.0],
        max_items=max_items,
        tune_items=tune_items,
        relevant_rating=relevant_rating,
    )


def test_tune_ease_fits_each_distinct_threshold_once_and_picks_the_best_ndcg():
    fit_part, validation = ease_data()
    seen = []
    result = selection.tune_ease(
        fit_part,
        validation,
        search([0.5, 1.0, 4.0], [1.0, 10.0, 100.0]),
        seed=0,
        on_candidate=lambda *a: seen.append(a),
    )
    candidates = result["candidates"]
    lowest = float(fit_part.ratings.min())
    assert result["same_positives"] == ({"1": 0.5} if lowest >= 1.0 else {})
    fitted = {c["positive_rating"] for c in candidates}
    assert fitted == ({0.5, 4.0} if lowest >= 1.0 else {0.5, 1.0, 4.0})
    # Each liked rating's bracket fits 2 or 3 of the 3 λs; the most there can be is told each time.
    assert 2 * len(fitted) <= len(candidates) <= 3 * len(fitted) and len(candidates) == len(seen)
    assert [s[:2] for s in seen] == [(i + 1, 4 * len(fitted)) for i in range(len(seen))]
    assert all(c["items"] <= 50 for c in candidates)
    assert result["best"] == max(candidates, key=lambda c: (c["ndcg"], -c["l2"], -c["positive_rating"]))
    assert {c["genre_weight"] for c in candidates} == {0.0} and {c["popularity_exponent"] for c in candidates} == {0.0}
    assert result["at_grid_edge"] == (["l2"] if result["best"]["l2"] in (1.0, 100.0) else [])
    assert result["relevant_rating"] == 4.0 and result["k"] == 10


def test_tune_ease_judges_by_the_relevance_asked():
    fit_part, validation = ease_data()
    strict = selection.tune_ease(fit_part, validation, search([4.0], [10.0], relevant_rating=5.0), seed=0)
    every = selection.tune_ease(fit_part, validation, search([4.0], [10.0], relevant_rating=0.5), seed=0)
    assert every["relevant_rating"] == 0.5 and strict["relevant_rating"] == 5.0
    # With every validation rating relevant, every validation user with a training rating counts.
    assert every["best"]["ndcg"] != strict["best"]["ndcg"]


def test_tune_ease_refuses_validation_without_a_relevant_rating():
    fit_part, validation = ease_data()
    none_relevant = validation._replace(ratings=np.full(len(validation.ratings), 1.0))
    with pytest.raises(ValueError, match=r"no validation user has a rating ≥ 4: .* lower --relevant-rating"):
        selection.tune_ease(fit_part, none_relevant, search([4.0], [10.0]), seed=0)


@pytest.mark.parametrize(
    ("peak", "fitted"),
    [
        (400, [400, 200, 800]),  # the middle: both neighbours, then stop
        (100, [400, 200, 100]),  # the low end: climbs down, no neighbour below
        (1600, [400, 200, 800, 1600]),  # the high end
        (800, [400, 200, 800, 1600]),
    ],
)
def test_the_climb_along_one_axis_brackets_the_peak_from_the_middle(peak, fitted):
    climb = selection.Climb([[800, 100, 1600, 200, 400, 400]])  # any order, duplicates once
    seen = []
    for (value,) in climb:
        seen.append(value)
        climb.tell((value,), -abs(np.log(value / peak)))  # one peak along log λ
    assert seen == fitted and climb.best == (peak,)


def test_the_climb_starts_where_it_is_told():
    climb = selection.Climb([[100, 200, 400, 800, 1600]], start=(1600,))
    seen = []
    for (value,) in climb:
        seen.append(value)
        climb.tell((value,), -abs(np.log(value / 1600)))
    assert seen == [1600, 800]
    assert selection.Climb([[100, 200, 400]], start=(50,)).first == (1,)  # not in the grid: the middle


def test_the_climb_takes_the_lower_value_on_a_tie_and_stops():
    climb = selection.Climb([[100, 200, 400]])
    order = []
    for (value,) in climb:
        order.append(value)
        climb.tell((value,), {100: 0.1, 200: 0.3, 400: 0.3}[value])
    assert order == [200, 100, 400] and climb.best == (200,)


def test_the_climb_over_two_axes_ends_at_the_peak_with_all_its_neighbours_fitted():
    l2s, weights = [100, 200, 400, 800, 1600], [0, 1, 3, 10, 30]
    climb = selection.Climb([l2s, weights])
    seen = []
    for l2, weight in climb:
        seen.append((l2, weight))
        climb.tell((l2, weight), -abs(np.log(l2 / 800)) - abs(np.log((weight + 1) / 11)))  # peak (800, 10)
    assert seen[0] == (400, 3)  # the middle of each axis
    assert {(800, 10), (400, 10), (1600, 10), (800, 3), (800, 30)} <= set(seen)
    assert len(seen) < len(l2s) * len(weights) and len(set(seen)) == len(seen) and climb.best == (800, 10)


def test_tune_ease_records_the_points_it_fitted():
    fit_part, validation = ease_data()
    grid = [1.0, 10.0, 100.0, 1000.0, 10000.0]
    result = selection.tune_ease(fit_part, validation, search([4.0], grid), seed=0)
    fitted = sorted(c["l2"] for c in result["candidates"])
    assert 3 <= len(fitted) <= 5
    assert result["fitted"]["4"] == [[l2, 0.0] for l2 in fitted]
    best = result["best"]["l2"]
    position = grid.index(best)
    assert all(grid[i] in fitted for i in (position - 1, position + 1) if 0 <= i < len(grid))


def genres_of(n_items: int) -> ease.Genres:
    """Two genres, the even and the odd items, and every item of the 1990s."""
    movies = pa.table(
        {
            "item": pa.array(range(1, n_items + 1), pa.int32()),
            "title": [f"Movie {i} (1995)" for i in range(1, n_items + 1)],
            "genres": [["Even"] if i % 2 == 0 else ["Odd"] for i in range(1, n_items + 1)],
        }
    )
    return ease.Genres.of(movies)


def test_tune_ease_searches_genre_weights_and_judges_every_fit_with_every_popularity_exponent():
    fit_part, validation = ease_data()
    exponents = [0.0, -0.2, -0.5]
    result = selection.tune_ease(
        fit_part,
        validation,
        search([4.0], [10.0, 100.0], genre_weights=[0.0, 5.0, 50.0], popularity_exponents=exponents),
        seed=0,
        genres=genres_of(90),
    )
    candidates = result["candidates"]
    fits = {(c["l2"], c["genre_weight"]) for c in candidates}
    assert sorted(map(tuple, result["fitted"]["4"])) == sorted(fits)
    # A bracket along λ at the middle genre weight (5), then along the genre weight at the best λ.
    assert {w for l2, w in fits} == {0.0, 5.0, 50.0} or {(10.0, 5.0), (100.0, 5.0)} <= fits
    for fit in fits:  # each fit judged with a bracket of βs: a run of neighbours, none twice
        judged = sorted(c["popularity_exponent"] for c in candidates if (c["l2"], c["genre_weight"]) == fit)
        assert len(judged) == len(set(judged)) >= 2
        run = sorted(exponents).index(judged[0])
        assert judged == sorted(exponents)[run : run + len(judged)]
    # The same fit judged with another β ranks otherwise: the discount reaches the scores.
    by_fit = {}
    for c in candidates:
        by_fit.setdefault((c["l2"], c["genre_weight"]), set()).add(round(c["ndcg"], 12))
    assert any(len(ndcgs) > 1 for ndcgs in by_fit.values())
    best = result["best"]
    assert best == max(candidates, key=selection._rank_key)
    expected_edges = [
        name
        for name, grid in (
            ("l2", [10.0, 100.0]),
            ("genre_weight", [0.0, 5.0, 50.0]),
            ("popularity_exponent", exponents),
        )
        if best[name] in (min(grid), max(grid)) and not best[name] == 0 == min(grid)
    ]
    assert result["at_grid_edge"] == expected_edges


def test_a_genre_weight_of_zero_at_the_low_end_is_no_edge_of_the_grid():
    grid = {"genre_weight": [0, 1, 3], "l2": [1, 2]}
    assert selection.edges({"genre_weight": 0, "l2": 2}, grid) == ["l2"]
    assert selection.edges({"genre_weight": 3, "l2": 1.5}, grid) == ["genre_weight"]


@pytest.mark.parametrize("ses", [0.0, 1e9])
@pytest.mark.parametrize("factor", [2, 100])
def test_tune_ease_searches_on_the_most_liked_items_and_settles_close_calls_on_more(monkeypatch, ses, factor):
    fit_part, validation = ease_data()
    # FINALIST_SES 0: only the best is a finalist, and it stands as searched; 1e9: every liked
    # rating's best is judged again on SETTLE_FACTOR times the search's items (2: 40), or on
    # all the items it likes (100: 2,000, more than `max_items` and than the items liked).
    monkeypatch.setattr(selection, "FINALIST_SES", ses)
    monkeypatch.setattr(selection, "SETTLE_FACTOR", factor)
    result = selection.tune_ease(
        fit_part, validation, search([0.5, 4.0], [1.0, 10.0, 100.0], 200, tune_items=20), seed=0
    )
    searched = [c for c in result["candidates"] if c["items"] == 20]
    refits = [c for c in result["candidates"] if c["items"] > 20]
    best_searched = max(searched, key=lambda c: (c["ndcg"], -c["l2"], -c["positive_rating"]))
    if ses == 0.0:
        assert refits == [] and result["best"] == best_searched
    else:
        liked = {t: len(np.unique(fit_part.items[fit_part.ratings >= t])) for t in (0.5, 4.0)}
        assert all(40 < liked[t] < 200 for t in liked)
        settled = {t: 40 if factor == 2 else liked[t] for t in liked}
        assert sorted((c["positive_rating"], c["items"]) for c in refits) == [(t, settled[t]) for t in (0.5, 4.0)]
        assert result["best"] == max(refits, key=lambda c: (c["ndcg"], -c["l2"], -c["positive_rating"]))
        # Each refit is its liked rating's best λ of the search.
        for refit in refits:
            mine = [c for c in searched if c["positive_rating"] == refit["positive_rating"]]
            assert refit["l2"] == max(mine, key=lambda c: (c["ndcg"], -c["l2"]))["l2"]
    assert "20 most-liked items" in result["search"] and result["judged"]["users"] > 0
    assert f"on up to {40 if factor == 2 else 200} items" in result["search"]


def test_tune_ease_judges_a_seeded_sample_of_at_most_tuning_users():
    fit_part, validation = ease_data()
    few = dataclasses.replace(search([4.0], [10.0]), tuning_users=30)
    result = selection.tune_ease(fit_part, validation, few, seed=0)
    assert result["judged"]["users"] == 30 < result["judged"]["eligible_users"]
    assert result["judged"]["sampled"] == {"seed": 0}


def test_the_searches_keep_lists_from_json_as_tuples_of_the_numbers_given():
    ease_search = selection.EaseSearch(
        **json.loads(
            '{"l2s": [100, 400.0], "positive_ratings": [4.0], "genre_weights": [0], "popularity_exponents": [0, -0.2],'
            ' "max_items": 2048, "tune_items": 512, "relevant_rating": 4.0}'
        )
    )
    assert ease_search.l2s == (100, 400.0) and isinstance(ease_search.l2s[0], int)
    assert ease_search.grid == {"l2": (100, 400.0), "genre_weight": (0,), "popularity_exponent": (0, -0.2)}
    assert ease_search == dataclasses.replace(ease_search, positive_ratings=[4.0]) and hash(ease_search)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ease_search.l2s = (1.0,)
    grid = selection.AlsGrid(**json.loads('{"ranks": [8, 16], "reg_params": [0.05], "max_iters": [10, 15]}'))
    assert grid.axes == {"rank": (8, 16), "reg_param": (0.05,), "max_iter": (10, 15)}
    assert grid.points() == [{"rank": r, "reg_param": 0.05, "max_iter": i} for r in (8, 16) for i in (10, 15)]
    assert grid.as_dict() == {"ranks": [8, 16], "reg_params": [0.05], "max_iters": [10, 15]}


@pytest.mark.parametrize("empty", ["l2s", "positive_ratings", "genre_weights", "popularity_exponents"])
def test_an_ease_search_with_nothing_to_try_names_the_empty_field(empty):
    with pytest.raises(ValueError, match=rf"EaseSearch\.{empty} is empty: give at least one value to try"):
        dataclasses.replace(search([4.0], [10.0]), **{empty: []})


def test_an_als_grid_with_nothing_to_try_names_the_empty_field():
    with pytest.raises(ValueError, match=r"AlsGrid\.reg_params is empty"):
        selection.AlsGrid(ranks=[8], reg_params=[], max_iters=[10])
