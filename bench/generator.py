"""A generated release of ml-latest-small's shape (movielens-als-generate's
movielens_als.synthetic.synthetic_release, in process) side by side with ml-latest-small
itself: the rating histogram, the activity and popularity curves, the genre counts, the title
years and their tie to popularity, and the quality figures on the pipeline's default split.

    .venv/bin/python -m bench.generator [--seed 0] [--zip ../shared/data/ml-latest-small.zip]
        [--ratings 100836 --users 610 --items 9742] [--sweeps 60]

The generated release has ml-latest-small's ratings, users and movies (its movies.csv's 9,742,
of which 9,724 are rated) unless told otherwise. Both are split as SplitData splits by default
(user_random, test fraction 0.2, seed 42) and judged as EvaluatedRanking judges: EASE as
TunedEASE searches it (the pipeline's default search, on the genres and decades of the
titles) and TrainedEASE refits it on all the training ratings, the same winner without its
genres, and the most popular unseen movies, by NDCG@10 (a test rating ≥ 4 is relevant); and on
the rating side, the bias baseline's test RMSE against the Bayesian factor model's
(movielens_als.bpmf, `--sweeps` Gibbs sweeps, no Spark). Prints the machine and Markdown tables.
"""

from __future__ import annotations

import dataclasses
import time
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from bench.harness import SMALL_ZIP, argument_parser, machine
from movielens_als import bpmf, ease, metrics, selection
from movielens_als.columns import GENRES, ITEM, RATING, TIMESTAMP, TITLE, USER
from movielens_als.ranking import Ranker, ease_ranker, popularity_ranker
from movielens_als.ratings import rating_arrays
from movielens_als.releases import RELEASES, read_movies, read_ratings
from movielens_als.split import split_ratings
from movielens_als.synthetic import GENRE_SHARES, synthetic_release

