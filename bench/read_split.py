"""Time to read and split a big release: SplitData's work, without luigi or a store.

    .venv/bin/python -m bench.read_split [--ratings 25000000] [--layouts ml-25m ml-10m ml-100k]

Run from the repository's root. For each layout (ratings.csv with a header; `::`
ratings.dat; tab-separated u.data) it writes a synthetic release zip of that many ratings
(162,541 users and 59,047 items, ml-25m's shape; not timed), then times reading the ratings
member out of the zip into Arrow (with validation and duplicate detection) and each split
strategy. Peak resident memory is that of the whole process. Prints the machine and a
Markdown table.
"""

from __future__ import annotations

import resource
import tempfile
import time
import zipfile
from pathlib import Path

from bench.harness import argument_parser, machine
from movielens_als.releases import RELEASES, read_ratings
from movielens_als.split import STRATEGIES, split_ratings
from movielens_als.synthetic import synthetic_ratings, write_release


def main() -> None:
    parser = argument_parser("bench.read_split", __doc__)
    parser.add_argument("--ratings", type=int, default=25_000_000)
    parser.add_argument("--layouts", nargs="+", default=["ml-25m", "ml-10m", "ml-100k"], choices=sorted(RELEASES))
    args = parser.parse_args()

    print(f"Machine: {machine()}\n")
    print(f"| layout ({args.ratings:,} ratings) | zip MB | read + validate | " + " | ".join(STRATEGIES) + " |")
    print("|---" * (3 + len(STRATEGIES)) + "|")
    for layout in args.layouts:
        rel = RELEASES[layout]
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{layout}.zip"
            write_release(synthetic_ratings(args.ratings, 162_541, 59_047, seed=1, step=rel.rating_step), path, layout)
            started = time.perf_counter()
            with zipfile.ZipFile(path) as archive:
                ratings, _ = read_ratings(archive, rel)
            read_seconds = time.perf_counter() - started
            split_seconds = []
            for strategy in STRATEGIES:
                started = time.perf_counter()
                split_ratings(ratings, strategy, 0.2, seed=42)
                split_seconds.append(time.perf_counter() - started)
            size = path.stat().st_size / 1e6
        print(
            f"| {layout} (`{rel.ratings_member}`) | {size:.0f} | {read_seconds:.1f} s | "
            + " | ".join(f"{s:.1f} s" for s in split_seconds)
            + " |"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"\nPeak resident memory of the process: {peak:.1f} GiB")


if __name__ == "__main__":
    main()
