"""Model selection, for the rating model (ALS) and the ranking model (EASE) alike: a validation
split carved from the training ratings, every candidate of a grid fitted on the rest and
scored on it, the winner, and the parameters whose winning value sits at an end of what was
searched (the best may lie beyond it). The test ratings never reach any of it.

The fitting is the caller's: TunedALS's driver passes Spark's ALS in, so this module stays
free of Spark and is tested with any fit of the same shape.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from movielens_als import ease, metrics
from movielens_als.arrays import count_distinct, distinct
from movielens_als.columns import USER
from movielens_als.model import fit_calibration, model_from_tables
from movielens_als.ranking import Ranker, ease_ranker
from movielens_als.ratings import Ratings, rating_arrays
from movielens_als.split import STRATEGIES, describe, split_ratings

# The share of the training ratings held out to judge the candidates.
VALIDATION_FRACTION = 0.2
# Past this many training ratings, the rating models' validation carve (TunedALS, ValidatedBPMF)
# is made from a sample of whole users holding about this many (validation_split). TunedALS's
# search on 2 M generated ratings, in process, on two cores shared with other work: 9
# candidates in 580 s with a 1 M cap (load average 7-16; rank 64's fits 67-166 s), 139 s with
# 500,000 (load 4.5), 200 s with 250,000 (load 9): below about 500,000 a candidate's fixed cost
# (some 8-10 s for rank 16 at either size) is most of it, above it the ratings are.
# ml-100k and ml-latest-small (80,000 training ratings) are far below it.
TUNING_RATINGS = 500_000
# Where validation_split leaves the sample's record, in the fitting part's schema metadata.
SAMPLE_KEY = b"movielens_als.tuning_sample"
# TunedEASE judges its candidates on at most this many validation users unless told otherwise
# (--tuning-users), a seeded sample beyond (tuning.json's "judged"; each candidate's NDCG has
# its standard error, "ndcg_se": 0.0025 at 10 M ratings): ranking them is most of a
# candidate's cost once the search is on 2,048 items and each fit is judged with several
# popularity exponents (in process at 10 M: 25.3 s with 10,000 users, about 18 s with 5,000,
# 15.6 s with 3,000). ml-100k and ml-latest-small have fewer.
TUNING_USERS = 3_000
# TunedEASE's search is on its most-liked items; the best λ of each liked rating within this
# many standard errors of the best candidate is judged again on more of them:
FINALIST_SES = 2
# this many times the search's items, at most every item TrainedEASE models. A fit is cubic in
# its items: at 10 M ratings two close calls on all 10,500 items took 15 s of TunedEASE's 21.5,
# on 8,192 items 7 s, and the same winner (BENCHMARKS.md). Releases of up to 8,192 liked
# items (ml-1m and smaller) settle on every item, as TrainedEASE fits them.
SETTLE_FACTOR = 4
# What a tuned EASE model is, as tuning.json's candidates and its best name it.
EASE_PARAMS = ("positive_rating", "l2", "genre_weight", "popularity_exponent")
# (ratings, rank, regParam, maxIter) -> (user factor table, item factor table, global mean)
AlsFit = Callable[[pa.Table, int, float, int], tuple[pa.Table, pa.Table, float]]
# Called after each candidate with (candidates done, candidates in all, the candidate).
OnCandidate = Callable[[int, int, dict], None]


@dataclass(frozen=True)
class EaseSearch:
    """TunedEASE's search: what it tries and how it judges (one value from the command line to here).
    The values tried may come as lists (from JSON: `EaseSearch(**json.loads(text))`); they are
    kept as tuples, so a search is hashable and cannot change under the tuning. Their numbers
    are kept as given (an int stays an int), as tuning.json records them."""

    l2s: tuple[float, ...]
    positive_ratings: tuple[float, ...]
    genre_weights: tuple[float, ...]
    popularity_exponents: tuple[float, ...]
    max_items: int
    tune_items: int
    relevant_rating: float
    tuning_users: int = TUNING_USERS

    def __post_init__(self) -> None:
        _as_tuples(self, ("l2s", "positive_ratings", "genre_weights", "popularity_exponents"))

    @property
    def grid(self) -> dict[str, Sequence[float]]:
        """The values searched, by the name a candidate gives each (for `edges`)."""
        return {"l2": self.l2s, "genre_weight": self.genre_weights, "popularity_exponent": self.popularity_exponents}


@dataclass(frozen=True)
class AlsGrid:
    """TunedALS's grid: every (rank, regParam, maxIter) of these is fitted. Lists (from JSON)
    are kept as tuples, their numbers as given, as for EaseSearch."""

    ranks: tuple[int, ...]
    reg_params: tuple[float, ...]
    max_iters: tuple[int, ...]

    def __post_init__(self) -> None:
        _as_tuples(self, ("ranks", "reg_params", "max_iters"))

    @property
    def axes(self) -> dict[str, Sequence[float]]:
        """The values searched, by the name a candidate gives each (for `edges`)."""
        return {"rank": self.ranks, "reg_param": self.reg_params, "max_iter": self.max_iters}

    def points(self) -> list[dict[str, Any]]:
        """Every candidate's (rank, reg_param, max_iter), ranks outermost."""
        return grid_points(self.axes)

    def as_dict(self) -> dict[str, list]:
        """The grid as tuning.json records it, under its own names."""
        return {"ranks": list(self.ranks), "reg_params": list(self.reg_params), "max_iters": list(self.max_iters)}