QUANTILES = (("min", 0.0), ("p25", 0.25), ("median", 0.5), ("p75", 0.75), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
# TunedEASE's defaults (pipeline/groups.py's EaseParams)
SEARCH = selection.EaseSearch(
    l2s=(100, 200, 400, 800, 1600),
    positive_ratings=(0.5, 3.5, 4.0),
    genre_weights=(0, 1, 3, 10, 30),
    popularity_exponents=(0, -0.1, -0.2, -0.3),
    max_items=16384,
    tune_items=2048,
    relevant_rating=4.0,
)
SPLIT = ("user_random", 0.2, 42)


def main() -> None:
    parser = argument_parser("bench.generator", __doc__)
    parser.add_argument("--zip", type=Path, default=SMALL_ZIP)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ratings", type=int, default=100_836)
    parser.add_argument("--users", type=int, default=610)
    parser.add_argument("--items", type=int, default=9_742)
    parser.add_argument("--sweeps", type=int, default=bpmf.SWEEPS)
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    rel = RELEASES["ml-latest-small"]
    with zipfile.ZipFile(args.zip) as archive:
        real_ratings, _ = read_ratings(archive, rel)
        real_movies = read_movies(archive, rel)
    started = time.perf_counter()
    generated = synthetic_release(args.ratings, args.users, args.items, args.seed, step=rel.rating_step)
    seconds = time.perf_counter() - started
    gen_ratings = generated.ratings.rename_columns([USER, ITEM, RATING, TIMESTAMP])
    print(
        f"generated: {args.ratings:,} ratings, {args.users:,} users, {args.items:,} movies, seed {args.seed} "
        f"({seconds:.1f} s); real: {args.zip}\n"
    )
    sides = {"generated": (gen_ratings, generated.movies), "ml-latest-small": (real_ratings, real_movies)}
    stats = {name: describe(*tables) for name, tables in sides.items()}
    show(stats)
    split = "{} {:g}, seed {}".format(*SPLIT)
    print(
        f"\n**Quality on the default split** ({split}; NDCG@10, a test rating ≥ 4 relevant; RMSE, all test ratings)\n"
    )
    print(
        "| release | EASE, tuned (winner: liked ≥, λ, genre weight, β) | EASE, same without genres "
        "| most popular | EASE / popular | bias RMSE | factor (BPMF) RMSE | factor / bias |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, (ratings, movies) in sides.items():
        q = quality(ratings, movies, args.sweeps)
        print(
            f"| {name} | {q['ease']:.4f} ({', '.join(f'{v:g}' for v in q['winner'])}) | {q['ease_no_genres']:.4f} "
            f"| {q['popular']:.4f} | {q['ease'] / q['popular']:.2f}× | {q['bias_rmse']:.4f} | {q['factor_rmse']:.4f} "
            f"| {q['factor_rmse'] / q['bias_rmse']:.3f} |",
            flush=True,
        )


def describe(ratings: pa.Table, movies: pa.Table) -> dict:
    """The release's figures that the tables show (see `show`)."""
    users = ratings.column(USER).to_numpy()
    items = ratings.column(ITEM).to_numpy()
    stars = ratings.column(RATING).to_numpy()
    per_user = np.unique(users, return_counts=True)[1]
    movie_ids = movies.column(ITEM).to_numpy()
    # Ratings per movie of movies.csv (0 for those nobody rated), plus any rated movie not in it.
    rated, count = np.unique(items, return_counts=True)
    per_item = np.zeros(len(movie_ids), np.int64)
    if np.any(np.diff(movie_ids) <= 0):
        raise ValueError("movies are not sorted by id")
    at = np.searchsorted(movie_ids, rated)
    known = (at < len(movie_ids)) & (movie_ids[np.minimum(at, len(movie_ids) - 1)] == rated)
    per_item[at[known]] = count[known]
    desc = np.sort(per_item)[::-1]
    genres = movies.column(GENRES).to_pylist()
    years = np.array([_year(t) for t in movies.column(TITLE).to_pylist()], np.float64)
    dated = ~np.isnan(years)
    return {
        "ratings": len(stars),
        "users": len(per_user),
        "movies": len(movie_ids),
        "stars": {s: float(np.mean(stars == s)) for s in np.arange(1, 11) / 2},
        "mean": float(stars.mean()),
        "per_user": _quantiles(per_user),
        "per_item": _quantiles(per_item[per_item > 0]),
        "top1": desc[: max(1, len(desc) // 100)].sum() / desc.sum(),
        "top10": desc[: max(1, len(desc) // 10)].sum() / desc.sum(),
        "unrated": int((per_item == 0).sum()),
        "genres": {g: sum(g in listed for listed in genres) for g in GENRE_SHARES},
        "no_genre": sum(not listed for listed in genres),
        "genres_per_movie": float(np.mean([len(listed) for listed in genres])),
        "years": _quantiles(years[dated]),
        "undated": int((~dated).sum()),
        "year_pearson": float(np.corrcoef(years[dated], per_item[dated])[0, 1]),
        "year_log_pearson": float(np.corrcoef(years[dated], np.log1p(per_item[dated]))[0, 1]),
        "year_spearman": float(np.corrcoef(_ranks(years[dated]), _ranks(per_item[dated]))[0, 1]),
    }


def _year(title: str | None) -> float:
    found = ease.TITLE_YEAR.search(title or "")
    return float(found.group(1)) if found else np.nan


def _quantiles(values: np.ndarray) -> dict[str, float]:
    return {name: float(np.quantile(values, q)) for name, q in QUANTILES}


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share theirs), for Spearman's correlation."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(len(values))
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, ranks)
    return sums[inverse] / counts[inverse]


def show(stats: dict[str, dict]) -> None:
    names = list(stats)
    head = "| | " + " | ".join(names) + " |\n|---|" + "---|" * len(names)

    def rows(label: str, cell) -> None:
        print(f"| {label} | " + " | ".join(cell(stats[n]) for n in names) + " |")

    print(f"**Size**\n\n{head}")
    for key in ("ratings", "users", "movies"):
        rows(key, lambda s, key=key: f"{s[key]:,}")
    print(f"\n**Rating histogram** (share of the ratings at each star value)\n\n{head}")
    for star in np.arange(1, 11) / 2:
        rows(f"{star:g}", lambda s, star=star: f"{100 * s['stars'][star]:.1f}%")
    rows("mean", lambda s: f"{s['mean']:.2f}")
    print(f"\n**Activity** (ratings per user)\n\n{head}")
    for name, _ in QUANTILES:
        rows(name, lambda s, name=name: f"{s['per_user'][name]:,.0f}")
    print(f"\n**Popularity** (ratings per rated movie; the top movies' share of all ratings)\n\n{head}")
    for name, _ in QUANTILES:
        rows(name, lambda s, name=name: f"{s['per_item'][name]:,.0f}")
    rows("top 1% of movies", lambda s: f"{100 * s['top1']:.1f}%")
    rows("top 10% of movies", lambda s: f"{100 * s['top10']:.1f}%")
    rows("movies nobody rated", lambda s: f"{s['unrated']:,} ({100 * s['unrated'] / s['movies']:.1f}%)")
    print(f"\n**Genres** (movies with each)\n\n{head}")
    for genre in GENRE_SHARES:
        rows(genre, lambda s, genre=genre: f"{s['genres'][genre]:,}")
    rows("(no genres listed)", lambda s: f"{s['no_genre']:,}")
    rows("genres per movie, mean", lambda s: f"{s['genres_per_movie']:.2f}")
    print(f"\n**Title years** (quantiles over the movies with a year in the title)\n\n{head}")
    for name, _ in QUANTILES:
        rows(name, lambda s, name=name: f"{s['years'][name]:.0f}")
    rows("no year in the title", lambda s: f"{s['undated']:,}")
    rows("r(year, ratings)", lambda s: f"{s['year_pearson']:+.3f}")
    rows("r(year, log(1 + ratings))", lambda s: f"{s['year_log_pearson']:+.3f}")
    rows("Spearman(year, ratings)", lambda s: f"{s['year_spearman']:+.3f}")


def quality(ratings: pa.Table, movies: pa.Table, sweeps: int) -> dict:
    """EASE (tuned as TunedEASE, refitted as TrainedEASE) against the most popular movies, by
    NDCG@10 on the test users EvaluatedRanking judges; the bias baseline's and the factor
    model's test RMSE."""
    strategy, fraction, seed = SPLIT
    train_table, test_table = split_ratings(ratings, strategy, fraction, seed)
    train, test = rating_arrays(train_table), rating_arrays(test_table)
    genres = ease.Genres.of(movies)
    fit_part, validation = (rating_arrays(t) for t in selection.validation_split(train_table, strategy, seed))
    best = selection.tune_ease(fit_part, validation, SEARCH, seed=seed, genres=genres)["best"]
    winner = tuple(best[name] for name in selection.EASE_PARAMS)
    judge = metrics.Judge(train, test, seed=seed, relevant_rating=SEARCH.relevant_rating)

    def ease_ndcg(genre_weight: float) -> float:
        [model] = ease.fit(*train, winner[0], [(winner[1], genre_weight)], SEARCH.max_items, genres)
        return _ndcg(judge, ease_ranker(dataclasses.replace(model, popularity_exponent=winner[3]), judge.seen))

    items, count = np.unique(train.items, return_counts=True)
    scale = RELEASES["ml-latest-small"].rating_scale
    bias, _ = metrics.baselines(train, test, scale)
    factor = bpmf.fit(train, sweeps=sweeps, seed=seed, rating_scale=scale).model
    return {
        "winner": winner,
        "ease": ease_ndcg(winner[2]),
        "ease_no_genres": ease_ndcg(0.0),
        "popular": _ndcg(judge, popularity_ranker(items, count, judge.reach)),
        "bias_rmse": metrics.rmse(bias, test.ratings),
        "factor_rmse": metrics.rmse(factor.predict(test.users, test.items), test.ratings),
    }


def _ndcg(judge: metrics.Judge, ranker: Ranker) -> float:
    result = judge(ranker)
    if result is None:
        raise ValueError("no test user to rank for")
    return result["ndcg"]


if __name__ == "__main__":
    main()
