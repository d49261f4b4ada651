"""Top-k selection over score matrices, shared by the ranking metrics and the recommendations."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from movielens_als.arrays import distinct, index_of, threads
from movielens_als.columns import ITEM, RANK, RECOMMENDATION_COLUMNS, SCORE, TITLE, USER
from movielens_als.ease import Ease
from movielens_als.model import Model
from movielens_als.ratings import Ratings

# Score matrices are built this many cells at a time: about 32 MB of float64.
BLOCK_CELLS = 4_000_000
# top_k bounds each row's k-th best score from a sample of about SAMPLE_SCALE · sqrt(k · n) of
# its n columns, where sorting the sample and sorting the candidates it leaves cost about the
# same: the fastest of the samples tried on rows of 2,048 to 84,432 items (bench/kernels.py).
SAMPLE_SCALE = 3.3


def top_k(scores: np.ndarray, k: int, *, sample_step: int | None = None) -> np.ndarray:
    """Column indices of the k highest scores of each row, best first; ties go to the lower
    index. Entries of -inf are never chosen: a row with fewer than k others is padded with -1.
    `sample_step` overrides the sample's (every step-th column), for bench/kernels.py."""
    n_rows, n_cols = scores.shape
    k_eff = min(k, n_cols)
    # The k-th best score of a row's every step-th column is at most the row's own k-th best, so
    # the row's top k are among the scores at least that high, which are few: a partial sort of
    # the sample, not of the row (bench/kernels.py).
    step = sample_step or max(1, int(np.sqrt(n_cols / k_eff) / SAMPLE_SCALE))
    kth = -np.partition(-scores[:, ::step], k_eff - 1, axis=1)[:, k_eff - 1 : k_eff]
    # At least the lowest finite score, so that -inf is never a candidate.
    rows, cols = np.nonzero(scores >= np.maximum(kth, np.finfo(scores.dtype).min))  # few per row, cols ascending
    order = np.lexsort((cols, -scores[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    per_row = np.bincount(rows, minlength=n_rows)
    position = np.arange(len(rows)) - (np.cumsum(per_row) - per_row)[rows]
    keep = position < k
    top = np.full((n_rows, k), -1, dtype=np.int64)
    top[rows[keep], position[keep]] = cols[keep]
    return top


def top_unseen(
    scores_for: Callable[[np.ndarray], np.ndarray],
    user_rows: np.ndarray,
    seen_user_rows: np.ndarray,
    seen_item_rows: np.ndarray,
    k: int,
    n_items: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The top k item columns for each of `user_rows` (sorted), never an item the user has
    seen ((seen_user_rows, seen_item_rows) pairs), and their scores (-1 and NaN where a row
    has fewer than k candidates); `scores_for(block)` scores a block of users against every
    item. Users are scored a block at a time, in bounded memory, a block per core at once
    (numpy releases the GIL in the work on a block)."""
    in_rows = np.isin(seen_user_rows, user_rows)
    order = np.argsort(seen_user_rows[in_rows], kind="stable")
    seen_user_rows, seen_item_rows = seen_user_rows[in_rows][order], seen_item_rows[in_rows][order]
    block = max(1, BLOCK_CELLS // max(n_items, 1))

    def one_block(start: int) -> tuple[np.ndarray, np.ndarray]:
        block_rows = user_rows[start : start + block]
        scores = scores_for(block_rows)
        # The block's seen pairs are one slice of them, sorted by user as they are.
        mine = slice(
            np.searchsorted(seen_user_rows, block_rows[0], side="left"),
            np.searchsorted(seen_user_rows, block_rows[-1], side="right"),
        )
        scores[np.searchsorted(block_rows, seen_user_rows[mine]), seen_item_rows[mine]] = -np.inf
        top = top_k(scores, k)
        return top, np.where(top >= 0, np.take_along_axis(scores, np.maximum(top, 0), axis=1), np.nan)

    tops, values = [np.empty((0, k), dtype=np.int64)], [np.empty((0, k), dtype=np.float64)]
    with ThreadPoolExecutor(threads()) as pool:
        for top, value in pool.map(one_block, range(0, len(user_rows), block)):
            tops.append(top)
            values.append(value)
    return np.vstack(tops), np.vstack(values)


@dataclass(frozen=True)
class Ranker:
    """A recommender as the ranking metrics and the recommendations see it: the items it can
    recommend, and `scores(user_ids)`, a (len(user_ids), len(items)) matrix, higher better."""

    items: np.ndarray
    scores: Callable[[np.ndarray], np.ndarray]


def explicit_ranker(model: Model) -> Ranker:
    """The rating model's unclipped predicted ratings; its users only."""
    return Ranker(model.items.ids, lambda users: model.score_all_items(model.users.lookup(users)[0], clip=False))


def popularity_ranker(items: np.ndarray, count: np.ndarray, reach: int | None = None) -> Ranker:
    """The most-rated items first, ties to the lower id, the same list for everyone. With
    `reach`, it knows only the `reach` first of that list: the same top k for anyone who has
    seen at most reach - k of them, without scoring the whole catalogue for every user."""
    keep = np.sort(np.lexsort((items, -count))[:reach])
    popularity = count[keep].astype(np.float64)
    return Ranker(items[keep], lambda users: np.tile(popularity, (len(users), 1)))


def ease_ranker(model: Ease, train: Ratings) -> Ranker:
    """EASE's scores from what each user liked in `train` (the training ratings)."""
    user_ids = distinct(train.users)[0]
    liked = model.liked(train.users, train.items, train.ratings, user_ids)
    return Ranker(model.items, lambda block: model.scores(liked[np.searchsorted(user_ids, block)]))


def top_items(
    ranker: Ranker, users: np.ndarray, seen_users: np.ndarray, seen_items: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ids of the k best-scored items for each of `users` (sorted, distinct), never one
    the user has seen ((seen_users, seen_items) pairs), best first, and their scores; -1 and
    NaN pad a row with fewer than k candidates."""
    column, item_known = index_of(ranker.items, seen_items)
    row, user_known = index_of(users, seen_users)
    keep = item_known & user_known
    top, scores = top_unseen(
        lambda block: ranker.scores(users[block]), np.arange(len(users)), row[keep], column[keep], k, len(ranker.items)
    )
    return np.where(top >= 0, ranker.items[top], -1), scores


def recommend(ranker: Ranker, users: np.ndarray, seen_users: np.ndarray, seen_items: np.ndarray, n: int) -> pa.Table:
    """The n best-scored items each of `users` has not rated (`seen_users`, `seen_items` are
    the training ratings), as a table of user, rank (1 = best), item and score, ordered by
    user and rank."""
    users = np.unique(users)
    top, scores = top_items(ranker, users, seen_users, seen_items, n)
    rows, ranks = np.nonzero(top >= 0)
    return pa.table(
        {
            USER: pa.array(users[rows], pa.int32()),
            RANK: pa.array(ranks + 1, pa.int16()),
            ITEM: pa.array(top[rows, ranks], pa.int32()),
            SCORE: pa.array(scores[rows, ranks], pa.float32()),
        }
    )


def with_titles(top: pa.Table, movies: pa.Table) -> pa.Table:
    """`recommend`'s table with each item's title from `movies` (item, title, ...), in
    RECOMMENDATION_COLUMNS order; an item the movies file lacks has a null title."""
    titled = top.join(movies.select([ITEM, TITLE]), ITEM, join_type="left outer")
    titled = titled.sort_by([(USER, "ascending"), (RANK, "ascending")])
    return titled.select(list(RECOMMENDATION_COLUMNS))
