"""Seconds per sweep of the Bayesian rating model (movielens_als.bpmf) on generated ratings of a
release's shape, and the process's peak memory: what --tuned's ValidatedBPMF and TrainedBPMF
cost at scale, with BLAS on one thread as the pipeline runs it and the sampler's own threads
(every core, or --workers). CPU time / wall time of the sweeps shows how many cores they kept busy.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python -m bench.bpmf_sweep --ratings 10000000 --users 69878 --items 10677
"""

from __future__ import annotations

import itertools
import resource
import statistics
import time

from bench.harness import argument_parser, machine
from movielens_als import bpmf
from movielens_als.ratings import Ratings
from movielens_als.synthetic import synthetic_ratings


def main() -> None:
    parser = argument_parser("bench.bpmf_sweep", __doc__)
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=6_040)
    parser.add_argument("--items", type=int, default=3_706)
    parser.add_argument("--sweeps", type=int, default=4)
    parser.add_argument("--workers", type=int, default=None, help="the sampler's threads (default: every core)")
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    table = synthetic_ratings(args.ratings, args.users, args.items, seed=1)
    ratings = Ratings(*(table.column(i).to_numpy() for i in range(2)), table.column(2).to_numpy().astype(float))
    del table
    ends: list[tuple[float, float]] = []

    def clocks(*_) -> None:
        ends.append((time.perf_counter(), time.process_time()))

    clocks()
    bpmf.fit(ratings, sweeps=args.sweeps, seed=1, rating_scale=(0.5, 5.0), on_sweep=clocks, workers=args.workers)
    per_sweep = statistics.median(b[0] - a[0] for a, b in itertools.pairwise(ends))
    # The first sweep's interval also holds the setup (sorting, the sparse matrices), so the
    # ratio is of the sweeps after it.
    cpu_per_wall = (ends[-1][1] - ends[1][1]) / (ends[-1][0] - ends[1][0]) if len(ends) > 2 else float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.ratings:,} ratings ({args.users:,} × {args.items:,}): {per_sweep:.2f} s per sweep "
        f"(median of {args.sweeps}); {bpmf.SWEEPS} sweeps ≈ {bpmf.SWEEPS * per_sweep / 60:.0f} min per fit; "
        f"peak {peak:,.0f} MiB; CPU time / wall time {cpu_per_wall:.2f}"
    )


if __name__ == "__main__":
    main()
