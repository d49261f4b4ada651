"""The two numpy kernels every scoring task leans on, against what they replaced, on arrays of
a generated release's shape: `distinct` (ids counted, not sorted) against np.unique with
return_inverse, and `top_k` (each row's k-th best bounded from a sample of its columns)
against a partial sort of the whole row and against its former sample (64 × k columns at any
width; now about 3.3 · sqrt(k · n) of n). Each pair must give the same answer; the script checks.

    .venv/bin/python -m bench.kernels [--ratings 8000000] [--users 69878] [--items 10677] [--repeats 5]

Prints the machine and a Markdown table of medians, alternating the two sides of each pair.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from bench.harness import argument_parser, machine
from movielens_als.arrays import distinct
from movielens_als.ranking import top_k

K = 10


def top_k_full_sort(scores: np.ndarray, k: int) -> np.ndarray:
    """top_k as it was: a partial sort of every whole row."""
    n_rows, n_cols = scores.shape
    k_eff = min(k, n_cols)
    kth = -np.partition(-scores, k_eff - 1, axis=1)[:, k_eff - 1 : k_eff]
    rows, cols = np.nonzero((scores >= kth) & np.isfinite(scores))
    order = np.lexsort((cols, -scores[rows, cols], rows))
    rows, cols = rows[order], cols[order]
    position = np.arange(len(rows)) - np.searchsorted(rows, rows)
    keep = position < k
    top = np.full((n_rows, k), -1, dtype=np.int64)
    top[rows[keep], position[keep]] = cols[keep]
    return top


def top_k_sample_64(scores: np.ndarray, k: int) -> np.ndarray:
    """top_k with its former sample: every step-th column, about 64 × k of them, at any width."""
    return top_k(scores, k, sample_step=max(1, scores.shape[1] // (64 * min(k, scores.shape[1]))))


def timed(function, *args) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def compare(name: str, new, old, args: tuple, repeats: int, same) -> str:
    seconds: dict[str, list[float]] = {"new": [], "old": []}
    for _ in range(repeats):
        t_new, r_new = timed(new, *args)
        t_old, r_old = timed(old, *args)
        if not same(r_new, r_old):
            raise SystemExit(f"{name}: the two sides disagree")
        seconds["new"].append(t_new)
        seconds["old"].append(t_old)
    new_s, old_s = statistics.median(seconds["new"]), statistics.median(seconds["old"])
    return f"| {name} | {old_s * 1000:.1f} ms | {new_s * 1000:.1f} ms | **{old_s / new_s:.1f}×** |"


def main() -> None:
    parser = argument_parser("bench.kernels", __doc__)
    parser.add_argument("--ratings", type=int, default=8_000_000, help="training ratings (80%% of 10 M)")
    parser.add_argument("--users", type=int, default=69_878)
    parser.add_argument("--items", type=int, default=10_677)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(42)
    # Ids as the releases number them: from 1, some unused, in no order; items drawn by popularity.
    user_ids = np.sort(rng.choice(np.arange(1, args.users * 2), args.users, replace=False)).astype(np.int32)
    item_ids = np.sort(rng.choice(np.arange(1, args.items * 20), args.items, replace=False)).astype(np.int32)
    popularity = rng.zipf(1.3, args.items).astype(float)
    users = user_ids[rng.integers(0, args.users, args.ratings)]
    items = item_ids[rng.choice(args.items, args.ratings, p=popularity / popularity.sum())]

    def same_unique(a, b):
        return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))

    def unique(values):
        return np.unique(values, return_inverse=True)

    # A block of users' scores as the rating model gives them (factors' dot products), with
    # what each has seen at -inf, and the same for TunedEASE's 2,048 items.
    block = 4_000_000 // args.items
    factors = rng.normal(size=(args.items, 32)).astype(np.float32)
    scores = (rng.normal(size=(block, 32)).astype(np.float32) @ factors.T).astype(np.float64)
    scores[rng.random(scores.shape) < 0.02] = -np.inf
    narrow = scores[:, :2048].copy()

    rows = [
        compare(
            f"distinct: the {side} of {args.ratings:,} ratings", distinct, unique, (ids,), args.repeats, same_unique
        )
        for side, ids in (("items", items), ("users", users))
    ]
    for name, matrix in ((f"{args.items:,} items", scores), ("2,048 items", narrow)):
        for before, old in (("a partial sort of each whole row", top_k_full_sort), ("64 × k", top_k_sample_64)):
            rows.append(
                compare(
                    f"top_k, k = {K}: a block of {len(matrix):,} users × {name}; before: {before}",
                    top_k,
                    old,
                    (matrix, K),
                    args.repeats,
                    np.array_equal,
                )
            )
    print(f"\nMachine: {machine()}\n")
    print("| kernel | before | now | **speed-up** |")
    print("|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
