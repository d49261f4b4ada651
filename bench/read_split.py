"""Time to read and split a big release: SplitData's work, without luigi or a store.

    .venv/bin/python -m bench.read_split [--ratings 25000000] [--layouts ml-25m ml-10m ml-100k]

Run from the repository's root. For each layout (ratings.csv with a header; `::`
ratings.dat; tab-separated u.data) it writes a synthetic release zip of that many ratings
(162,541 users and 59,047 items, ml-25m's shape; not timed), then times reading the ratings
member out of the zip into Arrow (with validation and duplicate detection) and each split
strategy. Peak resident memory is that of the whole process. Prints the machine and a
Markdown table; then, for the first layout's user_random split, a second: its train and test
written as Parquet with pyarrow's defaults and as SplitData writes them (RATINGS_PARQUET),
and read back, and stats.json's distinct counts with Arrow's hashing and with
count_distinct, alternating, medians of three.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bench.harness import argument_parser, machine
from movielens_als.arrays import count_distinct
from movielens_als.columns import ITEM, USER
from movielens_als.releases import RELEASES, read_ratings
from movielens_als.split import RATINGS_PARQUET, STRATEGIES, split_ratings
from movielens_als.synthetic import synthetic_ratings, write_release


def main() -> None:
    parser = argument_parser("bench.read_split", __doc__)
    parser.add_argument("--ratings", type=int, default=25_000_000)
    parser.add_argument("--layouts", nargs="+", default=["ml-25m", "ml-10m", "ml-100k"], choices=sorted(RELEASES))
    args = parser.parse_args()

    print(f"Machine: {machine()}\n")
    print(f"| layout ({args.ratings:,} ratings) | zip MB | read + validate | " + " | ".join(STRATEGIES) + " |")
    print("|---" * (3 + len(STRATEGIES)) + "|")
    written: list[pa.Table] = []
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
                train_test = split_ratings(ratings, strategy, 0.2, seed=42)
                split_seconds.append(time.perf_counter() - started)
                if strategy == "user_random" and not written:
                    written.extend(train_test)
            size = path.stat().st_size / 1e6
        print(
            f"| {layout} (`{rel.ratings_member}`) | {size:.0f} | {read_seconds:.1f} s | "
            + " | ".join(f"{s:.1f} s" for s in split_seconds)
            + " |"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"\nPeak resident memory of the process: {peak:.1f} GiB")
    print_output_table(written)


def timed(function, *args) -> tuple[float, Any]:
    started = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - started, result


def print_output_table(tables: list[pa.Table]) -> None:
    """SplitData's output of `tables` (train, test) two ways: Parquet written and read back,
    and the distinct users and items counted."""
    ways = {"pyarrow's defaults": {}, "RATINGS_PARQUET": RATINGS_PARQUET}
    seconds: dict[str, list[tuple[float, float, int]]] = {way: [] for way in ways}
    counts: dict[str, list[float]] = {"Arrow's count_distinct": [], "count_distinct": []}
    for _ in range(3):
        for way, options in ways.items():
            write, files = timed(_write, tables, options)
            read, back = timed(_read, files)
            if back != tables:
                raise SystemExit(f"{way}: the tables read back differ")
            seconds[way].append((write, read, sum(len(f) for f in files)))
        arrow, by_arrow = timed(_distinct_counts, tables, lambda column: pc.count_distinct(column).as_py())
        ours, by_ours = timed(_distinct_counts, tables, lambda column: count_distinct(column.to_numpy()))
        if by_arrow != by_ours:
            raise SystemExit("the distinct counts differ")
        counts["Arrow's count_distinct"].append(arrow)
        counts["count_distinct"].append(ours)
    print(f"\n| the user_random split's train and test ({sum(t.num_rows for t in tables):,} ratings) | seconds | MB |")
    print("|---|---|---|")
    for way, runs in seconds.items():
        write, read, size = (statistics.median(column) for column in zip(*runs, strict=True))
        print(f"| Parquet, {way}: write / read | {write:.2f} / {read:.2f} | {size / 1e6:.0f} |")
    for way, runs in counts.items():
        print(f"| distinct users and items, {way} | {statistics.median(runs):.2f} | |")


def _write(tables: list[pa.Table], options: dict) -> list[pa.Buffer]:
    files = []
    for table in tables:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, **options)
        files.append(sink.getvalue())
    return files


def _read(files: list[pa.Buffer]) -> list[pa.Table]:
    return [pq.read_table(pa.BufferReader(f)) for f in files]


def _distinct_counts(tables: list[pa.Table], count) -> list[int]:
    return [count(table.column(name)) for table in tables for name in (USER, ITEM)]


if __name__ == "__main__":
    main()
