"""The project's commands.

`movielens-als [luigi options] [EvaluatedRMSE parameters]` runs the pipeline like
`luigi --module pipeline EvaluatedRMSE ...`, then says where metrics.json is and what the
RMSE is. When another worker is running tasks this run needs (a concurrent run against the
same luigid, or the same command on this host), plain `luigi` exits at once with code 10 (or
25, see _held_by_another_worker); this command waits for them and succeeds if metrics.json
exists at the end.

`movielens-als-cron [--log-file F] [--lock-file F] [...]` is the same for cron: it logs to a
file, refuses to overlap a previous run of itself, and returns the pipeline's exit code.

`movielens-als-clean (--dataset NAME ... | --all) [--yes]` removes the pipeline's outputs.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import luigi.interface
import luigi.retcodes
import luigi.task
from luigi.cmdline_parser import CmdlineParser
from luigi.rpc import RemoteScheduler

from movielens_als.releases import RELEASES
from pipeline import layout
from pipeline.config import configured_store

HELP_FLAGS = {"-h", "--help", "--help-all"}
WAIT_SECONDS = 5


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    luigi_args = ["--module", "pipeline", "EvaluatedRMSE", *args]
    if HELP_FLAGS & set(args):
        return _run_luigi(luigi_args)
    while True:
        code = _run_luigi(luigi_args)
        with CmdlineParser.global_instance(luigi_args) as parser:
            evaluation = parser.get_task_obj()
            if evaluation.complete():
                store = configured_store()
                metrics = store.read_json(evaluation.key)
                break
            codes = luigi.retcodes.retcode()
            url = _scheduler_url()
            waiting = code == codes.already_running or (
                code == codes.not_run and url is not None and _held_by_another_worker(evaluation, RemoteScheduler(url))
            )
        if not waiting:
            return code or codes.not_run
        # Another worker (of luigid, or another command on this host) runs tasks this run needs.
        print(f"another worker is running tasks this run needs; checking again in {WAIT_SECONDS} s", file=sys.stderr)
        time.sleep(WAIT_SECONDS)
    print(f"metrics.json: {store.uri(evaluation.key)}")
    print(
        f"RMSE {metrics['rmse']:.4f} on {metrics['n_test']} test ratings: "
        f"{metrics['improvement_over_bias']:.1%} below the user+item bias baseline "
        f"({metrics['baselines']['bias']['rmse']:.4f}; global mean {metrics['baselines']['global_mean']['rmse']:.4f})"
    )
    return 0


def _scheduler_url() -> str | None:
    """luigid's URL as this command line and luigi.cfg give it; None with --local-scheduler."""
    core = luigi.interface.core()
    if core.local_scheduler:
        return None
    return core.scheduler_url or f"http://{core.scheduler_host}:{core.scheduler_port}/"


def _held_by_another_worker(task: luigi.Task, scheduler: Any) -> bool:
    """Whether another live worker of luigid will run a task this run needs: one it is running,
    or one it has scheduled and not yet started (between two of its tasks nothing is running).
    Plain luigi exits 10 while another worker runs such a task, but 25 once the task's output
    exists and its worker has not yet told luigid it is done (for TrainedALS, the seconds Spark
    takes to shut down): luigid then schedules nothing after it for this run. `scheduler` is a
    luigi RemoteScheduler, typed Any: its RPC methods are generated, invisible to mypy."""
    needed = _needed_task_ids(task)
    if not needed.isdisjoint(scheduler.task_list("RUNNING", "")):
        return True
    # This process's own workers (one per pass of luigi) are still luigid's until they time out.
    ours = {
        worker["name"]
        for worker in scheduler.worker_list(include_running=False)
        if worker.get("pid") == os.getpid() and worker.get("host") == socket.gethostname()
    }
    pending = scheduler.task_list("PENDING", "")
    return any(set(pending[task_id]["workers"]) - ours for task_id in needed & pending.keys())


def _needed_task_ids(task: luigi.Task) -> set[str]:
    ids, pending = set(), [task]
    while pending:
        current = pending.pop()
        if current.task_id not in ids:
            ids.add(current.task_id)
            pending.extend(luigi.task.flatten(current.requires()))
    return ids


def _run_luigi(luigi_args: list[str]) -> int:
    try:
        luigi.retcodes.run_with_retcodes(luigi_args)
    except SystemExit as finished:
        return finished.code if isinstance(finished.code, int) else 1
    return 0


def cron_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run the pipeline from cron against the central scheduler: one run at a time, logged to a file. "
        "Other arguments go to movielens-als.",
    )
    parser.add_argument("--log-file", type=Path, default=Path("logs/movielens-als-cron.log"))
    parser.add_argument("--lock-file", type=Path, default=Path("logs/movielens-als-cron.lock"))
    options, pipeline_args = parser.parse_known_args(argv)
    options.log_file.parent.mkdir(parents=True, exist_ok=True)
    options.lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(options.log_file, "a") as log, open(options.lock_file, "a+") as lock:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"{stamp} a previous run still holds {options.lock_file}; not starting", file=log, flush=True)
            return luigi.retcodes.retcode().already_running
        print(f"{stamp} starting: movielens-als {' '.join(pipeline_args)}", file=log, flush=True)
        code = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", *pipeline_args], stdout=log, stderr=subprocess.STDOUT, check=False
        ).returncode
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        print(f"{stamp} finished with exit code {code}", file=log, flush=True)
    return code


def clean_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Remove the pipeline's outputs from the store: those of some datasets, or all of them. "
        f"Nothing outside {', '.join(f'{root}/' for root in layout.OUTPUT_ROOTS)} under the store root is touched.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--dataset", nargs="+", choices=sorted(RELEASES), metavar="NAME", help="e.g. ml-latest-small")
    which.add_argument("--all", action="store_true", help="every dataset")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    args = parser.parse_args(argv)

    store = configured_store()
    if args.all:
        prefixes = [f"{root}/" for root in layout.OUTPUT_ROOTS]
    else:
        prefixes = [prefix for dataset in args.dataset for prefix in layout.dataset_prefixes(dataset)]
    found = {prefix: store.list_files(prefix) for prefix in prefixes}
    n_files = sum(len(files) for files in found.values())
    if not n_files:
        print(f"nothing to remove under {store.root}")
        return 0
    size = sum(s for files in found.values() for _, s in files)
    print(f"{n_files} files ({size / 1e6:.1f} MB) under {store.root}:")
    for prefix, files in found.items():
        if files:
            print(f"  {prefix}  ({len(files)} files)")
    if not args.yes:
        if not sys.stdin.isatty():
            print("not removing anything: confirm on a terminal, or pass --yes", file=sys.stderr)
            return 1
        if input("Remove them? [y/N] ").strip().lower() not in {"y", "yes"}:
            print("nothing removed")
            return 1
    for prefix in prefixes:
        store.delete(prefix)
    print(f"removed {n_files} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
