"""The Bayesian model's (movielens_als.bpmf) sums over ratings, compiled by numba: per entity,
the Gram matrix Σ f fᵀ of the other side's vectors f over its ratings and the linear terms
Σ f·(target − f·x_e), read straight from the other side's table through the ratings' indices.
numpy had to gather the rows and materialise every rating's outer product (ratings × rank²
float64) before summing them segment by segment; these loops hold one entity's sums at a time.
They release the GIL, so the sampler's threads run them block by block; the conjugate
gradients' loops (apply, precondition, preconditioner) and rowdots run on numba's own threads
(prange), each output row written by one iteration. Each sum is in a fixed order, so the
results do not depend on the threads. Compiled on first use and cached beside this file.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange


def threads(n: int) -> int:
    """Sets the compiled loops' threads (in the calling thread) to n, at most numba's; returns
    the number before, to restore."""
    before = numba.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))  # type: ignore[attr-defined]
    return before


@njit(cache=True, nogil=True)
def gram_sums(vectors, other, starts, target, offsets, outer, linear):  # pragma: no cover - compiled
    """For each entity k of a block, over its ratings r in [starts[k], starts[k+1]):
    outer[k] = Σ f fᵀ and linear[k] = Σ f·(target[r] − f·offsets[k]), with f = vectors[other[r]]."""
    rank = vectors.shape[1]
    gram = np.empty((rank, rank))
    line = np.empty(rank)
    for k in range(len(starts) - 1):
        gram[:] = 0.0
        line[:] = 0.0
        for r in range(starts[k], starts[k + 1]):
            f = vectors[other[r]]
            residual = target[r]
            for a in range(rank):
                residual -= f[a] * offsets[k, a]
            for a in range(rank):
                fa = f[a]
                line[a] += fa * residual
                for b in range(a + 1):
                    gram[a, b] += fa * f[b]
        for a in range(rank):
            linear[k, a] = line[a]
            for b in range(a + 1):
                outer[k, a, b] = gram[a, b]
                outer[k, b, a] = gram[a, b]


@njit(cache=True, nogil=True)
def linear_sums(vectors, other, starts, target, offsets, linear):  # pragma: no cover - compiled
    """linear[k] = Σ f·(target[r] − f·offsets[k]) over entity k's ratings, as in gram_sums."""
    rank = vectors.shape[1]
    line = np.empty(rank)
    for k in range(len(starts) - 1):
        line[:] = 0.0
        for r in range(starts[k], starts[k + 1]):
            f = vectors[other[r]]
            residual = target[r]
            for a in range(rank):
                residual -= f[a] * offsets[k, a]
            for a in range(rank):
                line[a] += f[a] * residual
        for a in range(rank):
            linear[k, a] = line[a]


@njit(cache=True, nogil=True)
def draw_gaussians(precision, prior_linear, alpha, outer, linear, noise, out):  # pragma: no cover - compiled
    """out[k] ~ N(A⁻¹b, A⁻¹) with A = precision + α outer[k] and b = prior_linear + α linear[k],
    from standard normal noise[k]: A = L Lᵀ by Cholesky, the mean by two triangular solves and
    the draw's deviation L⁻ᵀ noise[k]. What bpmf._draw_gaussians does for a batch, a matrix at
    a time (numpy's batched LAPACK calls cost more than the small matrices' arithmetic)."""
    rank = precision.shape[0]
    lower = np.zeros((rank, rank))
    mean = np.empty(rank)
    for k in range(outer.shape[0]):
        for a in range(rank):
            for b in range(a + 1):
                total = precision[a, b] + alpha * outer[k, a, b]
                for c in range(b):
                    total -= lower[a, c] * lower[b, c]
                if a == b:
                    lower[a, a] = np.sqrt(total)
                else:
                    lower[a, b] = total / lower[b, b]
        # L y = b, then Lᵀ x = y + noise: x = A⁻¹b + L⁻ᵀ noise.
        for a in range(rank):
            total = prior_linear[a] + alpha * linear[k, a]
            for c in range(a):
                total -= lower[a, c] * mean[c]
            mean[a] = total / lower[a, a]
        for a in range(rank):
            mean[a] += noise[k, a]
        for a in range(rank - 1, -1, -1):
            total = mean[a]
            for c in range(a + 1, rank):
                total -= lower[c, a] * out[k, c]
            out[k, a] = total / lower[a, a]


