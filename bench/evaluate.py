"""EvaluatedRMSE's work, `metrics.evaluate` on a stored split and model, timed under this
checkout's code and under another's, alternating, and checked to give the same metrics.

    git worktree add ../before <commit>
    .venv/bin/python -m bench.evaluate --zip path/to/25m/ml-25m.zip --tree before=../before [--runs 2]

Run from the repository's root; the zip's name says which release it is (a generated
ml-25m.zip has ml-25m's layout), and a local HTTP mirror serves it. The `EvaluatedRMSE` chain
runs once on an empty store, with the repository's luigi.cfg settings; then each run times,
in a fresh Python process per tree, reading the split's train and test and the model from
that store and `metrics.evaluate` of them, as EvaluatedRMSE does (a tree whose `evaluate`
takes `biases_of_train` gets it, as EvaluatedRMSE gives it for an ALS model). Prints the
machine and a Markdown row: the median seconds of each tree, the speed-up, and whether every
tree's metrics are the same, value for value.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

from bench.harness import REPO, Release, argument_parser, luigi_config, machine, mirror, run, run_luigi, write_config

# What each tree runs: read as EvaluatedRMSE does, evaluate, print the seconds and the metrics.
EVALUATE = """
import inspect, json, sys, time
from movielens_als import metrics, model
from storage import Store
store, run, split = Store.at(sys.argv[1]), sys.argv[2], sys.argv[3]
started = time.perf_counter()
fitted = model.from_files(store.read_files(f"models/{run}", model.FILES))
train, test = store.read_parquet(f"splits/{split}/train.parquet"), store.read_parquet(f"splits/{split}/test.parquet")
read = time.perf_counter() - started
options = {"biases_of_train": True} if "biases_of_train" in inspect.signature(metrics.evaluate).parameters else {}
started = time.perf_counter()
result = metrics.evaluate(fitted, train, test, 42, **options)
print(json.dumps({"read": read, "evaluate": time.perf_counter() - started, "metrics": result}))
"""


def main() -> None:
    parser = argument_parser("bench.evaluate", __doc__)
    parser.add_argument("--zip", type=Path, required=True)
    parser.add_argument("--tree", action="append", default=[], metavar="NAME=PATH", help="another checkout to time")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    trees = {"this": REPO} | {name: Path(path).resolve() for name, path in (t.split("=", 1) for t in args.tree)}
    release = Release.at(args.zip)
    seconds: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="evaluate-") as tmp, mirror(release) as base_url:
        scratch = Path(tmp)
        store = scratch / "store"
        run_luigi(
            "EvaluatedRMSE",
            write_config(luigi_config(release, base_url, store), scratch / "luigi.cfg"),
            release.name,
            scratch,
        )
        [model_json] = store.glob("models/*/*/*/model.json")
        model_run = str(model_json.parent.relative_to(store / "models"))
        split = str(Path(model_run).parent)
        for number in range(args.runs):
            for name, tree in trees.items() if number % 2 == 0 else reversed(trees.items()):
                _, out, _ = run(
                    f"evaluate under {name}",
                    [sys.executable, "-c", EVALUATE, str(store), model_run, split],
                    scratch,
                    {"PYTHONPATH": str(tree)},
                )
                line = json.loads(out.splitlines()[-1])
                seconds[name].append((line["read"], line["evaluate"]))
                results[name] = line["metrics"]
    same = all(result == results["this"] for result in results.values())
    print(f"\n{release.name} from {args.zip}, {args.runs} alternating runs\nMachine: {machine()}\n")
    print("| code | read: split and model | `metrics.evaluate` | its time against this tree's | runs |")
    print("|---|---|---|---|---|")
    base = statistics.median(e for _, e in seconds["this"])
    for name, runs in seconds.items():
        read, evaluate = statistics.median(r for r, _ in runs), statistics.median(e for _, e in runs)
        listed = "; ".join(f"{e:.1f}" for _, e in runs)
        print(f"| {name} | {read:.1f} s | {evaluate:.1f} s | {evaluate / base:.2f}× | {listed} |")
    print(f"\nThe same metrics under every tree: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
