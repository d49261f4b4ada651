"""The Bayesian rating model: biased matrix factorisation with implicit feedback on both sides,
sampled by Gibbs (BPMF, Salakhutdinov & Mnih 2008), its predictions averaged over the posterior.

    r̂(u, i) = μ + b_u + b_i + (p_u + |N(u)|^-½ Σ_{j∈N(u)} y_j) · (q_i + |N(i)|^-½ Σ_{v∈N(i)} z_v)

N(u) is the items u rated in training and N(i) the users who rated i in training (SVD++'s
implicit term, and its mirror on the item side, which is worth the most). Noise and bias
precisions have Gamma(1, 1) priors, μ a flat one; each factor group (p, q, y, z) has a
Normal-Wishart hyperprior (μ0 = 0, β0 = 2, ν0 = rank, W0 = I), drawn anew every sweep.

After the burn-in, each sweep is one sample of every parameter. The stored model is their
average: the biases averaged, and the factor term's average Σ_s Ũ_u^s·Ṽ_i^s / S written as one
dot product of the samples' side vectors laid side by side and scaled by 1/√S. So it is an
ordinary movielens_als.model.Model (factor tables with biases), which every scorer reads:
unseen users and items fall back to the biases as ALS's do. At most MAX_SAMPLES samples, evenly
spaced, are laid side by side; the biases average every sweep after the burn-in.

numpy and scipy, with the sums over ratings (each entity's Gram matrix, its linear terms, the
conjugate gradients' products) and the small Gaussian draws compiled by numba
(movielens_als.bpmf_kernels). Each side's factors are conditionally independent given the other
side, so they are drawn in blocks of entities on every core; each side's implicit vectors are drawn
jointly (one Gibbs block, approximate: CG_ITERATIONS at most) by perturbation and conjugate
gradients, with no Python loop over users or items. The noise is drawn per block from streams fixed by
the seed and the data, so a seed gives the same fit whatever the number of threads.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import sparse

from movielens_als.arrays import index_of, threads
from movielens_als.model import Model, Side
from movielens_als.ratings import Ratings

RANK = 10
# 60 sweeps, 10 of them burn-in: chosen on validation ratings carved from the training ratings
# (as ValidatedBPMF carves them) of ml-100k's five official folds and ml-latest-small's
# reference split. Validation RMSE falls until about 60-80 sweeps and then rises again
# (mean of u1-u5: 48 sweeps 0.8871, 60 0.8861, 80 0.8857, 100 0.8861, 150 0.8872, 300 0.8882;
# ml-latest-small: 48 0.8242, 60 0.8247, 80 0.8260, 100 0.8270); see docs/models.md.
SWEEPS = 60
# The first sixth of the sweeps are burn-in: the chain's early samples are poor. With validation
# ratings, `sweeps` is the most the chain may run and the burn-in is a sixth of that, decided
# before the stop is known.
BURN_IN_FRACTION = 1 / 6
# With validation ratings the chain stops once the running mean's validation RMSE has not fallen
# by STOP_TOLERANCE below its best for STOP_PATIENCE sweeps, and the sweeps chosen are all it ran:
# the curve is flat within the tolerance by then, and its lowest point is noise. On
# ml-latest-small's reference split (seed 42) patience 10 stopped at 42 and chose the lowest, 40:
# test RMSE 0.8276 replayed at 40 or 42 against 0.8271 at 60; with patience 20 it runs the 60.
# ml-100k's folds ran to 55-60 with patience 10 already. A curve that flattens soon after the
# burn-in (a release whose sample mixes fast) still stops soon after it.
STOP_TOLERANCE, STOP_PATIENCE = 5e-4, 20
# At most this many samples are laid side by side, evenly spaced (every sample past the burn-in
# at the default sweeps). More samples, a truer mean: at 300 sweeps, ml-100k's u2 gave test
# RMSE 0.8812 with 50 samples, 0.8803 with 125 and 0.8799 with all 250 (the running mean), at
# 4 bytes × rank per sample per user and item.
MAX_SAMPLES = 125
FORMULA = "mu + b_u + b_i + (p_u + |N(u)|^-1/2 sum_N(u) y_j).(q_i + |N(i)|^-1/2 sum_N(i) z_v), posterior mean"
PRIORS = {"noise_and_bias_precision": "Gamma(1, 1)", "factors": "Normal-Wishart(mu0 0, beta0 2, nu0 rank, W0 I)"}
# Ratings per block of entities whose factors one thread draws (a task of the thread pool);
# the blocks are fixed by the data alone.
BLOCK_ROWS = 1 << 15
# The implicit vectors' joint draw is solved to this relative residual, in at most this many
# conjugate-gradient iterations, from the current draw: an inexact solve, so an approximate
# Gibbs step. To 1e-4 the iterations grew with the chain (at 1 M generated ratings 4-5 per
# solve in the first sweep, 52 and 90 by the twelfth), the solve dominating the sweep.
# Test RMSE (60 sweeps; seed 42 | 43) of ml-100k u1, mean of u1-u5, ml-latest-small 80/20:
# 1e-4, 200: 0.8880 0.8819 0.8269 | 0.8885 0.8814 0.8298
# 1e-2, 200: 0.8881 0.8817 0.8269 | 0.8883 0.8815 0.8295
# 1e-2, 20:  0.8879 0.8815 0.8269 | 0.8885 0.8814 0.8295 (chosen until 2026-12-06)
# 1e-2, 15:  0.8871 0.8813 0.8272 | 0.8882 0.8810 0.8299
# 1e-4, 15:  0.8872 0.8816 0.8270 | 0.8881 0.8810 0.8301
# 1e-4, 10:  0.8874 0.8815 0.8275 | 0.8880 0.8811 0.8294
# 1e-2, 10:  0.8882 0.8816 0.8277 | 0.8878 0.8813 0.8295 (and seed 44: 0.8888 0.8812 0.8265,
#            against 20's 0.8878 0.8810 0.8259; with the float32 product, chosen:
#            0.8882 0.8815 0.8276 | 0.8877 0.8813 0.8295 | 0.8887 0.8811 0.8265)
# 1e-2, 5:   0.8922 0.8850 0.8262 | 0.8911 0.8843 0.8282 (ml-100k worse by 0.003)
# 10 is within the seeds' spread of 20 on every split; at scale the solves reach it every
# sweep (20 at 10 M and 25 M generated ratings, both sides, by the tenth sweep), and a sweep at
# 25 M took 10.8 s against 13.2 s (sweeps 7-12; 10 M: 3.2 s against 4.4 s, float32 product
# included; bench.bpmf_sweep --zip). The library runs: fit(sweeps=60), one thread.
CG_TOLERANCE, CG_ITERATIONS = 1e-2, 10
_BETA0, _GAMMA_SHAPE, _GAMMA_RATE, _INIT_STD = 2.0, 1.0, 1.0, 0.1


def _kernels():
    """movielens_als.bpmf_kernels, imported when first sampled: numba takes a third of a second
    to import, which every luigi command (which reads SWEEPS) would pay."""
    from movielens_als import bpmf_kernels

    if bpmf_kernels.RANK != RANK:
        raise RuntimeError(f"movielens_als.bpmf_kernels.RANK is {bpmf_kernels.RANK}, not bpmf.RANK {RANK}: set both")
    return bpmf_kernels


def burn_in(sweeps: int) -> int:
    return int(sweeps * BURN_IN_FRACTION)


_default_burn_in = burn_in  # fit's argument `burn_in` hides it there


@dataclass(frozen=True)
class Fit:
    model: Model
    # Validation RMSE of the running posterior mean after every sweep past the burn-in:
    # [{"sweep": n, "validation_rmse": x}, ...]; empty without validation.
    curve: list[dict]
    samples: int
    # The sweeps to replay (fit(..., sweeps=chosen, burn_in=burn_in)): the sweeps run, `stopped_at`
    # with validation ratings (see STOP_PATIENCE).
    chosen: int
    burn_in: int
    stopped_at: int


@dataclass(frozen=True)
class _Block:
    """Entities [lo, hi) of a side, whose ratings are rows [starts[0], starts[-1]) of the ratings
    sorted by that side; `starts` are each entity's first row, relative to the block."""

    lo: int
    hi: int
    first_row: int
    starts: np.ndarray

    @property
    def rows(self) -> slice:
        return slice(self.first_row, self.first_row + int(self.starts[-1]))