def _as_tuples(search: object, names: Sequence[str]) -> None:
    """Makes each named field of a frozen search a tuple; an empty one is refused by name."""
    for name in names:
        values = tuple(getattr(search, name))
        if not values:
            raise ValueError(f"{type(search).__name__}.{name} is empty: give at least one value to try")
        object.__setattr__(search, name, values)


def validation_split(
    train: pa.Table, strategy: str, seed: int, max_ratings: int | None = TUNING_RATINGS
) -> tuple[pa.Table, pa.Table]:
    """(the ratings candidates are fitted on, the ratings they are judged on): VALIDATION_FRACTION
    of `train` carved the way the test split was made (a release's own folds, which are random
    cuts: at random), with a seed of its own so the validation split is not the test split's twin.

    When `train` holds more than `max_ratings` ratings, the carve is made from a seeded random
    sample of whole users (every rating of each, so their histories stay complete) holding
    about `max_ratings` of them (tuning_sample; the fitting part's schema metadata records
    it for validation_record). The rating models' tuning (TunedALS, ValidatedBPMF) is judged
    on the sample and their winner refitted on everything; TunedEASE passes None, as EASE's
    best λ grows with the users."""
    carve = strategy if strategy in STRATEGIES else "random"
    sample = train
    if max_ratings is not None and train.num_rows > max_ratings:
        sample = tuning_sample(train, max_ratings, validation_seed(seed))
    fit_part, validation = split_ratings(sample, carve, VALIDATION_FRACTION, validation_seed(seed))
    if sample is not train:
        record = {
            "max_ratings": max_ratings,
            "users": count_distinct(sample.column(USER).to_numpy()),
            "of_users": count_distinct(train.column(USER).to_numpy()),
            "ratings": sample.num_rows,
            "of_ratings": train.num_rows,
        }
        fit_part = fit_part.replace_schema_metadata(
            {**(fit_part.schema.metadata or {}), SAMPLE_KEY: json.dumps(record)}
        )
    return fit_part, validation


def tuning_sample(train: pa.Table, max_ratings: int, seed: int) -> pa.Table:
    """The ratings of whole users of `train`, in a seeded random order, taken while their
    ratings total at most `max_ratings` (at least one user), in `train`'s row order."""
    users = train.column(USER).to_numpy()
    ids, index = distinct(users)
    counts = np.bincount(index, minlength=len(ids))
    order = np.random.default_rng(seed).permutation(len(ids))
    taken = max(1, int(np.searchsorted(np.cumsum(counts[order]), max_ratings, side="right")))
    keep = np.zeros(len(ids), dtype=bool)
    keep[order[:taken]] = True
    return train.filter(pa.array(keep[index]))


