"""EASE, the ranking model: an item × item weight matrix B fitted in closed form on which
items each user liked (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data").

    X      users × items, 1 where the user rated the item ≥ positive_rating, else 0
    G      XᵀX + λI,   P = G⁻¹
    B      B_ij = -P_ij / P_jj,   B_jj = 0
    score  s(u, j) = Σ_i X_ui B_ij

A user's score for an item is how well the items they liked predict it, from item-item
co-occurrence with the item itself left out. The fit is one Gram matrix (sparse, in
threads) and one Cholesky inverse (LAPACK), so it needs no iterations and no seed: the same
ratings give the same weights.

Only the `max_items` items liked most often are modelled: B is dense, max_items² float32
(1 GiB at 16,384). The columns are in order of popularity (positives in training, most
first, then by id), so ties in score, and users with no positives, fall to the more
popular item.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import scipy.sparse as sp
from scipy.linalg import lapack

from movielens_als.columns import COUNT, ID
from movielens_als.model import MODEL_JSON, distinct, index_of

# The files of a stored EASE model, in its directory, beside model.json.
EASE_ITEMS = "items.parquet"  # id, count (positives in training), in the weights' order
EASE_WEIGHTS = "weights.npy"  # B, float32, rows = the item liked, columns = the item scored
FILES = (EASE_ITEMS, EASE_WEIGHTS, MODEL_JSON)
FORMULA = "s(u, j) = sum_i X_ui B_ij, B = -P / diag(P) with a zero diagonal, P = (X'X + l2 I)^-1"
# Columns of the Gram matrix computed per thread task: bounds the sparse intermediates.
GRAM_BLOCK = 1024


@dataclass(frozen=True)
class Ease:
    items: np.ndarray  # int ids, in the order of the weights' rows and columns
    count: np.ndarray  # positives of each item in training
    weights: np.ndarray  # (n, n) float32
    positive_rating: float
    l2: float

    def liked(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, user_ids: np.ndarray) -> sp.csr_matrix:
        """X for `user_ids` (one row each, in that order) from their ratings (users, items,
        ratings): 1 for each modelled item they rated ≥ positive_rating."""
        column, known = index_of(self.items, items)
        row, user_known = index_of(user_ids, users)
        keep = known & user_known & (ratings >= self.positive_rating)
        return _binary(row[keep], column[keep], (len(user_ids), len(self.items)))

    def scores(self, liked: sp.csr_matrix) -> np.ndarray:
        """s(u, j) for every row of `liked` and every modelled item, in threads."""
        out = np.empty((liked.shape[0], len(self.items)), dtype=np.float32)
        bounds = np.linspace(0, liked.shape[0], _threads() + 1).astype(int)

        def work(part: int) -> None:
            start, end = bounds[part], bounds[part + 1]
            out[start:end] = liked[start:end] @ self.weights

        with ThreadPoolExecutor(_threads()) as pool:
            list(pool.map(work, range(len(bounds) - 1)))
        return out


def fit(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    positive_rating: float,
    l2s: Iterable[float],
    max_items: int,
) -> Iterator[Ease]:
    """One model per λ in `l2s`, all from one Gram matrix: the tuning fits several, the
    training one. Yields them one at a time, so only one B is held, and takes each λ only
    when the last model has been used (the tuning's Bracket chooses the next from it)."""
    liked = ratings >= positive_rating
    ids, inverse = distinct(items[liked])
    count = np.bincount(inverse, minlength=len(ids))
    order = np.lexsort((ids, -count))[:max_items]
    ids, count = ids[order], count[order]
    column, known = index_of(ids, items)
    keep = liked & known
    _, row = distinct(users[keep])
    x = _binary(row, column[keep], (int(row.max(initial=-1)) + 1, len(ids)))
    gram = _gram(x)
    # One λ (a fit to store, a close call settled): B is computed in the Gram matrix's own
    # memory, not in a copy of it (1 s and 440 MB at 10,500 items).
    only = isinstance(l2s, list | tuple) and len(l2s) == 1
    for l2 in l2s:
        if not l2 > 0:
            raise ValueError(f"EASE's λ must be above 0, not {l2}")
        yield Ease(ids, count, _weights(gram if only else gram.copy(), l2), positive_rating, float(l2))


def to_files(model: Ease, **record) -> dict[str, pa.Table | bytes | dict]:
    """The files of a stored model (FILES), by name: the items (an Arrow table), B (.npy bytes)
    and model.json, with `record` (where the model came from: parameters, training data,
    timings)."""
    buffer = io.BytesIO()
    np.save(buffer, model.weights, allow_pickle=False)
    table = pa.table({ID: pa.array(model.items, pa.int32()), COUNT: pa.array(model.count, pa.int64())})
    description = {
        "model": "ease",
        "formula": FORMULA,
        "positive_rating": model.positive_rating,
        "l2": model.l2,
        "items": len(model.items),
        **record,
    }
    return {EASE_ITEMS: table, EASE_WEIGHTS: buffer.getvalue(), MODEL_JSON: description}


def from_files(files: dict) -> Ease:
    """The model of `to_files`' files."""
    items, description = files[EASE_ITEMS], files[MODEL_JSON]
    # Models stored before B was written in C order hold it in Fortran order: scoring copied
    # all of it for every block of users, so it is put in C order once here.
    matrix = np.ascontiguousarray(np.load(io.BytesIO(files[EASE_WEIGHTS]), allow_pickle=False))
    if matrix.shape != (items.num_rows, items.num_rows):
        raise ValueError(f"EASE weights of shape {matrix.shape} do not match {items.num_rows} items")
    return Ease(
        items.column(ID).to_numpy(),
        items.column(COUNT).to_numpy(),
        matrix,
        description["positive_rating"],
        description["l2"],
    )


def _gram(x: sp.csr_matrix) -> np.ndarray:
    """XᵀX as a dense float32 matrix, a block of columns per thread task."""
    n = x.shape[1]
    gram = np.empty((n, n), dtype=np.float32)
    xt, xc = x.T.tocsr(), x.tocsc()

    def work(start: int) -> None:
        gram[:, start : start + GRAM_BLOCK] = (xt @ xc[:, start : start + GRAM_BLOCK]).toarray()

    with ThreadPoolExecutor(_threads()) as pool:
        list(pool.map(work, range(0, n, GRAM_BLOCK)))
    return gram


def _weights(gram: np.ndarray, l2: float) -> np.ndarray:
    """B from XᵀX and λ: P = (XᵀX + λI)⁻¹ by Cholesky (LAPACK's potrf and potri, in place:
    `gram` is overwritten), then B = -P / diag(P) with a zero diagonal, in C order: scoring
    (liked @ B) reads B a row at a time, and scipy copies a Fortran-ordered B whole on every call."""
    # XᵀX is symmetric, so its transpose, which is in Fortran order, is the same matrix: LAPACK
    # works on it in place instead of on a Fortran-ordered copy.
    a = gram.T
    a[np.diag_indices_from(a)] += l2
    factor, info = lapack.spotrf(a, lower=True, overwrite_a=True, clean=False)
    if info:
        raise ArithmeticError(f"XᵀX + {l2}I is not positive definite (LAPACK potrf info {info})")
    p, info = lapack.spotri(factor, lower=True, overwrite_c=True)
    if info:
        raise ArithmeticError(f"inverting XᵀX + {l2}I failed (LAPACK potri info {info})")
    n = len(p)
    for start in range(0, n, GRAM_BLOCK):  # potri fills the lower triangle; mirror it, in place
        end = start + GRAM_BLOCK
        p[start:end, end:] = p[end:, start:end].T
        block = p[start:end, start:end]
        block[np.triu_indices(len(block), 1)] = block.T[np.triu_indices(len(block), 1)]
    p = p.T  # P is symmetric too: the same matrix, in C order
    diagonal = p.diagonal().copy()
    p /= -diagonal
    p[np.diag_indices_from(p)] = 0.0
    return p


def _binary(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    x = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, columns)), shape=shape)
    x.sum_duplicates()
    x.data[:] = 1.0
    return x


def _threads() -> int:
    return max(1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))