def _blocks(counts: np.ndarray, max_rows: int) -> tuple[_Block, ...]:
    """Consecutive entities cut into blocks of at most `max_rows` ratings (an entity with more
    has a block of its own): fixed by the data alone, so the draws do not depend on the threads."""
    ends = np.concatenate(([0], np.cumsum(counts)))
    blocks, lo = [], 0
    while lo < len(counts):
        hi = max(lo + 1, int(np.searchsorted(ends, ends[lo] + max_rows, side="right")) - 1)
        blocks.append(_Block(lo, hi, int(ends[lo]), ends[lo : hi + 1] - ends[lo]))
        lo = hi
    return tuple(blocks)


class _Prior(NamedTuple):
    """A factor group's hyper-parameters, drawn anew every sweep: the mean μ and precision Λ
    of its vectors' Normal prior."""

    mean: np.ndarray
    precision: np.ndarray


def _normal_wishart(x: np.ndarray, rng: np.random.Generator) -> _Prior:
    """(μ, Λ) of a factor group from their Normal-Wishart posterior given its rows `x`."""
    from scipy import stats  # half a second to import, which every luigi command would pay

    n, rank = x.shape
    mean = x.mean(axis=0)
    centred = x - mean
    beta = _BETA0 + n
    scale_inv = np.eye(rank) + centred.T @ centred + (_BETA0 * n / beta) * np.outer(mean, mean)
    scale = np.linalg.inv(scale_inv)
    precision = np.atleast_2d(stats.wishart.rvs(df=rank + n, scale=(scale + scale.T) / 2, random_state=rng))
    return _Prior(rng.multivariate_normal(n * mean / beta, np.linalg.inv(beta * precision)), precision)