def validation_seed(seed: int) -> int:
    return seed + 1


def validation_record(strategy: str, seed: int, fit_part: pa.Table, validation: pa.Table) -> dict:
    """How the validation split was made and what it holds, for tuning.json: `sample` is the
    sample of users it was carved from (validation_split) or None, when from every rating."""
    sample = (fit_part.schema.metadata or {}).get(SAMPLE_KEY)
    return {
        "strategy": strategy,
        "fraction": VALIDATION_FRACTION,
        "seed": validation_seed(seed),
        "sample": json.loads(sample) if sample else None,
        "fit": describe(fit_part),
        "validation": describe(validation),
    }


def edges(best: Mapping[str, Any], grid: Mapping[str, Sequence[float]]) -> list[str]:
    """The parameters of `grid` (name -> values searched) whose value in `best` is the lowest
    or the highest of two or more values searched; a lowest value of 0 (an addition turned
    off, such as EASE's genre weight) is no edge: nothing lies below it."""
    return [
        name
        for name, values in grid.items()
        if len(set(values)) > 1 and best[name] in (min(values), max(values)) and not best[name] == 0 == min(values)
    ]


def edge_warning(best: Mapping[str, Any], grid: Mapping[str, Sequence[float]], names: Sequence[str]) -> str:
    """What a user reads when the winner sits at an edge of the grid."""
    where = "; ".join(f"{name} {best[name]:g} is at an end of {list(grid[name])}" for name in names)
    return f"the best candidate may lie beyond the grid searched: {where}; widen the grid past it"


