"""Seconds per sweep of the Bayesian rating model (movielens_als.bpmf) on generated ratings of a
release's shape, and the process's peak memory: what --tuned's ValidatedBPMF and TrainedBPMF
cost at scale, with BLAS on one thread as the pipeline runs it and the sampler's own threads
(every core, or --workers). CPU time / wall time of the sweeps shows how many cores they kept busy.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python -m bench.bpmf_sweep --ratings 10000000 --users 69878 --items 10677

or on a release zip (a `movielens-als-generate` one, whose popularity is long-tailed as
MovieLens's is), fitted on four fifths of its ratings as SplitData's default would leave:

    OPENBLAS_NUM_THREADS=1 .venv/bin/python -m bench.bpmf_sweep --zip path/to/10m/ml-25m.zip --sweeps 20

The per-sweep figure is the median of the second half of the sweeps: the conjugate gradients
take more iterations as the chain leaves its start, about the most by the tenth sweep.
"""

from __future__ import annotations

import itertools
import resource
import statistics
import time
import zipfile
from pathlib import Path

import numpy as np

from bench.harness import argument_parser, machine
from movielens_als import bpmf
from movielens_als.ratings import Ratings, rating_arrays
from movielens_als.releases import read_ratings, release
from movielens_als.synthetic import synthetic_ratings


def zip_ratings(path: Path) -> Ratings:
    """Four fifths of a release zip's ratings (every fifth rating left out)."""
    with zipfile.ZipFile(path) as archive:
        table, _ = read_ratings(archive, release(path.name.removesuffix(".zip")))
    return rating_arrays(table.filter(np.arange(table.num_rows) % 5 != 0))


def main() -> None:
    parser = argument_parser("bench.bpmf_sweep", __doc__)
    parser.add_argument("--ratings", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=6_040)
    parser.add_argument("--items", type=int, default=3_706)
    parser.add_argument("--sweeps", type=int, default=4)
    parser.add_argument("--workers", type=int, default=None, help="the sampler's threads (default: every core)")
    parser.add_argument("--zip", type=Path, default=None, help="a release zip's ratings instead of uniform ones")
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    if args.zip is not None:
        ratings = zip_ratings(args.zip)
        args.ratings, args.users, args.items = (len(ratings.ratings), len(set(ratings.users)), len(set(ratings.items)))
    else:
        table = synthetic_ratings(args.ratings, args.users, args.items, seed=1)
        ratings = Ratings(*(table.column(i).to_numpy() for i in range(2)), table.column(2).to_numpy().astype(float))
        del table
    ends: list[tuple[float, float]] = []

    def clocks(*_) -> None:
        ends.append((time.perf_counter(), time.process_time()))

    clocks()
    bpmf.fit(ratings, sweeps=args.sweeps, seed=1, rating_scale=(0.5, 5.0), on_sweep=clocks, workers=args.workers)
    steady = ends[len(ends) // 2 :]
    per_sweep = statistics.median(b[0] - a[0] for a, b in itertools.pairwise(steady if len(steady) > 1 else ends))
    # The first sweep's interval also holds the setup (sorting, the sparse matrices), so the
    # ratio is of the sweeps after it.
    cpu_per_wall = (ends[-1][1] - ends[1][1]) / (ends[-1][0] - ends[1][0]) if len(ends) > 2 else float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"{args.ratings:,} ratings ({args.users:,} × {args.items:,}): {per_sweep:.2f} s per sweep "
        f"(median of the last {max(1, len(steady) - 1)} of {args.sweeps}); "
        f"{bpmf.SWEEPS} sweeps ≈ {bpmf.SWEEPS * per_sweep / 60:.0f} min per fit; "
        f"peak {peak:,.0f} MiB; CPU time / wall time {cpu_per_wall:.2f}"
    )


if __name__ == "__main__":
    main()
