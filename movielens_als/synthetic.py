"""Synthetic MovieLens-format releases of any size, for benchmarks and large tests.

One latent taste structure makes the whole release. Movies and users are vectors in a taste
space of a few dozen taste clusters; a user rates mostly movies of the clusters they care about
(the chance of rating a movie rises with the taste match, as on MovieLens, where people rate
what they chose to watch), so who-rates-what is clustered and an item-item model (EASE) beats
the most popular movies by about as much as on ml-latest-small. The stars come from the same
vectors: the global mean, user and item biases, the taste match and a noise skewed low, the
top pressed down (ml-latest-small's histogram), rounded to half stars by the users who use them
and to whole stars by the others. Each movie's genres are the genre directions its taste vector
points to most (1 to 4 of MovieLens's 19, at ml-latest-small's frequencies) and its title
carries a year, "Movie 12 (1995)", drawn from a taste axis alone: in ml-latest-small a movie's
year and how often it is rated do not go together (r = -0.004). Activity (at least 20 ratings a
user when there are enough ratings, as MovieLens keeps) and popularity are long-tailed, and
every movie has a rating when there are as many ratings as movies (a MovieLens movies file
lists the movies someone rated). A factor model beats the bias baseline on the ratings.
Everything is vectorised, bounded in memory and deterministic for a seed; bench/generator.py
compares a generated release with ml-latest-small.

Releases generated before the taste structure (every movie "Drama|Comedy" with no year,
ratings independent of who chose them), and those generated before its calibration against
ml-latest-small (December 6, 2026: every movie rated, years apart from popularity, the rating
histogram and the popularity curve), differ: the same seed now writes a different file.

    movielens-als-generate --ratings 25000000 --users 162541 --items 59047 ml-25m.zip
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from movielens_als.columns import GENRES, ITEM, RATING, TIMESTAMP, TITLE
from movielens_als.releases import ML_100K_GENRES, RELEASES

BATCH_ROWS = 1 << 20
# ml-latest-small's 19 genres and the share of its 9,742 movies that have each.
GENRE_SHARES = {
    "Drama": 0.4476, "Comedy": 0.3855, "Thriller": 0.1944, "Action": 0.1876, "Romance": 0.1638,
    "Adventure": 0.1296, "Crime": 0.1231, "Sci-Fi": 0.1006, "Horror": 0.1004, "Fantasy": 0.0800,
    "Children": 0.0682, "Animation": 0.0627, "Mystery": 0.0588, "Documentary": 0.0452, "War": 0.0392,
    "Musical": 0.0343, "Western": 0.0171, "IMAX": 0.0162, "Film-Noir": 0.0089,
}  # fmt: skip
MAX_GENRES = 4
# ml-latest-small's title years at these quantiles: a movie's year is its rank on the year score
# read off this curve.
YEAR_QUANTILES = (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)
YEARS = (1902.0, 1936.0, 1967.0, 1988.0, 1999.0, 2008.0, 2013.0, 2018.0)
# MovieLens keeps the users with at least this many ratings.
MIN_USER_RATINGS = 20
TASTE_RANK = 16
CLUSTERS = 16
CLUSTERS_PER_USER = 3
SHARPNESS = 20.0
WEIGHTED_ROUNDS = 8
# The stars: the biases, the taste match and a noise of NORMAL_SD less an exponential of mean
# SKEW (its spread that of a normal of 0.71; the shift takes its mean away), shifted to average
# SCORE_MEAN, the part above 4 pressed down by TOP_PRESS, then rounded; calibrated on
# ml-latest-small's histogram (bench/generator.py).
SCORE_MEAN, NORMAL_SD, SKEW, TOP_PRESS = 3.62, 0.5, 0.5, 0.5
# The spread of the items' log popularity: ml-latest-small's top 1% and 10% of movies get 16% and
# 60% of its ratings (this gives 16% and 56%).
POPULARITY_SIGMA = 2.2


@dataclasses.dataclass(frozen=True)
class SyntheticRelease:
    """The ratings (userId, movieId, rating, timestamp, in user order, as MovieLens files are) and
    the movies (item, title, genres: releases.read_movies's columns) of one generated release."""

    ratings: pa.Table
    movies: pa.Table


@dataclasses.dataclass(frozen=True)
class _Items:
    taste: np.ndarray  # (n_items, TASTE_RANK)
    popularity: np.ndarray  # how often rated, relative
    bias: np.ndarray
    own: np.ndarray  # the cluster each item is near
    cluster_cdf: np.ndarray  # row k: k + the cumulative share of cluster k's draws, one column per item


def synthetic_release(n_ratings: int, n_users: int, n_items: int, seed: int = 0, step: float = 0.5) -> SyntheticRelease:
    """`n_ratings` distinct (user, item) ratings from `step` to 5 stars in steps of `step`, and
    the `n_items` movies with their genres and years, from one taste structure (module docstring)."""
    if n_ratings > n_users * n_items // 2:
        raise ValueError(f"{n_ratings} ratings need more than {n_users} users x {n_items} items / 2")
    item_rng, user_rng, pair_rng, rating_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4))
    centres = item_rng.normal(0.0, 1.0, (CLUSTERS, TASTE_RANK))
    items = _items(item_rng, centres, n_items)
    movies = _movies(item_rng, items)

    counts = _activity(user_rng, n_ratings, n_users, n_items)
    clusters = user_rng.choice(CLUSTERS, (n_users, CLUSTERS_PER_USER))
    share = user_rng.dirichlet(np.ones(CLUSTERS_PER_USER), n_users)
    # The share of a user's ratings that follow overall popularity rather than their clusters.
    mainstream = user_rng.beta(2.0, 5.0, n_users)
    cluster_cdf = np.cumsum(np.c_[mainstream[:, None], (1 - mainstream)[:, None] * share], axis=1)
    user_taste = (share[:, :, None] * centres[clusters]).sum(axis=1) + user_rng.normal(0.0, 0.5, (n_users, TASTE_RANK))
    user, item = _distinct_pairs(pair_rng, counts, np.c_[np.full(n_users, CLUSTERS), clusters], cluster_cdf, items)
    user, item = _cover_every_item(pair_rng, user, item, clusters, items.own, counts)

    user_bias = rating_rng.normal(0.0, 0.4, n_users).astype(np.float32)
    # The noise is skewed to the low side (a normal less an exponential), as MovieLens's ratings
    # are: more half stars and 1s, fewer 5s than a symmetric noise of the same spread gives.
    # Drawn in float32: two float64 draws at 25 M ratings would hold 400 MB.
    score = user_bias[user] + items.bias[item]
    score += np.float32(NORMAL_SD) * rating_rng.standard_normal(len(user), np.float32)
    score -= np.float32(SKEW) * rating_rng.standard_exponential(len(user), np.float32)
    user_taste = (0.12 * user_taste).astype(np.float32)
    item_taste = items.taste.astype(np.float32)
    for start in range(0, len(user), BATCH_ROWS):  # the taste term batch by batch: bounded memory
        end = start + BATCH_ROWS
        score[start:end] += np.einsum("ij,ij->i", user_taste[user[start:end]], item_taste[item[start:end]])
    # The scores average SCORE_MEAN whatever the shape (which items users pick, and so the taste
    # match and item biases of their ratings, move it by up to 0.3 stars between shapes).
    score += np.float32(SCORE_MEAN - score.mean(dtype=np.float64))
    # Few 5s: the scores above 4 are pressed together (4.5 becomes 4.4, 5 becomes 4.67).
    over = np.maximum(score - 4.0, 0.0)
    score -= over - over / (1.0 + TOP_PRESS * over)
    # Users who never give half stars round to whole ones, as most of ml-latest-small's do.
    whole_stars = rating_rng.random(n_users) < 0.45
    user_step = np.where(whole_stars[user], max(step, 1.0), step).astype(np.float32)
    rating = np.clip(np.round(score / user_step) * user_step, user_step, 5.0).astype(np.float32)

    first_day = rating_rng.uniform(8.3e8, 1.65e9, n_users)  # between 1996 and 2022
    active_for = rating_rng.lognormal(17.0, 1.5, n_users)  # seconds: days to years
    span = np.minimum(active_for, 1.7e9 - first_day)
    timestamp = first_day[user] + rating_rng.random(len(user)) * span[user]
    ratings = pa.table(
        {
            "userId": pa.array(user + 1, pa.int32()),
            "movieId": pa.array(item + 1, pa.int32()),
            RATING: pa.array(rating),
            TIMESTAMP: pa.array(timestamp.astype(np.int64)),
        }
    )
    return SyntheticRelease(ratings, movies)