def _draw_bias(index, n, counts, residual, alpha, precision, rng) -> np.ndarray:
    """Scalar biases θ_k ~ N(α Σ residual / (λ + α n_k), 1 / (λ + α n_k))."""
    total = precision + alpha * counts
    return alpha * np.bincount(index, residual, minlength=n) / total + rng.standard_normal(n) / np.sqrt(total)


def _implicit(entity: np.ndarray, other: np.ndarray, n_entity: int, n_other: int) -> sparse.csr_matrix:
    """(n_entity × n_other): |N(e)|^-½ where entity e met `other` in training, N(e) the distinct
    ones met (a pair rated twice counts once): the same weight on all of row e, as
    movielens_als.bpmf_kernels.apply reads it."""
    matrix = sparse.csr_matrix((np.ones(len(entity)), (entity, other)), shape=(n_entity, n_other))
    matrix.sum_duplicates()
    counts = np.diff(matrix.indptr)
    matrix.data = np.repeat(1.0 / np.sqrt(np.maximum(counts, 1)), counts)
    return matrix


def _draw_implicit(y, outer, linear, entities: _Entities, alpha, prior: _Prior, rng) -> np.ndarray:
    """All of a side's implicit vectors at once from their joint conditional, given the rest.
    Entity e's side vector is x_e + S_e, with S = W y (W = the entities' `neighbours`); outer[e] = Σ f fᵀ over e's
    ratings and linear[e] = Σ f (target − x_e·f + ε/√α), the targets already perturbed by
    ε ~ N(0, 1). The conditional's precision A maps y to y Λ + α Wᵀ [outer_e S_e]_e, so
    the solution of A y = Λμ + L ε' + α Wᵀ linear (Λ = L Lᵀ) is an exact draw from
    N(A⁻¹ (Λμ + α Wᵀ Σ f·target), A⁻¹) (perturb then optimise; Papandreou & Yuille 2010), solved
    by conjugate gradients from the current draw, each vector's own block of A as preconditioner.
    The products and the preconditioner are compiled loops on every core (numba's threads)."""
    mu, precision = prior
    kernels, m, t = _kernels(), entities.neighbours, entities.neighbours_t
    preconditioner = np.empty((len(y), RANK, RANK))
    rhs = precision @ mu + rng.standard_normal(y.shape) @ np.linalg.cholesky(precision).T
    kernels.preconditioner(t.indptr, t.indices, t.data, outer, linear, precision, alpha, preconditioner, rhs)
    scale = 1.0 / np.maximum(np.diff(m.indptr), 1)  # each entity's implicit weight, squared
    sums, pulled = np.empty((len(outer), RANK)), np.empty((len(outer), RANK), np.float32)
    applied, preconditioned, gathered = np.empty_like(y), np.empty_like(y), np.empty(y.shape, np.float32)

    def apply(vectors: np.ndarray) -> np.ndarray:
        # The same array every call: the conjugate gradients read each product before the next.
        args = (m.indptr, m.indices, t.indptr, t.indices, scale)
        return kernels.apply(*args, vectors, outer, precision, alpha, gathered, sums, pulled, applied)

    def precondition(residual: np.ndarray) -> np.ndarray:
        return kernels.precondition(preconditioner, residual, preconditioned)

    return _conjugate_gradients(apply, precondition, rhs, y)


