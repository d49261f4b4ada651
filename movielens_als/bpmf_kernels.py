"""The Bayesian model's (movielens_als.bpmf) sums over ratings, compiled by numba: per entity,
the Gram matrix Σ f fᵀ of the other side's vectors f over its ratings and the linear terms
Σ f·(target − f·x_e), read straight from the other side's table through the ratings' indices.
numpy had to gather the rows and materialise every rating's outer product (ratings × rank²
float64) before summing them segment by segment; these loops hold one entity's sums at a time.
They release the GIL, so the sampler's threads run them block by block; the conjugate
gradients' loops (apply, precondition, preconditioner), the residuals and the gathers run on
numba's own threads (prange), each output row written by one iteration. Each sum is in a fixed order, so the
results do not depend on the threads. Compiled on first use and cached beside this file.

The Gram matrices are symmetric and stored packed: entity k's lower triangle, row by row, in
outer[k] (rank·(rank+1)/2 numbers; (a, b) with b ≤ a at a·(a+1)/2 + b). The preconditioner
gathers a neighbour's matrix per rating, at random: packed, that is 440 bytes at rank 10 instead
of 800 over thirteen cache lines. With the rank compiled in and the products' rows not made per
row, a sweep at 8 M generated ratings went from 3.48 / 3.25 s to 3.20 / 2.99 s, the same fit to
the bit (`bench.bpmf_sweep --zip path/to/10m/ml-25m.zip --sweeps 20`, runs alternating).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

# movielens_als.bpmf.RANK, compiled into the loops below as a constant, so they unroll. It is
# written here, not imported, because numba's cache knows only this file; bpmf checks that
# the two agree when it first loads these kernels.
RANK = 10


def threads(n: int) -> int:
    """Sets the compiled loops' threads (in the calling thread) to n, at most numba's; returns
    the number before, to restore."""
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
    return before


@njit(cache=True, nogil=True)
def gram_sums(vectors, other, starts, target, offsets, outer, linear):  # pragma: no cover - compiled
    """For each entity k of a block, over its ratings r in [starts[k], starts[k+1]):
    outer[k] = Σ f fᵀ (packed) and linear[k] = Σ f·(target[r] − f·offsets[k]), with f = vectors[other[r]]."""
    gram = np.empty((RANK, RANK))
    line = np.empty(RANK)
    for k in range(len(starts) - 1):
        gram[:] = 0.0
        line[:] = 0.0
        for r in range(starts[k], starts[k + 1]):
            f = vectors[other[r]]
            residual = target[r]
            for a in range(RANK):
                residual -= f[a] * offsets[k, a]
            for a in range(RANK):
                fa = f[a]
                line[a] += fa * residual
                for b in range(a + 1):
                    gram[a, b] += fa * f[b]
        at = 0
        for a in range(RANK):
            linear[k, a] = line[a]
            for b in range(a + 1):
                outer[k, at] = gram[a, b]
                at += 1


@njit(cache=True, nogil=True)
def linear_sums(vectors, other, starts, target, offsets, linear):  # pragma: no cover - compiled
    """linear[k] = Σ f·(target[r] − f·offsets[k]) over entity k's ratings, as in gram_sums."""
    line = np.empty(RANK)
    for k in range(len(starts) - 1):
        line[:] = 0.0
        for r in range(starts[k], starts[k + 1]):
            f = vectors[other[r]]
            residual = target[r]
            for a in range(RANK):
                residual -= f[a] * offsets[k, a]
            for a in range(RANK):
                line[a] += f[a] * residual
        for a in range(RANK):
            linear[k, a] = line[a]


@njit(cache=True, nogil=True, inline="always")
def cholesky(precision, alpha, packed, lower):  # pragma: no cover - compiled
    """lower = L, the Cholesky factor of precision + α packed (a packed lower triangle), in place."""
    at = 0
    for a in range(RANK):
        for b in range(a + 1):
            total = precision[a, b] + alpha * packed[at]
            at += 1
            for c in range(b):
                total -= lower[a, c] * lower[b, c]
            if a == b:
                lower[a, a] = np.sqrt(total)
            else:
                lower[a, b] = total / lower[b, b]


@njit(cache=True, nogil=True)
def draw_gaussians(precision, prior_linear, alpha, outer, linear, noise, out):  # pragma: no cover - compiled
    """out[k] ~ N(A⁻¹b, A⁻¹) with A = precision + α outer[k] (packed) and b = prior_linear + α linear[k],
    from standard normal noise[k]: A = L Lᵀ by Cholesky, the mean by two triangular solves and
    the draw's deviation L⁻ᵀ noise[k]. What bpmf._draw_gaussians does for a batch, a matrix at
    a time (numpy's batched LAPACK calls cost more than the small matrices' arithmetic)."""
    lower = np.zeros((RANK, RANK))
    mean = np.empty(RANK)
    for k in range(outer.shape[0]):
        cholesky(precision, alpha, outer[k], lower)
        # L y = b, then Lᵀ x = y + noise: x = A⁻¹b + L⁻ᵀ noise.
        for a in range(RANK):
            total = prior_linear[a] + alpha * linear[k, a]
            for c in range(a):
                total -= lower[a, c] * mean[c]
            mean[a] = total / lower[a, a]
        for a in range(RANK):
            mean[a] += noise[k, a]
        for a in range(RANK - 1, -1, -1):
            total = mean[a]
            for c in range(a + 1, RANK):
                total -= lower[c, a] * out[k, c]
            out[k, a] = total / lower[a, a]


