"""The whole `Report` chain (the rating model, the ranking model, their evaluations and the
report) against the `EvaluatedRMSE` chain alone, each from an empty store, alternating: wall
time, the ratio, each task's seconds, the largest peaks of their Spark drivers and the peak of
the luigi worker (which runs the tasks that are not Spark jobs).

    .venv/bin/python -m bench.chains [--runs 2] [--zip path/to/ml-latest-small.zip] [-- LUIGI ARGS]
    .venv/bin/movielens-als-generate --ratings 10000000 --users 69878 --items 10677 path/to/10m/ml-25m.zip
    .venv/bin/python -m bench.chains --runs 1 --zip path/to/10m/ml-25m.zip

Run from the repository's root, with the repository's luigi.cfg (or the file LUIGI_CONFIG_PATH
names) and nothing else set; the release is the one the zip's name says, served by a local
HTTP mirror, so each chain downloads, splits and fits. Arguments after `--` go to both chains
(e.g. `-- --workers 2`). Prints the machine and Markdown tables.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from bench.harness import SMALL_ZIP, Release, argument_parser, luigi_config, machine, mirror, run_luigi, write_config

CHAINS = ("EvaluatedRMSE", "Report")


def main() -> None:
    parser = argument_parser("bench.chains", __doc__)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--zip", type=Path, default=SMALL_ZIP)
    parser.add_argument("luigi_args", nargs="*", help="passed to both chains, after --")
    args = parser.parse_args()
    release = Release.at(args.zip)
    runs: dict[str, list[dict]] = {chain: [] for chain in CHAINS}
    with tempfile.TemporaryDirectory(prefix="chains-") as tmp, mirror(release) as base_url:
        scratch = Path(tmp)
        for number in range(args.runs):
            for chain in CHAINS:
                store = scratch / f"store-{chain}-{number}"
                config = write_config(luigi_config(release, base_url, store), scratch / f"{chain}-{number}.cfg")
                result = run_luigi(chain, config, release.name, scratch, *args.luigi_args)
                runs[chain].append(result)
                print(f"{chain}: {result['seconds']:.1f} s", file=sys.stderr)
    report(release.name, args, runs)


def report(dataset: str, args, runs: dict[str, list[dict]]) -> None:
    seconds = {chain: statistics.median(r["seconds"] for r in runs[chain]) for chain in CHAINS}
    extra = " ".join(args.luigi_args)
    print(f"\n{dataset} ({args.zip}), {args.runs} alternating runs of each chain {extra}\nMachine: {machine()}\n")
    print(
        "| chain | wall time (median) | **Report / EvaluatedRMSE** | largest driver peaks, JVM / Python "
        "| luigi worker peak |"
    )
    print("|---|---|---|---|---|")
    for chain in CHAINS:
        jvm = max(r["memory"][0] for r in runs[chain])
        python = max(r["memory"][1] for r in runs[chain])
        worker = max(r["worker_memory"] for r in runs[chain])
        ratio = f"**{seconds['Report'] / seconds['EvaluatedRMSE']:.2f}×**" if chain == "Report" else ""
        print(f"| {chain} | {seconds[chain]:.1f} s | {ratio} | {jvm:,} / {python:,} MiB | {worker:,} MiB |")
    tasks = list(dict.fromkeys(t for r in runs["Report"] for t in r["tasks"]))
    print("\n| task (the Report chain) | seconds (median) |\n|---|---|")
    for task in tasks:
        print(f"| {task} | {statistics.median(r['tasks'].get(task, 0.0) for r in runs['Report']):.1f} |")


if __name__ == "__main__":
    main()
