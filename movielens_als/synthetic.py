"""Synthetic MovieLens-format releases of any size, for benchmarks and large tests.

The ratings have the shape of the real thing: long-tailed user activity and item popularity
(log-normal weights), user and item biases, a low-rank taste structure and noise, rounded to
half stars, and per-user timestamps. A factor model beats the bias baseline on them, as on
MovieLens. Everything is vectorised and deterministic for a seed.

    movielens-als-generate --ratings 25000000 --users 162541 --items 59047 ml-25m.zip
"""

from __future__ import annotations

import argparse
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from movielens_als.columns import RATING, TIMESTAMP
from movielens_als.releases import RELEASES

BATCH_ROWS = 1 << 20


def synthetic_ratings(
    n_ratings: int, n_users: int, n_items: int, seed: int = 0, rank: int = 8, step: float = 0.5
) -> pa.Table:
    """`n_ratings` distinct (user, item) ratings from `step` to 5 stars in steps of `step`, as a
    table of userId, movieId, rating, timestamp, in user order (as MovieLens files are)."""
    if n_ratings > n_users * n_items // 2:
        raise ValueError(f"{n_ratings} ratings need more than {n_users} users x {n_items} items / 2")
    rng = np.random.default_rng(seed)
    user_weight = rng.lognormal(0.0, 1.2, n_users)
    item_weight = rng.lognormal(0.0, 1.6, n_items)
    user, item = _distinct_pairs(rng, n_ratings, user_weight / user_weight.sum(), item_weight / item_weight.sum())

    user_bias = rng.normal(0.0, 0.35, n_users).astype(np.float32)
    # Popular items are rated a little higher, as in MovieLens.
    item_bias = (rng.normal(0.0, 0.45, n_items) + 0.15 * np.log(item_weight / np.median(item_weight))).astype(
        np.float32
    )
    user_taste = rng.normal(0.0, 0.45, (n_users, rank)).astype(np.float32)
    item_taste = rng.normal(0.0, 0.45, (n_items, rank)).astype(np.float32)
    score = 3.4 + user_bias[user] + item_bias[item] + rng.normal(0.0, 0.75, n_ratings).astype(np.float32)
    for start in range(0, n_ratings, BATCH_ROWS):  # the taste term batch by batch: bounded memory
        end = start + BATCH_ROWS
        score[start:end] += np.einsum("ij,ij->i", user_taste[user[start:end]], item_taste[item[start:end]])
    rating = np.clip(np.round(score / step) * step, step, 5.0).astype(np.float32)

    first_day = rng.uniform(8.3e8, 1.65e9, n_users)  # between 1996 and 2022
    active_for = rng.lognormal(17.0, 1.5, n_users)  # seconds: days to years
    timestamp = first_day[user] + rng.random(n_ratings) * np.minimum(active_for[user], 1.7e9 - first_day[user])
    return pa.table(
        {
            "userId": pa.array(user + 1, pa.int32()),
            "movieId": pa.array(item + 1, pa.int32()),
            RATING: pa.array(rating),
            TIMESTAMP: pa.array(timestamp.astype(np.int64)),
        }
    )


def _distinct_pairs(rng: np.random.Generator, n: int, p_user: np.ndarray, p_item: np.ndarray):
    """n distinct (user, item) pairs drawn with the given weights, sorted by user then item."""
    n_items = len(p_item)
    keys = np.empty(0, np.int64)
    while len(keys) < n:
        draw = int((n - len(keys)) * 1.3) + 1000
        new = rng.choice(len(p_user), draw, p=p_user).astype(np.int64) * n_items + rng.choice(n_items, draw, p=p_item)
        keys = np.sort(np.concatenate([keys, new]))  # sorting beats np.unique's hashing at this size
        keys = keys[np.r_[True, keys[1:] != keys[:-1]]]
    keys = np.sort(rng.choice(keys, n, replace=False))
    return (keys // n_items).astype(np.int64), (keys % n_items).astype(np.int64)


def write_release(ratings: pa.Table, path: Path, name: str = "ml-25m", compresslevel: int = 1) -> str:
    """Writes a release zip in the layout of catalogue release `name` (`ratings.csv` with a
    header, or `ratings.dat` with `::`), batch by batch; returns its MD5."""
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
        archive.writestr(rel.movies_member, movies_text(name, int(pc.max(ratings.column("movieId")).as_py())))
        archive.writestr(f"{rel.ratings_member.split('/')[0]}/README.txt", "Synthetic ratings, not MovieLens data.\n")
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    ratings = synthetic_ratings(args.ratings, args.users, args.items, args.seed, step=step)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    md5 = write_release(ratings, args.output, args.layout)
    Path(f"{args.output}.md5").write_text(f"MD5 ({args.output.name}) = {md5}\n")
    print(f"{args.output}: {ratings.num_rows} ratings, MD5 {md5}")
