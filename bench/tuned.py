"""`EvaluatedRMSE --tuned` against the default `EvaluatedRMSE` chain, each from an empty store,
side by side in one run: wall time and the ratio (issue 30: ≤ 4×), each task's seconds, CPU
time over wall time (the cores it kept busy) and its driver's peaks; then, in the tuned chain's
store, TunedALS's best alone (`--tuned --bpmf-sweeps 0`), so the three test RMSEs (default,
TunedALS's best, `--tuned`'s choice) are on the same test ratings.

    .venv/bin/movielens-als-generate --ratings 10000000 --users 69878 --items 10677 path/to/10m/ml-25m.zip
    .venv/bin/python -m bench.tuned --zip path/to/10m/ml-25m.zip

Run from the repository's root, with the repository's luigi.cfg (or the file LUIGI_CONFIG_PATH
names) and nothing else set; the release is the one the zip's name says, served by a local HTTP
mirror, so each chain downloads, splits and fits. Arguments after `--` go to every run.
Prints the machine and Markdown tables.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from bench.harness import SMALL_ZIP, Release, argument_parser, luigi_config, machine, mirror, run_luigi, write_config

# The tuned chain's tasks, in the order they run (SplitData and DownloadedZip are the default's too).
TASKS = ("DownloadedZip", "SplitData", "TunedALS", "ValidatedBPMF", "TrainedBPMF", "TrainedALS", "EvaluatedRMSE")


def main() -> None:
    parser = argument_parser("bench.tuned", __doc__)
    parser.add_argument("--zip", type=Path, default=SMALL_ZIP)
    parser.add_argument(
        "--no-alone", dest="alone", action="store_false", help="skip TunedALS's best alone (a TrainedALS at scale)"
    )
    parser.add_argument("luigi_args", nargs="*", help="passed to every run, after --")
    args = parser.parse_args()
    release = Release.at(args.zip)
    print(f"Machine: {machine()}\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="tuned-") as tmp, mirror(release) as base_url:
        scratch = Path(tmp)
        runs, stores = {}, {}
        for name, options in (("default", ()), ("tuned", ("--tuned",))):
            stores[name] = scratch / f"store-{name}"
            config = write_config(luigi_config(release, base_url, stores[name]), scratch / f"{name}.cfg")
            runs[name] = run_luigi("EvaluatedRMSE", config, release.name, scratch, *options, *args.luigi_args)
            print(f"{name}: {runs[name]['seconds']:.1f} s", file=sys.stderr, flush=True)
        alone = (
            run_luigi(
                "EvaluatedRMSE",
                scratch / "tuned.cfg",
                release.name,
                scratch,
                "--tuned",
                "--bpmf-sweeps",
                "0",
                *args.luigi_args,
            )
            if args.alone
            else None
        )
        rmse = {
            "default": metrics(stores["default"], "*/metrics.json"),
            **(
                {"TunedALS's best alone": metrics(stores["tuned"], "*-tuned-grid-????????/metrics.json")}
                if alone
                else {}
            ),
            "--tuned": metrics(stores["tuned"], "*-or-bpmf-*/metrics.json"),
        }
        [tuning] = stores["tuned"].glob("tuning/*/*/*-grid-*/tuning.json")
        [validation] = stores["tuned"].glob("tuning/*/*/bpmf-*/validation.json")
        searched = describe_search(json.loads(tuning.read_text()), json.loads(validation.read_text()))
    report(release.name, args.zip, runs, alone, rmse)
    print(f"\n{searched}")


def describe_search(tuning: dict, validation: dict) -> str:
    """What TunedALS and ValidatedBPMF did: the candidates, the sample, the sweeps."""
    best, sample = tuning["best"], tuning["validation"].get("sample")
    on = f"{sample['ratings']:,} of {sample['of_ratings']:,} training ratings" if sample else "all training ratings"
    return (
        f"TunedALS: {len(tuning['candidates'])} candidates on the validation carve of {on}; best rank "
        f"{best['rank']}, regParam {best['reg_param']}, {best['max_iter']} iterations. ValidatedBPMF: stopped "
        f"at sweep {validation['stopped_at']} of at most {validation['sweeps']}, chose {validation['sweeps_chosen']} "
        f"(burn-in {validation['burn_in']})."
    )


def metrics(store: Path, pattern: str) -> dict:
    [path] = store.glob(f"evaluations/*/*/{pattern}")
    return json.loads(path.read_text())


def report(dataset: str, zip_path: Path, runs: dict[str, dict], alone: dict | None, rmse: dict[str, dict]) -> None:
    default, tuned = runs["default"]["seconds"], runs["tuned"]["seconds"]
    print(f"\n{dataset} ({zip_path}), each chain from an empty store\n")
    print("| chain | wall time | **--tuned / default** | luigi worker peak |\n|---|---|---|---|")
    print(f"| EvaluatedRMSE | {default:.1f} s | | {runs['default']['worker_memory']:,} MiB |")
    worker = runs["tuned"]["worker_memory"]
    print(f"| EvaluatedRMSE --tuned | {tuned:.1f} s | **{tuned / default:.2f}×** | {worker:,} MiB |")
    print("\n| task | default: s | --tuned: s | CPU / wall | driver peak, JVM / Python |\n|---|---|---|---|---|")
    details = runs["tuned"]["task_details"]
    for task in TASKS:
        mine, theirs = details.get(task), runs["default"]["task_details"].get(task)
        if mine is None and theirs is None:
            continue
        own = (
            f"{mine['seconds']:.1f} | {mine['cpu'] / max(mine['seconds'], 1e-9):.2f} | "
            f"{mine['jvm']:,} / {mine['python']:,} MiB"
            if mine
            else "not run (the other model was chosen) | | "
        )
        print(f"| {task} | {theirs['seconds']:.1f} |" if theirs else f"| {task} | |", own, "|")
    if alone:
        print(f"\nTunedALS's best alone (`--tuned --bpmf-sweeps 0`, reusing TunedALS): {alone['seconds']:.1f} s")
    print("\n| model | test RMSE | model | chosen on validation |\n|---|---|---|---|")
    for name, result in rmse.items():
        choice = result.get("choice", {})
        scores = ", ".join(f"{m} {v:.4f}" for m, v in choice.get("validation_rmse", {}).items())
        print(f"| {name} | {result['rmse']:.4f} | {Path(result['model']).name} | {scores} |")


if __name__ == "__main__":
    main()