def synthetic_ratings(n_ratings: int, n_users: int, n_items: int, seed: int = 0, step: float = 0.5) -> pa.Table:
    """The ratings of synthetic_release(n_ratings, n_users, n_items, seed, step)."""
    return synthetic_release(n_ratings, n_users, n_items, seed, step).ratings


def _items(rng: np.random.Generator, centres: np.ndarray, n_items: int) -> _Items:
    """Each item near the centre of one taste cluster, with a long-tailed popularity; and how
    likely each cluster's draws are to pick it: its popularity times its closeness to the
    cluster (the last row: popularity alone, the draws that follow the crowd)."""
    own = rng.choice(CLUSTERS, n_items)
    taste = centres[own] + rng.normal(0.0, 0.6, (n_items, TASTE_RANK))
    popularity = rng.lognormal(0.0, POPULARITY_SIGMA, n_items)
    # Popular items are rated a little higher, as in MovieLens.
    bias = (rng.normal(0.0, 0.4, n_items) + 0.2 * np.log(popularity / np.median(popularity))).astype(np.float32)
    # An item's membership of each cluster: a softmax of its closeness to the cluster's centre,
    # so every item is drawn about as often as its popularity says, mostly by its own cluster.
    closeness = taste @ centres.T / TASTE_RANK
    membership = np.exp(SHARPNESS * (closeness - closeness.max(axis=1, keepdims=True)))
    weight = np.empty((CLUSTERS + 1, n_items))
    weight[:CLUSTERS] = (popularity[:, None] * membership / membership.sum(axis=1, keepdims=True)).T
    weight[CLUSTERS] = popularity
    cdf = np.cumsum(weight, axis=1)
    cdf /= cdf[:, -1:]
    cdf += np.arange(CLUSTERS + 1)[:, None]
    return _Items(taste, popularity, bias, own, cdf)


