"""pyarrow against pandas at SplitData's first step: reading a release's ratings out of its zip
into typed columns. Why the pipeline has no pandas.

    .venv/bin/pip install -e '.[bench]'   # pandas, for the comparison only; the pipeline does not need it
    .venv/bin/python -m bench.read_pandas [--ratings 25000000] [--repeats 3]

Run from the repository's root. Writes a synthetic ml-25m-layout zip of that many ratings
(not timed), then alternates, in one process: the pipeline's reader (`read_ratings`:
pyarrow's multi-threaded CSV parser, plus validation and duplicate detection), pyarrow's
parser alone, and pandas' `read_csv` with its C parser and explicit dtypes (no validation),
each reading the member from the zip. Prints the machine, the median seconds and, per reader,
the growth of the process's peak resident memory when it ran first (a fresh process per
reader).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from bench.harness import REPO, argument_parser, machine
from movielens_als.releases import RATINGS_SCHEMA, RELEASES, read_ratings
from movielens_als.synthetic import synthetic_ratings, write_release

LAYOUT = "ml-25m"
MEMBER = RELEASES[LAYOUT].ratings_member


def read_pipeline(path: Path) -> int:
    with zipfile.ZipFile(path) as archive:
        return read_ratings(archive, RELEASES[LAYOUT])[0].num_rows


def read_pyarrow(path: Path) -> int:
    with zipfile.ZipFile(path) as archive, archive.open(MEMBER) as member:
        table = pacsv.read_csv(
            member,
            read_options=pacsv.ReadOptions(column_names=RATINGS_SCHEMA.names, skip_rows=1),
            convert_options=pacsv.ConvertOptions(column_types=RATINGS_SCHEMA),
        )
    return table.num_rows


def read_pandas(path: Path) -> int:
    import pandas as pd

    with zipfile.ZipFile(path) as archive, archive.open(MEMBER) as member:
        frame = pd.read_csv(
            member,
            header=0,
            names=RATINGS_SCHEMA.names,
            dtype={"user": "int32", "item": "int32", "rating": "float32", "timestamp": "int64"},
            engine="c",
        )
    return len(frame)


READERS = {
    "pipeline (pyarrow + validation)": read_pipeline,
    "pyarrow parser": read_pyarrow,
    "pandas C parser": read_pandas,
}


def peak_growth_mib(reader: str, path: Path) -> float:
    """Peak resident memory a fresh process adds while the reader runs (imports excluded)."""
    # VmHWM, not getrusage's ru_maxrss, which Linux carries over from the parent through exec.
    code = f"""
import json, re, sys
sys.path.insert(0, {str(REPO)!r})
from bench.read_pandas import READERS
import pandas, pyarrow
from pathlib import Path
def peak():
    return int(re.search(r"VmHWM:\\s+(\\d+)", Path("/proc/self/status").read_text())[1])
before = peak()
READERS[{reader!r}](Path({str(path)!r}))
print(json.dumps((peak() - before) / 1024))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout)


def main() -> None:
    parser = argument_parser("bench.read_pandas", __doc__)
    parser.add_argument("--ratings", type=int, default=25_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    pa.set_cpu_count(pa.cpu_count())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{LAYOUT}.zip"
        write_release(synthetic_ratings(args.ratings, 162_541, 59_047, seed=1, step=0.5), path, LAYOUT)
        times: dict[str, list[float]] = {name: [] for name in READERS}
        for _ in range(args.repeats):
            for name, reader in READERS.items():
                started = time.perf_counter()
                assert reader(path) == args.ratings
                times[name].append(time.perf_counter() - started)
        memory = {name: peak_growth_mib(name, path) for name in READERS}
    pandas_median = statistics.median(times["pandas C parser"])
    print(f"Machine: {machine()}\n")
    header = f"reader ({args.ratings:,} ratings, median of {args.repeats})"
    print(f"| {header} | seconds | speed against pandas | peak memory added |")
    print("|---|---|---|---|")
    for name in READERS:
        median = statistics.median(times[name])
        print(f"| {name} | {median:.2f} | {pandas_median / median:.1f}× | {memory[name]:,.0f} MiB |")


if __name__ == "__main__":
    main()