@njit(cache=True, parallel=True)
def apply(  # pragma: no cover - compiled
    indptr, indices, weights, indptr_t, indices_t, weights_t, vectors, outer, precision, alpha, pulled, applied
):
    """The implicit vectors' conditional precision applied to `vectors`, on every core:
    pulled[e] = outer[e] · Σ_k weights[k] vectors[indices[k]] over row e of the implicit
    weights W (CSR), each entity's Gram matrix times its implicit term; then
    applied[j] = vectors[j] · Λ + α Σ_k weights_t[k] pulled[indices_t[k]] over row j of Wᵀ.
    Each output row is one iteration's, summed in a fixed order: the same whatever the threads."""
    rank = vectors.shape[1]
    for e in prange(len(indptr) - 1):
        total = np.zeros(rank)
        for k in range(indptr[e], indptr[e + 1]):
            w, v = weights[k], vectors[indices[k]]
            for a in range(rank):
                total[a] += w * v[a]
        for a in range(rank):
            x = 0.0
            for b in range(rank):
                x += outer[e, a, b] * total[b]
            pulled[e, a] = x
    for j in prange(len(indptr_t) - 1):
        total = np.zeros(rank)
        for k in range(indptr_t[j], indptr_t[j + 1]):
            w, p = weights_t[k], pulled[indices_t[k]]
            for a in range(rank):
                total[a] += w * p[a]
        for a in range(rank):
            x = alpha * total[a]
            for b in range(rank):
                x += vectors[j, b] * precision[b, a]
            applied[j, a] = x
    return applied


@njit(cache=True, parallel=True)
def precondition(inverse, residual, out):  # pragma: no cover - compiled
    """out[j] = inverse[j] · residual[j] for every j, on every core."""
    rank = residual.shape[1]
    for j in prange(residual.shape[0]):
        for a in range(rank):
            x = 0.0
            for b in range(rank):
                x += inverse[j, a, b] * residual[j, b]
            out[j, a] = x
    return out


@njit(cache=True, parallel=True)
def rowdots(left, left_index, right, right_index):  # pragma: no cover - compiled
    """left[left_index[r]] · right[right_index[r]] for every r, without gathering the rows, on every core."""
    out = np.empty(len(left_index))
    for r in prange(len(left_index)):
        u, v = left[left_index[r]], right[right_index[r]]
        total = 0.0
        for a in range(left.shape[1]):
            total += u[a] * v[a]
        out[r] = total
    return out


@njit(cache=True, parallel=True)
def preconditioner(indptr, indices, weights, outer, linear, precision, alpha, inverse, rhs):  # pragma: no cover
    """For row j of the implicit weights' transpose (implicit vector j), on every core:
    inverse[j] = (Λ + α Σ_k weights[k]² outer[indices[k]])⁻¹, the conjugate gradients'
    block preconditioner, and rhs[j] += α Σ_k weights[k] linear[indices[k]]. Only the
    lower triangle of the sum is accumulated."""
    rank = precision.shape[0]
    for j in prange(len(indptr) - 1):
        block = np.zeros((rank, rank))
        total = np.zeros(rank)
        for k in range(indptr[j], indptr[j + 1]):
            w, e = weights[k], indices[k]
            square = w * w
            for a in range(rank):
                total[a] += w * linear[e, a]
                for b in range(a + 1):
                    block[a, b] += square * outer[e, a, b]
        for a in range(rank):
            rhs[j, a] += alpha * total[a]
            for b in range(a + 1):
                block[a, b] = precision[a, b] + alpha * block[a, b]
                block[b, a] = block[a, b]
        inverse[j] = np.linalg.inv(block)