def _movies(rng: np.random.Generator, items: _Items) -> pa.Table:
    """Titles "Movie <id> (<year>)" and genres from the items' taste vectors: a genre is a
    direction in taste space, a movie has those its vector points to most (at least one, at most
    MAX_GENRES, each genre about as common as in ml-latest-small); the year follows another
    direction, not popularity (ml-latest-small's do not go together)."""
    n_items = len(items.popularity)
    names = list(GENRE_SHARES)
    directions = rng.normal(0.0, 1.0, (TASTE_RANK, len(names) + 1))
    match = items.taste @ directions[:, :-1] / np.sqrt(TASTE_RANK) + rng.normal(0.0, 0.5, (n_items, len(names)))
    # Each genre's threshold: the match its share of the movies exceeds.
    at = ((1 - np.array(list(GENRE_SHARES.values()))) * (n_items - 1)).astype(np.int64)
    above = match - np.sort(match, axis=0)[at, np.arange(len(names))]
    order = np.argsort(-above, axis=1, kind="stable")
    place = np.argsort(order, axis=1, kind="stable")  # 0 for each movie's best-matching genre
    has = ((above > 0) & (place < MAX_GENRES)) | (place == 0)
    row, column = np.nonzero(has)
    genres = pa.ListArray.from_arrays(
        pa.array(np.searchsorted(row, np.arange(n_items + 1)), pa.int32()), pa.array(np.array(names)[column])
    )
    year_score = items.taste @ directions[:, -1] / np.sqrt(TASTE_RANK) + rng.normal(0.0, 0.5, n_items)
    rank = np.argsort(np.argsort(year_score, kind="stable"), kind="stable") / max(n_items - 1, 1)
    years = np.round(np.interp(rank, YEAR_QUANTILES, YEARS)).astype(int)
    titles = [f"Movie {i} ({year})" for i, year in enumerate(years.tolist(), 1)]
    return pa.table({ITEM: pa.array(np.arange(1, n_items + 1), pa.int32()), TITLE: titles, GENRES: genres})


