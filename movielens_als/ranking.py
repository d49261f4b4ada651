"""Top-k selection over score matrices, shared by the ranking metrics and the recommendations."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from movielens_als.columns import ITEM, PREDICTED_RATING, RANK, RECOMMENDATION_COLUMNS, USER
from movielens_als.model import Model

# Score matrices are built this many cells at a time: about 32 MB of float64.
BLOCK_CELLS = 4_000_000


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of the k highest scores of each row, best first; ties go to the lower
    index. Entries of -inf are never chosen: a row with fewer than k others is padded with -1."""
    n_rows, n_cols = scores.shape
    k_eff = min(k, n_cols)
    kth = -np.partition(-scores, k_eff - 1, axis=1)[:, k_eff - 1 : k_eff]
    rows, cols = np.nonzero((scores >= kth) & np.isfinite(scores))  # few per row, cols ascending
    order = np.lexsort((cols, -scores[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    position = np.arange(len(rows)) - np.searchsorted(rows, rows)
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
) -> np.ndarray:
    """The top k item columns for each of `user_rows` (sorted), never an item the user has
    seen ((seen_user_rows, seen_item_rows) pairs); `scores_for(block)` scores a block of users
    against every item. Users are scored a block at a time, in bounded memory."""
    tops = [np.empty((0, k), dtype=np.int64)]
    in_rows = np.isin(seen_user_rows, user_rows)
    order = np.argsort(seen_user_rows[in_rows], kind="stable")
    seen_user_rows, seen_item_rows = seen_user_rows[in_rows][order], seen_item_rows[in_rows][order]
    block = max(1, BLOCK_CELLS // max(n_items, 1))
    for start in range(0, len(user_rows), block):
        block_rows = user_rows[start : start + block]
        scores = scores_for(block_rows)
        # The block's seen pairs are one slice of them, sorted by user as they are.
        mine = slice(
            np.searchsorted(seen_user_rows, block_rows[0], side="left"),
            np.searchsorted(seen_user_rows, block_rows[-1], side="right"),
        )
        scores[np.searchsorted(block_rows, seen_user_rows[mine]), seen_item_rows[mine]] = -np.inf
        tops.append(top_k(scores, k))
    return np.vstack(tops)


def recommend(model: Model, seen_users: np.ndarray, seen_items: np.ndarray, n: int) -> pa.Table:
    """The n best-scored items each of the model's users has not rated (`seen_users`,
    `seen_items` are their training ratings), as a table of user, rank (1 = best), item and
    predicted_rating, ordered by user and rank."""
    user_rows = np.arange(len(model.users.ids))
    seen_user_rows, seen_item_rows = model.users.lookup(seen_users)[0], model.items.lookup(seen_items)[0]
    top = top_unseen(
        lambda block: model.score_all_items(block, clip=False),
        user_rows,
        seen_user_rows,
        seen_item_rows,
        n,
        len(model.items.ids),
    )
    rows, ranks = np.nonzero(top >= 0)
    items = top[rows, ranks]
    predicted = model.predict(model.users.ids[rows], model.items.ids[items])
    return pa.table(
        {
            USER: pa.array(model.users.ids[rows], pa.int32()),
            RANK: pa.array(ranks + 1, pa.int16()),
            ITEM: pa.array(model.items.ids[items], pa.int32()),
            PREDICTED_RATING: pa.array(predicted, pa.float32()),
        }
    )


def with_titles(top: pa.Table, movies: pa.Table) -> pa.Table:
    """`recommend`'s table with each item's title from `movies` (item, title), in
    RECOMMENDATION_COLUMNS order; an item the movies file lacks has a null title."""
    titled = top.join(movies, ITEM, join_type="left outer").sort_by([(USER, "ascending"), (RANK, "ascending")])
    return titled.select(list(RECOMMENDATION_COLUMNS))