@njit(cache=True, parallel=True)
def apply(  # pragma: no cover - compiled
    indptr, indices, indptr_t, indices_t, scale, vectors, outer, precision, alpha, gathered, sums, pulled, applied
):
    """The implicit vectors' conditional precision applied to `vectors`, on every core. The
    implicit weights W are w_e on every one of row e's neighbours (CSR `indptr`, `indices`;
    `indptr_t`, `indices_t` its transpose), and scale[e] = w_e². So (W y)_e = w_e Σ_k y[k], and
    pulled[e] = w_e · outer[e] · (W y)_e = scale[e] outer[e] Σ_k y[k], each entity's Gram
    matrix (packed) times its implicit term; then applied[j] = vectors[j] · Λ + α Σ_e pulled[e]
    over the entities e of row j of Wᵀ. The rows gathered at random (`gathered`, a float32 copy
    of `vectors`, and `pulled`) are float32, half the bytes to fetch; the sums are float64.
    Each output row is one iteration's, summed in a fixed order: the same whatever the threads.
    The sums go to rows of `sums` and `applied`, not to arrays made per row."""
    # Where (a, b) of a symmetric matrix sits in its packed lower triangle.
    packed_at = np.empty((RANK, RANK), np.int64)
    for a in range(RANK):
        for b in range(a + 1):
            packed_at[a, b] = packed_at[b, a] = a * (a + 1) // 2 + b
    for j in prange(vectors.shape[0]):
        for a in range(RANK):
            gathered[j, a] = vectors[j, a]
    for e in prange(len(indptr) - 1):
        total = sums[e]
        total[:] = 0.0
        for k in range(indptr[e], indptr[e + 1]):
            v = gathered[indices[k]]
            for a in range(RANK):
                total[a] += v[a]
        gram, s = outer[e], scale[e]
        for a in range(RANK):
            x = 0.0
            for b in range(RANK):
                x += gram[packed_at[a, b]] * total[b]
            pulled[e, a] = s * x
    for j in prange(len(indptr_t) - 1):
        total = applied[j]
        total[:] = 0.0
        for k in range(indptr_t[j], indptr_t[j + 1]):
            p = pulled[indices_t[k]]
            for a in range(RANK):
                total[a] += p[a]
        for a in range(RANK):
            x = alpha * total[a]
            for b in range(RANK):
                x += vectors[j, b] * precision[b, a]
            total[a] = x
    return applied


@njit(cache=True, parallel=True)
def precondition(inverse, residual, out):  # pragma: no cover - compiled
    """out[j] = inverse[j] · residual[j] for every j, on every core."""
    for j in prange(residual.shape[0]):
        for a in range(RANK):
            x = 0.0
            for b in range(RANK):
                x += inverse[j, a, b] * residual[j, b]
            out[j, a] = x
    return out


@njit(cache=True, parallel=True)
def residuals(  # pragma: no cover - compiled
    ratings, mean, user_bias, user_index, item_bias, item_index, user_vectors, item_vectors, dot, out
):
    """On every core, for every rating r of user u and item i: dot[r] = the users' side
    vector of u · the items' of i, without gathering the rows, and out[r] = rating − μ − b_u −
    b_i − dot[r], subtracted in that order (numpy's, for the same numbers)."""
    for r in prange(len(ratings)):
        u, v = user_vectors[user_index[r]], item_vectors[item_index[r]]
        total = 0.0
        for a in range(RANK):
            total += u[a] * v[a]
        dot[r] = total
        out[r] = ratings[r] - mean - user_bias[user_index[r]] - item_bias[item_index[r]] - total


@njit(cache=True, parallel=True)
def gather(values, order):  # pragma: no cover - compiled
    """values[order], on every core."""
    out = np.empty(len(order))
    for k in prange(len(order)):
        out[k] = values[order[k]]
    return out


@njit(cache=True, parallel=True)
def preconditioner(indptr, indices, weights, outer, linear, precision, alpha, inverse, rhs):  # pragma: no cover
    """For row j of the implicit weights' transpose (implicit vector j), on every core:
    inverse[j] = (Λ + α Σ_k weights[k]² outer[indices[k]])⁻¹ (by Cholesky), the conjugate gradients'
    block preconditioner, and rhs[j] += α Σ_k weights[k] linear[indices[k]]. The Gram
    matrices and their sum are packed (lower triangles)."""
    for j in prange(len(indptr) - 1):
        packed = np.zeros(outer.shape[1])
        total = np.zeros(RANK)
        for k in range(indptr[j], indptr[j + 1]):
            w, e = weights[k], indices[k]
            square, gram = w * w, outer[e]
            for a in range(RANK):
                total[a] += w * linear[e, a]
            for at in range(len(packed)):
                packed[at] += square * gram[at]
        for a in range(RANK):
            rhs[j, a] += alpha * total[a]
        # The block's inverse L⁻ᵀ L⁻¹ from its Cholesky factor L: no LAPACK call per row.
        lower = np.zeros((RANK, RANK))
        cholesky(precision, alpha, packed, lower)
        solved = np.zeros((RANK, RANK))  # L⁻¹, lower
        for b in range(RANK):
            solved[b, b] = 1.0 / lower[b, b]
            for a in range(b + 1, RANK):
                x = 0.0
                for c in range(b, a):
                    x -= lower[a, c] * solved[c, b]
                solved[a, b] = x / lower[a, a]
        for a in range(RANK):
            for b in range(a + 1):
                x = 0.0
                for c in range(a, RANK):
                    x += solved[c, a] * solved[c, b]
                inverse[j, a, b] = inverse[j, b, a] = x