def _activity(rng: np.random.Generator, n_ratings: int, n_users: int, n_items: int) -> np.ndarray:
    """How many ratings each user gives: at least MIN_USER_RATINGS (fewer when there are too few
    ratings for that), the rest long-tailed, none above a third of the items."""
    floor = min(MIN_USER_RATINGS, n_ratings // (2 * n_users))
    cap = max(n_items // 3, floor + 1, -(-n_ratings // n_users))
    counts = floor + rng.multinomial(n_ratings - floor * n_users, _shares(rng.lognormal(0.0, 1.6, n_users)))
    while (over := np.maximum(counts - cap, 0)).any():
        counts -= over
        room = (cap - counts).astype(np.float64)
        counts += rng.multinomial(int(over.sum()), room / room.sum())
    return counts


def _shares(weight: np.ndarray) -> np.ndarray:
    return weight / weight.sum()


def _distinct_pairs(
    rng: np.random.Generator, counts: np.ndarray, clusters: np.ndarray, cluster_cdf: np.ndarray, items: _Items
) -> tuple[np.ndarray, np.ndarray]:
    """counts[u] distinct items for each user u, sorted by user then item: each draw picks one
    of the user's clusters (clusters[u], by cluster_cdf[u]), then an item by that cluster's
    weights. Users short of distinct items draw again, more each round, and after
    WEIGHTED_ROUNDS uniformly over the items: a user who needs much of a small catalogue gets it."""
    n_items = items.cluster_cdf.shape[1]
    keys = np.empty(0, np.int64)
    need = counts.copy()
    round_ = 0
    while need.any():
        round_ += 1
        users = np.repeat(np.arange(len(counts)), np.ceil(need * (1.0 + 0.3 * round_)).astype(np.int64) + (need > 0))
        new = np.empty(len(users), np.int64)
        for start in range(0, len(users), BATCH_ROWS):
            part = users[start : start + BATCH_ROWS]
            pick = (cluster_cdf[part] < rng.random(len(part))[:, None]).sum(axis=1)
            cluster = clusters[part, np.minimum(pick, clusters.shape[1] - 1)]
            # One search over every cluster's cumulative weights laid end to end.
            flat = np.searchsorted(items.cluster_cdf.ravel(), cluster + rng.random(len(part)))
            item = np.minimum(flat - cluster * n_items, n_items - 1)
            if round_ > WEIGHTED_ROUNDS:
                item = rng.integers(0, n_items, len(part))
            new[start : start + BATCH_ROWS] = part * n_items + item
        keys = np.sort(np.concatenate([keys, new]))  # sorting beats np.unique's hashing at this size
        keys = keys[np.r_[True, keys[1:] != keys[:-1]]]
        need = np.maximum(counts - np.bincount(keys // n_items, minlength=len(counts)), 0)
    # Each user keeps counts[u] of their distinct items, chosen at random.
    user = keys // n_items
    order = np.lexsort((rng.random(len(keys)), user))
    first = np.searchsorted(user, np.arange(len(counts)))
    keep = np.sort(order[np.arange(len(keys)) - first[user] < counts[user]])
    keys = keys[keep]
    return keys // n_items, keys % n_items


def _cover_every_item(
    rng: np.random.Generator,
    user: np.ndarray,
    item: np.ndarray,
    clusters: np.ndarray,
    own: np.ndarray,
    counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (sorted by user then item) with every item rated at least once, when there are
    as many ratings as items, as a MovieLens movies file lists only movies someone rated: each
    unrated item takes one rating of a user of its own cluster (that user's rating of an item
    rated more than once, so each user keeps counts[u] ratings). Rounds repeat until no item is
    left unrated (an item that lost its only rating, a user drawn twice, go again)."""
    n_items = len(own)
    if len(user) < n_items:
        return user, item
    keys = user * n_items + item
    first = np.r_[0, np.cumsum(counts)[:-1]]
    by_cluster = np.argsort(clusters.ravel(), kind="stable")
    cluster_start = np.searchsorted(clusters.ravel()[by_cluster], np.arange(CLUSTERS + 1))
    for _ in range(100):
        rated = np.bincount(keys % n_items, minlength=n_items)
        unrated = np.flatnonzero(rated == 0)
        if not len(unrated):
            break
        size = (cluster_start[own[unrated] + 1] - cluster_start[own[unrated]]).astype(np.float64)
        slot = cluster_start[own[unrated]] + np.floor(rng.random(len(unrated)) * size).astype(np.int64)
        who = np.where(size > 0, by_cluster[np.minimum(slot, len(by_cluster) - 1)] // clusters.shape[1], 0)
        who = np.where(size > 0, who, rng.integers(0, len(counts), len(unrated)))
        row = first[who] + np.floor(rng.random(len(unrated)) * counts[who]).astype(np.int64)
        # Only rows whose item keeps a rating, each row once.
        ok = (counts[who] > 0) & (rated[keys[np.minimum(row, len(keys) - 1)] % n_items] > 1)
        row, unrated, who = row[ok], unrated[ok], who[ok]
        row, once = np.unique(row, return_index=True)
        keys[row] = who[once] * n_items + unrated[once]
        keys.sort()  # rows stay each user's: the user part of a replaced key is unchanged
    return keys // n_items, keys % n_items


def write_release(
    ratings: pa.Table, path: Path, name: str = "ml-25m", compresslevel: int = 1, movies: pa.Table | None = None
) -> str:
    """Writes a release zip in the layout of catalogue release `name` (`ratings.csv` with a
    header, or `ratings.dat` with `::`), batch by batch; returns its MD5. The movies file holds
    `movies` (a SyntheticRelease's), or else placeholder movies (movies_text) up to the
    highest movieId rated."""
    rel = RELEASES[name]
    step = rel.rating_step
    # Ratings are written as MovieLens writes them ("4.0", or "4" for whole stars), not as floats print.
    labels = pa.array([f"{k * step:.1f}" if step < 1 else f"{k * step:g}" for k in range(1, int(5 / step) + 1)])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=compresslevel) as archive:
        with archive.open(rel.ratings_member, "w", force_zip64=True) as member:
            if rel.header:
                member.write((rel.delimiter.join(rel.header) + "\n").encode())
            for batch in ratings.to_batches(BATCH_ROWS):
                label = labels.take(pc.subtract(pc.cast(pc.divide(batch.column(2), step), pa.int32()), 1))
                fields = [
                    pc.cast(batch.column(0), pa.string()),
                    pc.cast(batch.column(1), pa.string()),
                    label,
                    pc.cast(batch.column(3), pa.string()),
                ]
                lines = pc.binary_join_element_wise(*fields, rel.delimiter).to_pylist()
                member.write(("\n".join(lines) + "\n").encode())
        if movies is None:
            movies_bytes = movies_text(name, int(pc.max(ratings.column("movieId")).as_py()))
        else:
            movies_bytes = movies_file(movies, name)
        # Dated as the ratings member is (1980-01-01), not by the clock: the same seed, the same MD5.
        for entry, data in (
            (rel.movies_member, movies_bytes),
            (f"{rel.ratings_member.split('/')[0]}/README.txt", b"Synthetic ratings, not MovieLens data.\n"),
        ):
            archive.writestr(zipfile.ZipInfo(entry), data, zipfile.ZIP_DEFLATED, compresslevel)
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


def movies_text(release: str = "ml-latest-small", n_items: int = 80) -> bytes:
    """A movies file in the release's layout, its titles with the commas, colons and accents
    real titles have (quoted in movies.csv; Latin-1 in the older layouts, as theirs are)."""
    rel = RELEASES[release]
    titles = [f"Movie {i}, The: Part {i} (Café {1990 + i % 30})" for i in range(1, n_items + 1)]
    if rel.header:
        lines = ["movieId,title,genres", *(f'{i},"{t}",Drama|Comedy' for i, t in enumerate(titles, 1))]
        return ("\n".join(lines) + "\n").encode("utf-8")
    sep = "|" if rel.delimiter == "\t" else rel.delimiter
    rest = "01-Jan-1995||http://x|0|1" if sep == "|" else "Drama|Comedy"
    return ("\n".join(f"{i}{sep}{t}{sep}{rest}" for i, t in enumerate(titles, 1)) + "\n").encode("latin-1")


def movies_file(movies: pa.Table, release: str) -> bytes:
    """`movies` (item, title, genres) as the release's movies file: movies.csv (UTF-8, titles
    quoted), movies.dat (id::title::genres, Latin-1) or u.item (one 0/1 flag per ML_100K_GENRES;
    its "Children's" is our "Children", and it has no IMAX)."""
    rel = RELEASES[release]
    items, titles = movies.column(ITEM).to_pylist(), movies.column(TITLE).to_pylist()
    genres = movies.column(GENRES).to_pylist()
    if rel.header:
        lines = ["movieId,title,genres"]
        lines += [
            f'{i},"{t}",{"|".join(g) or "(no genres listed)"}' for i, t, g in zip(items, titles, genres, strict=True)
        ]
        return ("\n".join(lines) + "\n").encode("utf-8")
    if rel.delimiter == "\t":
        renamed = [{"Children's" if name == "Children" else name for name in g} for g in genres]
        lines = [
            f"{i}|{t}|01-Jan-1995||http://x|" + "|".join("1" if name in g else "0" for name in ML_100K_GENRES)
            for i, t, g in zip(items, titles, renamed, strict=True)
        ]
    else:
        lines = [f"{i}::{t}::{'|'.join(g)}" for i, t, g in zip(items, titles, genres, strict=True)]
    return ("\n".join(lines) + "\n").encode("latin-1")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__,
        epilog="Files changed: a seed gives another file than before the taste structure (December 5, 2026) "
        "and than before its calibration against ml-latest-small (December 6, 2026).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("output", type=Path, help="the zip to write; <output>.md5 is written beside it")
    parser.add_argument("--ratings", type=int, required=True)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--items", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--layout", default="ml-25m", choices=sorted(RELEASES), help="the release whose file layout to copy"
    )
    args = parser.parse_args(argv)
    step = RELEASES[args.layout].rating_step
    generated = synthetic_release(args.ratings, args.users, args.items, args.seed, step=step)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    md5 = write_release(generated.ratings, args.output, args.layout, movies=generated.movies)
    Path(f"{args.output}.md5").write_text(f"MD5 ({args.output.name}) = {md5}\n")
    print(f"{args.output}: {generated.ratings.num_rows} ratings, MD5 {md5}")