def _conjugate_gradients(apply, precondition, rhs: np.ndarray, start: np.ndarray) -> np.ndarray:
    """The solution of apply(x) = rhs (symmetric positive definite) from `start`, to a
    preconditioned residual CG_TOLERANCE times the right-hand side's, in at most CG_ITERATIONS.
    `apply` and `precondition` may return the same array every call: each result is read before
    the next call."""
    bound = CG_TOLERANCE**2 * float(np.vdot(rhs, precondition(rhs)))
    x = start.copy()
    residual = rhs - apply(x)
    z = precondition(residual)
    direction, rz = z.copy(), float(np.vdot(residual, z))
    for _ in range(CG_ITERATIONS):
        if rz <= bound:
            break
        applied = apply(direction)
        step = rz / float(np.vdot(direction, applied))
        x += step * direction
        residual -= step * applied
        z = precondition(residual)
        rz, previous = float(np.vdot(residual, z)), rz
        direction = z + (rz / previous) * direction
    return x


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


class _Validation:
    """The running posterior mean's predictions of the validation ratings, and their RMSE."""

    def __init__(self, ratings: Ratings, user_ids, item_ids, rating_scale: tuple[float, float]):
        (self.users, self.user_known), (self.items, self.item_known) = (
            index_of(user_ids, ratings.users),
            index_of(item_ids, ratings.items),
        )
        self.both = self.user_known & self.item_known
        self.actual = np.asarray(ratings.ratings, dtype=np.float64)
        self.total = np.zeros(len(self.actual))
        self.sweeps = 0
        self.scale = rating_scale

    def add(self, mean, user_bias, item_bias, user_side, item_side) -> float:
        """Adds one sample's predictions; the RMSE of the mean of those added so far."""
        self.total += (
            mean
            + np.where(self.user_known, user_bias[self.users], 0.0)
            + np.where(self.item_known, item_bias[self.items], 0.0)
            + np.where(self.both, _rowdot(user_side[self.users], item_side[self.items]), 0.0)
        )
        self.sweeps += 1
        return float(np.sqrt(np.mean((np.clip(self.total / self.sweeps, *self.scale) - self.actual) ** 2)))


@dataclass(frozen=True)
class _Entities:
    """The users or the items of the training ratings, as the sampler meets them: their ids,
    each rating's row among them (`index`) and their ratings' counts; the ratings sorted by them
    (`order`, stable) with the other side's row of each (`other_index`, in that order), cut
    into blocks; and the weights of their implicit term, |N(e)|^-½ where entity e met one of
    the other side (`neighbours`, entities × the other side's, and its transpose)."""

    ids: np.ndarray
    index: np.ndarray
    counts: np.ndarray
    order: np.ndarray
    other_index: np.ndarray
    blocks: tuple[_Block, ...]
    neighbours: sparse.csr_matrix
    neighbours_t: sparse.csr_matrix

    @classmethod
    def of(cls, ids: np.ndarray, index: np.ndarray, other_index: np.ndarray, n_other: int) -> _Entities:
        neighbours = _implicit(index, other_index, len(ids), n_other)
        counts = np.bincount(index, minlength=len(ids))
        order = np.argsort(index, kind="stable").astype(np.int32)
        blocks = _blocks(counts, BLOCK_ROWS)
        return cls(ids, index, counts, order, other_index[order], blocks, neighbours, neighbours.T.tocsr())


@dataclass
class _SideDraw:
    """One side's parameters in the current sweep. The users': p (factors), the items' implicit
    vectors y, each user's |N(u)|^-½ Σ_{j∈N(u)} y_j (implicit_sum), b_u and its precision. The
    items' mirror them: q, the users' implicit vectors z, |N(i)|^-½ Σ_{v∈N(i)} z_v, b_i."""

    factors: np.ndarray
    implicit: np.ndarray
    implicit_sum: np.ndarray
    bias: np.ndarray
    bias_precision: float

    @property
    def vectors(self) -> np.ndarray:
        """Each entity's side vector: its factors plus its implicit term."""
        return self.factors + self.implicit_sum