def grid_points(grid: Mapping[str, Sequence[float]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, as name -> value."""
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def choose(candidates: list[dict], key: Callable[[dict], Any], grid: Mapping[str, Sequence[float]]) -> dict:
    """The winner (the candidate with the highest `key`) and the parameters at an edge."""
    best = max(candidates, key=key)
    return {"best": best, "at_grid_edge": edges(best, grid)}


def tune_als(
    fit: AlsFit,
    fit_part: pa.Table,
    validation: pa.Table,
    model: str,
    grid: AlsGrid,
    rating_scale: tuple[float, float],
    on_candidate: OnCandidate | None = None,
    *,
    stop_ranks: bool = True,
) -> dict:
    """(rank, reg_param, max_iter) candidates of `grid` fitted on `fit_part` and scored by RMSE
    on `validation`. Biased ALS also gets calibration weights fitted on the validation ratings,
    and is ranked by its calibrated RMSE.

    A search, not every point: the ranks from the lowest, and for each a Climb over (regParam,
    maxIter) from the previous rank's best (the middles for the first): a bracket along
    regParam when one maxIter is given. With `stop_ranks`, the ranks stop growing once a
    rank's best is no better than the previous rank's. Every candidate fitted is listed;
    `skipped` lists the grid's points that were not. Ties go to the lower rank, regParam and
    maxIter, as they did when every point was fitted. `on_candidate` is told the most
    candidates there can be."""
    selected_by = "validation_rmse_calibrated" if model == "biased_als" else "validation_rmse"
    most = len(grid.points())
    candidates: list[dict] = []
    start: tuple[float, ...] | None = None
    rank_best: float | None = None
    for rank in sorted(set(grid.ranks)):
        climb = Climb([grid.reg_params, grid.max_iters], start=start)
        for reg_param, max_iter in climb:
            started = time.perf_counter()
            users, items, global_mean = fit(fit_part, rank, reg_param, int(max_iter))
            description = {"model": model, "global_mean": global_mean, "rating_scale": list(rating_scale)}
            point = {"rank": rank, "reg_param": reg_param, "max_iter": max_iter}
            candidate = point | score_als(description, users, items, validation)
            candidate["seconds"] = round(time.perf_counter() - started, 2)
            candidates.append(candidate)
            climb.tell((reg_param, max_iter), -candidate[selected_by])
            if on_candidate:
                on_candidate(len(candidates), most, candidate)
        start = climb.best
        best_score = -max(climb.scores.values())
        if stop_ranks and rank_best is not None and best_score >= rank_best:
            break
        rank_best = best_score
    tried = {_als_point(c) for c in candidates}
    return {
        "selected_by": selected_by,
        "search": _als_search_described(stop_ranks),
        "skipped": [list(p) for p in sorted(map(_als_point, grid.points())) if p not in tried],
        "candidates": candidates,
    } | choose(candidates, lambda c: (-c[selected_by], *(-v for v in _als_point(c))), grid.axes)


def _als_point(candidate: Mapping[str, Any]) -> tuple:
    return candidate["rank"], candidate["reg_param"], candidate["max_iter"]


def _als_search_described(stop_ranks: bool) -> str:
    """tune_als's search in words, for tuning.json."""
    ranks = "the ranks from the lowest" + (", stopping once a rank's best is no better than the last's" * stop_ranks)
    return (
        f"{ranks}; for each, a bracket along reg_param (and max_iter) from the last rank's best "
        "(the middles for the first), until neither neighbour of the best is better"
    )


def score_als(description: dict, users: pa.Table, items: pa.Table, validation: pa.Table) -> dict:
    """The validation RMSE of the model of `description` and its factor tables; for biased ALS
    also its calibration weights, fitted on the same ratings, and the calibrated RMSE."""
    model = model_from_tables(description, users, items)
    held_out = rating_arrays(validation)
    parts = model.parts(held_out.users, held_out.items)
    scored = parts["baseline"], parts["dot"], parts["both_known"], parts["user_count"], parts["item_count"]
    result: dict[str, Any] = {"validation_rmse": metrics.rmse(model.combine(*scored), held_out.ratings)}
    result["calibration"] = None
    if description["model"] == "biased_als":
        calibration = fit_calibration(
            parts["baseline"], parts["dot"], parts["user_count"], parts["item_count"], held_out.ratings
        )
        calibrated = model_from_tables({**description, "calibration": calibration}, users, items)
        result["calibration"] = calibration
        result["validation_rmse_calibrated"] = metrics.rmse(calibrated.combine(*scored), held_out.ratings)
    return result


def choose_rating_model(validation_rmse: Mapping[str, float]) -> dict:
    """The rating model (by name) with the lowest RMSE on the same validation ratings; on a tie,
    the first named."""
    chosen = min(validation_rmse, key=lambda name: validation_rmse[name])
    return {"selected_by": "validation_rmse", "validation_rmse": dict(validation_rmse), "chosen": chosen}


def distinct_thresholds(ratings: np.ndarray, thresholds: Sequence[float]) -> dict[float, float]:
    """Each threshold mapped to the first of `thresholds` that selects the same ratings (≥ it)
    of `ratings`: on a whole-star release 3.5 and 4.0 like the same ratings, and any threshold
    at or below the lowest rating likes them all."""
    values = np.unique(ratings)
    first: dict[int, float] = {}
    same: dict[float, float] = {}
    for threshold in thresholds:
        lowest_liked = int(np.searchsorted(values, threshold))  # index of the lowest rating ≥ it
        same[threshold] = first.setdefault(lowest_liked, threshold)
    return same


class Climb:
    """The points of a grid to fit, one at a time: `start` first (or the middle of each axis),
    then the unfitted neighbours (one step along one axis) of the best so far, until the best
    has been compared with all of its neighbours. Along λ, and along the genre weight, the
    validation NDCG rises to one peak and falls (measured on ml-latest-small and ml-100k), so
    this finds the grid's best with a fraction of its fits: with one axis it is a bracket
    search. `tell` gives it each fitted point's score before the next is asked for; ties go
    to the lower values."""

    def __init__(self, axes: Sequence[Sequence[float]], start: Sequence[float] | None = None):
        self.axes = [sorted(set(values)) for values in axes]
        middle = tuple((len(values) - 1) // 2 for values in self.axes)
        if start is not None and all(v in values for values, v in zip(self.axes, start, strict=True)):
            middle = tuple(values.index(v) for values, v in zip(self.axes, start, strict=True))
        self.first = middle
        self.scores: dict[tuple[int, ...], float] = {}

    def __iter__(self) -> Climb:
        return self

    def __next__(self) -> tuple[float, ...]:
        if not self.scores:
            return self._values(self.first)
        best = self._best_at()
        for axis in range(len(self.axes)):
            for step in (-1, 1):
                at = (*best[:axis], best[axis] + step, *best[axis + 1 :])
                if 0 <= at[axis] < len(self.axes[axis]) and at not in self.scores:
                    return self._values(at)
        raise StopIteration

    def tell(self, point: Sequence[float], score: float) -> None:
        self.scores[tuple(values.index(v) for values, v in zip(self.axes, point, strict=True))] = score

    @property
    def best(self) -> tuple[float, ...]:
        """The best point told so far."""
        return self._values(self._best_at())

    def _best_at(self) -> tuple[int, ...]:
        return max(self.scores, key=lambda at: (self.scores[at], tuple(-i for i in at)))

    def _values(self, at: Sequence[int]) -> tuple[float, ...]:
        return tuple(values[i] for values, i in zip(self.axes, at, strict=True))


def tune_ease(
    fit_part: Ratings,
    validation: Ratings,
    search: EaseSearch,
    *,
    seed: int,
    genres: ease.Genres | None = None,
    on_candidate: OnCandidate | None = None,
) -> dict:
    """(positive rating, λ, genre weight α, popularity exponent β) candidates fitted on
    `fit_part` and judged by NDCG at metrics.RANKING_K on `validation`, a test rating ≥
    `search.relevant_rating` being relevant.

    The search fits each candidate on its `search.tune_items` most-liked items only: for the
    first liked rating, from the middle of each grid, a bracket (Climb) along λ, then one along
    α; for each next one, from the best (λ, α) so far, a bracket along λ at that α (the genres'
    worth did not depend on the liked rating on ml-100k, ml-latest-small or 10 M generated
    ratings, and each α bracket costs fits). Each fit is judged with a bracket of βs (β only
    rescales its scores, so it costs no fit). A threshold that likes the same ratings as one
    before it is not fitted again: its candidates are recorded as the same as that one's. Then
    each liked rating's best that is within FINALIST_SES standard errors of the best is judged
    again on SETTLE_FACTOR times as many items (at most `search.max_items`, as TrainedEASE fits
    it), and the best of those wins: the search finds its point at a fraction of the cost (a
    fit is cubic in its items), and the close calls are settled on a model the size of the one
    to be served, or the whole of it. `on_candidate` is told the most candidates there can be."""
    same = distinct_thresholds(fit_part.ratings, search.positive_ratings)
    fitted = [t for t in search.positive_ratings if same[t] == t]
    exponents = sorted(set(search.popularity_exponents))
    most = (len(fitted) * (len(set(search.l2s)) + 1) + len(set(search.genre_weights)) - 1) * len(exponents)
    tune_items = min(search.tune_items, search.max_items)
    settle_items = min(SETTLE_FACTOR * search.tune_items, search.max_items)
    judging = _Judging(fit_part, validation, seed, search.relevant_rating, search.tuning_users, most, on_candidate)
    fitted_points, liked_items = {}, {}
    for threshold in fitted:
        points = _search_liked_rating(judging, threshold, search, tune_items, exponents, genres)
        fitted_points[f"{threshold:g}"] = sorted(map(list, points))
        liked_items[threshold] = min(settle_items, len(distinct(fit_part.items[fit_part.ratings >= threshold])[0]))
    final = _settle(judging, liked_items, settle_items, genres)
    return {
        "selected_by": "ndcg",
        "k": metrics.RANKING_K,
        "relevant_rating": search.relevant_rating,
        "judged": {name: judging.judge.header[name] for name in ("users", "eligible_users", "sampled")},
        "same_positives": {f"{t:g}": same[t] for t in search.positive_ratings if same[t] != t},
        "search": _search_described(tune_items, settle_items),
        "fitted": fitted_points,
        "candidates": judging.candidates,
        **choose(final, _rank_key, search.grid),
    }


def _search_described(tune_items: int, settle_items: int) -> str:
    """tune_ease's search in words, for tuning.json."""
    return (
        f"on the {tune_items} most-liked items: for the first liked rating, from the middles, a bracket "
        f"along λ, then along the genre weight; for each next one, from the best so far, a bracket along λ at its "
        f"genre weight; each fit judged with a bracket of popularity exponents; then each liked rating's best "
        f"within {FINALIST_SES} standard errors of the best, on up to {settle_items} items"
    )


class _Judging:
    """TunedEASE's candidates as they are judged: the Judge of the validation users, every
    candidate so far (tuning.json's), each one's NDCG per judged user (to compare close calls),
    and the clock of the candidate being judged."""

    def __init__(
        self,
        fit_part: Ratings,
        validation: Ratings,
        seed: int,
        relevant_rating: float,
        max_users: int,
        most: int,
        on_candidate: OnCandidate | None,
    ):
        self.judge = metrics.Judge(
            fit_part, validation, seed=seed, relevant_rating=relevant_rating, max_users=max_users
        )
        if not len(self.judge.users):
            raise ValueError(
                f"no validation user has a rating ≥ {relevant_rating:g}: the training ratings are too few to tune "
                "the ranking model; lower --relevant-rating or use a larger release"
            )
        self.fit_part = fit_part
        self.most, self.on_candidate = most, on_candidate
        self.candidates: list[dict] = []
        self.ndcg_rows: dict[tuple, np.ndarray] = {}
        self.started = time.perf_counter()

    @property
    def best(self) -> dict | None:
        return _best(self.candidates) if self.candidates else None

    def best_ndcg(self, fitted: ease.Ease, exponents: Sequence[float]) -> float:
        """Judges the fitted model with the βs of a Climb over `exponents`, started at the best
        β so far: its scores are computed once, and each β only rescales them. Its best NDCG."""
        plain = ease_ranker(dataclasses.replace(fitted, popularity_exponent=0.0), self.judge.seen)
        plain_scores = plain.scores(self.judge.users)
        best = self.best
        along = Climb([exponents], start=(best["popularity_exponent"],) if best else None)
        for (exponent,) in along:
            model = dataclasses.replace(fitted, popularity_exponent=exponent)
            along.tell((exponent,), self._judged(model, plain_scores * model.discount if exponent else plain_scores))
        return max(along.scores.values())

    def _judged(self, model: ease.Ease, scores: np.ndarray) -> float:
        """Records the candidate `model`, whose scores of the judged users are `scores`; its NDCG."""
        top = self.judge.top(Ranker(model.items, _rows_of(scores, self.judge.users)))
        candidate = {name: getattr(model, name) for name in EASE_PARAMS}
        candidate |= {**self.judge.metrics(top), "items": len(model.items)}
        self.ndcg_rows[_id(candidate)] = metrics.ndcg_rows(top, self.judge.relevant, self.judge.k)
        candidate["seconds"] = round(time.perf_counter() - self.started, 2)
        self.candidates.append(candidate)
        if self.on_candidate:
            self.on_candidate(len(self.candidates), self.most, candidate)
        self.started = time.perf_counter()
        return candidate["ndcg"]


def _search_liked_rating(
    judging: _Judging,
    threshold: float,
    search: EaseSearch,
    tune_items: int,
    exponents: Sequence[float],
    genres: ease.Genres | None,
) -> list[tuple[float, float]]:
    """The search for one liked rating, on `tune_items` items: from the best (λ, α) so far (or the
    middles), a bracket along λ, then, for the first liked rating only, along α. The (λ, α) fitted."""
    scores: dict[tuple[float, float], float] = {}
    best = judging.best
    start = (best["l2"], best["genre_weight"]) if best else (_middle(search.l2s), _middle(search.genre_weights))
    # The genre weight is searched on the first liked rating; the next keep its best.
    weights = [best["genre_weight"]] if best else search.genre_weights
    points = _coordinates(search.l2s, weights, start, scores)
    for model in ease.fit(*judging.fit_part, threshold, points, tune_items, genres):
        scores[model.l2, model.genre_weight] = judging.best_ndcg(model, exponents)
    return list(scores)


def _settle(
    judging: _Judging, liked_items: Mapping[float, int], settle_items: int, genres: ease.Genres | None
) -> list[dict]:
    """The candidates the winner is chosen from: each liked rating's best that the search cannot
    tell from the best, judged again on `settle_items` items unless it was fitted on as many as
    its liked rating has (`liked_items`) or it stands alone."""
    finalists = _finalists(judging.candidates, judging.ndcg_rows)
    final = [c for c in finalists if len(finalists) == 1 or c["items"] == liked_items[c["positive_rating"]]]
    for c in finalists:
        if c not in final:
            [model] = ease.fit(
                *judging.fit_part, c["positive_rating"], [(c["l2"], c["genre_weight"])], settle_items, genres
            )
            judging.best_ndcg(model, [c["popularity_exponent"]])
            final.append(judging.candidates[-1])
    return final


def _rows_of(scores: np.ndarray, users: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A Ranker's scores from a matrix computed for `users` (sorted), a row each."""
    return lambda block: scores[np.searchsorted(users, block)]


def _middle(values: Sequence[float]) -> float:
    ordered = sorted(set(values))
    return ordered[(len(ordered) - 1) // 2]


def _coordinates(
    l2s: Sequence[float], genre_weights: Sequence[float], start: tuple[float, float], scores: Mapping[tuple, float]
) -> Iterator[tuple[float, float]]:
    """The (λ, α) to fit for one liked rating: a Climb along λ at the start's α, then one along
    α at the best λ. The caller fits each and puts its score in `scores` before the next."""
    l2, weight = start
    along_l2 = Climb([l2s], start=(l2,))
    for (value,) in along_l2:
        yield value, weight
        along_l2.tell((value,), scores[value, weight])
    (l2,) = along_l2.best
    along_weight = Climb([genre_weights], start=(weight,))
    for (value,) in along_weight:
        if (l2, value) not in scores:
            yield l2, value
        along_weight.tell((value,), scores[l2, value])


def _finalists(candidates: list[dict], ndcg_rows: Mapping[tuple, np.ndarray]) -> list[dict]:
    """Each liked rating's best candidate that the search cannot tell from the best: its
    validation NDCG within FINALIST_SES standard errors of the best's, the standard error
    of the two's difference on the same users."""
    best = _best(candidates)
    bests = {c["positive_rating"]: c for c in sorted(candidates, key=_rank_key)}  # the last is each one's best
    return [
        c
        for c in bests.values()
        if best["ndcg"] - c["ndcg"] <= FINALIST_SES * metrics.standard_error(ndcg_rows[_id(best)] - ndcg_rows[_id(c)])
    ]


def _id(candidate: dict) -> tuple:
    return tuple(candidate[name] for name in (*EASE_PARAMS, "items"))


def _rank_key(candidate: dict) -> tuple:
    """The better candidate is the larger: validation NDCG, then the lower λ, the lower liked
    rating, the lower genre weight and the milder popularity discount."""
    return (
        candidate["ndcg"],
        -candidate["l2"],
        -candidate["positive_rating"],
        -candidate["genre_weight"],
        -abs(candidate["popularity_exponent"]),
    )


def _best(candidates: list[dict]) -> dict:
    return max(candidates, key=_rank_key)
