"""Array helpers the library's modules share: distinct values and their count, the lookup of ids
in an array of ids, and the threads numpy work may use. Ids (integers from 0 to a few times
their number) are counted in a table rather than sorted or hashed."""

from __future__ import annotations

import os

import numpy as np

# distinct() counts integer values up to this many times their number rather than sorting them.
DENSE_IDS = 16


def distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(values, return_inverse=True): the sorted distinct values, and the index of
    each value among them. Ids (integers from 0 to a few times their number) are counted
    instead of sorted: 8–39 times faster for 8 M ratings' items (BENCHMARKS.md)."""
    if _dense(values, len(values)):
        present = np.bincount(values) > 0
        ids = np.flatnonzero(present)
        position = np.cumsum(present) - 1
        return ids.astype(values.dtype), position[values]
    return np.unique(values, return_inverse=True)


def count_distinct(values: np.ndarray) -> int:
    """len(np.unique(values)), ids counted as in distinct: 3.4 times as fast as Arrow's hashing
    count_distinct for a 25 M-rating split's users and items (bench/read_split.py)."""
    if _dense(values, len(values)):
        return int(np.count_nonzero(np.bincount(values)))
    return len(np.unique(values))


def threads() -> int:
    """Threads for numpy work that releases the GIL: the cores this process may use, at most 8."""
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def index_of(ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index in `ids`, found) of each of `values`; `ids` distinct, in any order. The index of
    a value not found is 0. Ids are looked up in a table rather than searched (see distinct)."""
    if not len(ids):
        return np.zeros(len(values), dtype=np.int64), np.zeros(len(values), dtype=bool)
    if _dense(ids, max(len(ids), len(values))) and values.dtype.kind in "iu":
        table = np.full(int(ids.max()) + 1, -1, dtype=np.int64)
        table[ids] = np.arange(len(ids))
        inside = values < len(table) if values.dtype.kind == "u" else (values >= 0) & (values < len(table))
        position = table[np.where(inside, values, 0)]
        found = inside & (position >= 0)
        return np.where(found, position, 0), found
    order = np.argsort(ids, kind="stable")
    position = order[np.clip(np.searchsorted(ids[order], values), 0, len(ids) - 1)]
    found = ids[position] == values
    return np.where(found, position, 0), found


def _dense(ids: np.ndarray, work: int) -> bool:
    """Whether `ids` are integers from 0 to DENSE_IDS times `work`, cheaper counted than sorted."""
    return ids.dtype.kind in "iu" and len(ids) > 0 and ids.min() >= 0 and ids.max() <= DENSE_IDS * work