@dataclass
class _ChainState:
    """Every parameter's current draw: the global mean μ, the noise precision α (drawn first
    in every sweep) and each side's."""

    users: _SideDraw
    items: _SideDraw
    mean: float
    noise_precision: float = 1.0


def _start(users: _Entities, items: _Entities, ratings: np.ndarray, rng: np.random.Generator) -> _ChainState:
    """The chain's first state: small random factors, no implicit term, no biases, μ the mean rating."""
    p = rng.standard_normal((len(users.ids), RANK)) * _INIT_STD
    q = rng.standard_normal((len(items.ids), RANK)) * _INIT_STD
    y, z = np.zeros((len(items.ids), RANK)), np.zeros((len(users.ids), RANK))
    return _ChainState(
        users=_SideDraw(p, y, users.neighbours @ y, np.zeros(len(users.ids)), 1.0),
        items=_SideDraw(q, z, items.neighbours @ z, np.zeros(len(items.ids)), 1.0),
        mean=ratings.mean(),
    )


def _sweep(
    state: _ChainState,
    users: _Entities,
    items: _Entities,
    ratings: np.ndarray,
    rng: np.random.Generator,
    pool: ThreadPoolExecutor,
) -> None:
    """One Gibbs sweep over every parameter, in place: α and μ, the biases, then the item side
    given the users' side vectors, and the user side given the items' new ones."""
    dot, residual = np.empty(len(ratings)), np.empty(len(ratings))
    biases = (state.users.bias, users.index, state.items.bias, items.index)
    _kernels().residuals(ratings, state.mean, *biases, state.users.vectors, state.items.vectors, dot, residual)
    _draw_noise_and_mean(state, residual, rng)
    for side, entities in ((state.users, users), (state.items, items)):
        _draw_biases(side, entities, residual, state.noise_precision, rng)
    # The ratings less μ and the biases, in dot's memory: residual and dot are not kept through
    # the sides' draws (each a float64 per rating, 256 MiB at 32 M ratings).
    target = np.add(residual, dot, out=dot)
    del residual, dot
    # q given the users' side vectors, then z (the item-side implicit term).
    _draw_side(state.items, items, state.users.vectors, target, state.noise_precision, rng, pool)
    # p given the items' side vectors, then y (SVD++'s implicit term).
    _draw_side(state.users, users, state.items.vectors, target, state.noise_precision, rng, pool)


def _draw_noise_and_mean(state: _ChainState, residual: np.ndarray, rng: np.random.Generator) -> None:
    """α from the residuals, then μ given it; `residual` is kept the ratings' residual, in place."""
    n = len(residual)
    state.noise_precision = rng.gamma(_GAMMA_SHAPE + n / 2, 1.0 / (_GAMMA_RATE + 0.5 * residual @ residual))
    residual += state.mean
    state.mean = residual.mean() + rng.standard_normal() / np.sqrt(state.noise_precision * n)
    residual -= state.mean


def _draw_biases(
    side: _SideDraw, entities: _Entities, residual: np.ndarray, alpha: float, rng: np.random.Generator
) -> None:
    """The side's biases given the rest, then their precision; `residual` is kept the ratings'
    residual, in place."""
    residual += side.bias[entities.index]
    n = len(entities.ids)
    side.bias[:] = _draw_bias(entities.index, n, entities.counts, residual, alpha, side.bias_precision, rng)
    residual -= side.bias[entities.index]
    side.bias_precision = float(rng.gamma(_GAMMA_SHAPE + n / 2, 1.0 / (_GAMMA_RATE + 0.5 * side.bias @ side.bias)))


class _Grams(NamedTuple):
    """Per entity, over its ratings: Σ f fᵀ of the other side's vectors f (`outer`, packed:
    the lower triangle row by row, as movielens_als.bpmf_kernels keeps it) and
    Σ f·(target − x_e·f) with the entity's new factors x_e (`linear`), what its implicit term's
    draw reads."""

    outer: np.ndarray
    linear: np.ndarray


def _draw_side(
    side: _SideDraw,
    entities: _Entities,
    other_vectors: np.ndarray,
    target: np.ndarray,
    alpha: float,
    rng: np.random.Generator,
    pool: ThreadPoolExecutor,
) -> None:
    """The side's factors, then its implicit vectors, each given the rest; `other_vectors` are
    the other side's vectors, `target` the ratings less μ and the biases. The factors are
    conditionally independent given the other side, so the blocks are drawn in parallel, each
    from its slice of noise drawn beforehand: the same draws whatever the number of threads."""
    target = _kernels().gather(target, entities.order)
    prior = _normal_wishart(side.factors, rng)
    noise = rng.standard_normal(side.factors.shape)
    stream = int(rng.integers(2**63))
    grams = _Grams(np.empty((len(entities.ids), RANK * (RANK + 1) // 2)), np.empty((len(entities.ids), RANK)))

    def draw(block: _Block) -> None:
        perturbation = np.random.default_rng((stream, block.lo)).standard_normal(block.rows.stop - block.rows.start)
        perturbed = target[block.rows] + perturbation / np.sqrt(alpha)
        _draw_block(block, side, entities, other_vectors, target, perturbed, alpha, prior, noise, grams)

    list(pool.map(draw, entities.blocks))
    implicit_prior = _normal_wishart(side.implicit, rng)
    side.implicit = _draw_implicit(side.implicit, *grams, entities, alpha, implicit_prior, rng)
    side.implicit_sum = entities.neighbours @ side.implicit


def _draw_block(
    block: _Block,
    side: _SideDraw,
    entities: _Entities,
    other_vectors: np.ndarray,
    target: np.ndarray,
    perturbed: np.ndarray,
    alpha: float,
    prior: _Prior,
    noise: np.ndarray,
    grams: _Grams,
) -> None:
    """The factors of the block's entities given the other side's vectors f of their ratings
    (precision Λ + α Σ f fᵀ, mean from Λμ + α Σ f·(target − f·implicit term)), and the block's
    share of `grams`, all in place. The sums over ratings are compiled loops (bpmf_kernels)."""
    rows, span = block.rows, slice(block.lo, block.hi)
    outer, linear = grams.outer[span], np.empty((block.hi - block.lo, RANK))
    other = entities.other_index[rows]
    _kernels().gram_sums(other_vectors, other, block.starts, target[rows], side.implicit_sum[span], outer, linear)
    factors, prior_linear = side.factors[span], prior.precision @ prior.mean
    _kernels().draw_gaussians(prior.precision, prior_linear, alpha, outer, linear, noise[span], factors)
    _kernels().linear_sums(other_vectors, other, block.starts, perturbed, factors, grams.linear[span])


class _Posterior:
    """The chain's draws past the burn-in: the running sums of μ and the biases (every sweep),
    the side vectors of evenly spaced sweeps (at most MAX_SAMPLES), and with validation ratings
    the running mean's RMSE on them (the curve)."""

    def __init__(self, sweeps: int, first: int, users: _Entities, items: _Entities, tracker: _Validation | None):
        self.sweeps, self.first, self.users, self.items, self.tracker = sweeps, first, users, items, tracker
        self.kept = 0
        # Thinned by the most sweeps the chain may run: a chain stopped early keeps fewer.
        thin = max(1, -(-(sweeps - first) // MAX_SAMPLES))
        self.sampled = [s for s in range(self.first, sweeps) if (sweeps - 1 - s) % thin == 0]
        self.user_vectors: list[np.ndarray] = []
        self.item_vectors: list[np.ndarray] = []
        self.mean_total, self.user_bias_total, self.item_bias_total = (
            0.0,
            np.zeros(len(users.ids)),
            np.zeros(len(items.ids)),
        )
        self.curve: list[dict] = []
        # The last sweep whose RMSE fell by STOP_TOLERANCE below the one before it that did
        # (`improved`, at `reference`).
        self.improved, self.reference = 0, np.inf

    def add(self, sweep: int, state: _ChainState) -> float | None:
        """Counts sweep `sweep`'s draw if it is past the burn-in; the running mean's validation
        RMSE when it is and validation ratings are tracked, else None."""
        if sweep < self.first:
            return None
        self.kept += 1
        self.mean_total += state.mean
        self.user_bias_total += state.users.bias
        self.item_bias_total += state.items.bias
        user_side, item_side = state.users.vectors, state.items.vectors
        if sweep in self.sampled:
            self.user_vectors.append(user_side.astype(np.float32))
            self.item_vectors.append(item_side.astype(np.float32))
        if self.tracker is None:
            return None
        rmse = self.tracker.add(state.mean, state.users.bias, state.items.bias, user_side, item_side)
        self.curve.append({"sweep": sweep + 1, "validation_rmse": round(rmse, 6)})
        if rmse <= self.reference - STOP_TOLERANCE or self.reference == np.inf:
            self.improved, self.reference = sweep + 1, rmse
        return rmse

    def stop(self, done: int) -> bool:
        """Whether the chain stops after `done` sweeps: with validation ratings, when the running
        mean's RMSE has not fallen by STOP_TOLERANCE below its best for STOP_PATIENCE sweeps."""
        return self.tracker is not None and done > self.first and done - self.improved >= STOP_PATIENCE

    def fit(self, rating_scale: tuple[float, float], done: int) -> Fit:
        """The posterior-mean model: the biases averaged, the sampled side vectors side by side."""
        scale = 1.0 / np.sqrt(len(self.user_vectors))
        users, items = self.users, self.items
        model = Model(
            global_mean=self.mean_total / self.kept,
            users=Side(users.ids, np.hstack(self.user_vectors) * scale, self.user_bias_total / self.kept, users.counts),
            items=Side(items.ids, np.hstack(self.item_vectors) * scale, self.item_bias_total / self.kept, items.counts),
            rating_scale=rating_scale,
        )
        return Fit(model, self.curve, len(self.user_vectors), done, self.first, done)


def _unique(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids, index = np.unique(values, return_inverse=True)
    return ids, index.astype(np.int32)


def fit(
    train: Ratings,
    *,
    sweeps: int,
    seed: int,
    rating_scale: tuple[float, float],
    burn_in: int | None = None,
    validation: Ratings | None = None,
    on_sweep: Callable[[int, int, float | None], None] | None = None,
    workers: int | None = None,
) -> Fit:
    """The posterior-mean model of `train` after `sweeps` Gibbs sweeps, the first `burn_in`
    (default: burn_in(sweeps)) not counted. With `validation`, the running mean's RMSE on it is
    tracked (the curve) and `sweeps` is the most: the chain stops early when it stops falling
    (STOP_TOLERANCE, STOP_PATIENCE), and Fit.chosen, Fit.burn_in are what to replay on all the
    ratings without validation. `on_sweep(done, sweeps, rmse)` is told after each sweep. The
    factors are drawn on `workers` threads (default: every core this process may use); the fit
    is the same for a seed whatever their number."""
    first = _default_burn_in(sweeps) if burn_in is None else burn_in
    if not 0 <= first < sweeps:
        raise ValueError(f"burn-in {first} must be at least 0 and fewer than the {sweeps} sweeps")
    rng = np.random.default_rng(seed)
    # Rows as int32, which holds any release's users and items: each index array is one
    # rating long (at 32 M ratings, 128 MiB saved on each of the six).
    user_ids, user_index = _unique(train.users)
    item_ids, item_index = _unique(train.items)
    users = _Entities.of(user_ids, user_index, item_index, len(item_ids))
    items = _Entities.of(item_ids, item_index, user_index, len(user_ids))
    ratings = np.asarray(train.ratings, dtype=np.float64)
    state = _start(users, items, ratings, rng)
    tracker = _Validation(validation, user_ids, item_ids, rating_scale) if validation is not None else None
    posterior = _Posterior(sweeps, first, users, items, tracker)
    done = 0
    numba_threads = _kernels().threads(workers or threads())
    try:
        with ThreadPoolExecutor(workers or threads()) as pool:
            while done < sweeps and not posterior.stop(done):
                _sweep(state, users, items, ratings, rng, pool)
                rmse = posterior.add(done, state)
                done += 1
                if on_sweep is not None:
                    on_sweep(done, sweeps, rmse)
    finally:
        _kernels().threads(numba_threads)
    return posterior.fit(rating_scale, done)


def describe(fitted: Fit, rating_scale: tuple[float, float], sweeps: int, **record) -> dict:
    """model.json of a Bayesian model: what movielens_als.model reads to score it, and how it
    was sampled."""
    return {
        "model": "bpmf",
        "formula": FORMULA,
        "global_mean": fitted.model.global_mean,
        "calibration": None,
        "rating_scale": list(rating_scale),
        "bpmf": {
            "rank": RANK,
            "sweeps": sweeps,
            "burn_in": fitted.burn_in,
            "samples_side_by_side": fitted.samples,
            "priors": PRIORS,
        },
        **record,
    }
