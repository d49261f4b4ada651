"""The runner's scheduler: runs the entries of a crontab file, in the foreground, as the
container's own (non-root) user and with the container's environment.

    python /app/docker/cron.py /app/docker/crontab

Each entry is `minute hour day-of-month month day-of-week command`. The five time fields are
read by cronsim, which reads them as Debian's cron does (lists, ranges, steps, names; when
both day fields are restricted either one matches), in UTC in the image. The command runs with
`sh -c`; an entry whose previous run has not finished is not started again. Debian's cron runs
its jobs as root with an emptied environment, and supercronic is a binary downloaded from
GitHub per architecture, which an air-gapped build cannot fetch; cronsim is a pure-Python
wheel pinned in docker/constraints.txt.
"""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cronsim import CronSim, CronSimError

STOP_GRACE_SECONDS = 30


class CrontabError(ValueError):
    pass


@dataclass(frozen=True)
class Entry:
    schedule: str  # the five time fields
    command: str

    def matches(self, when: dt.datetime) -> bool:
        """Whether the entry is due at the minute `when` (its seconds are 0)."""
        return next(CronSim(self.schedule, when - dt.timedelta(minutes=1)), None) == when


def parse_crontab(text: str) -> list[Entry]:
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(None, 5)
        if len(parts) < 6:
            raise CrontabError(f"line {number}: expected 5 time fields and a command, got {line!r}")
        schedule = " ".join(parts[:5])
        try:
            CronSim(schedule, dt.datetime.now(dt.UTC))
        except CronSimError as e:  # it names the field: "Bad minute", "Bad day-of-month", ...
            raise CrontabError(f"line {number}: {str(e).lower()} in {schedule!r}") from None
        entries.append(Entry(schedule, parts[5]))
    if not entries:
        raise CrontabError("the crontab has no entries")
    return entries


def log(message: str) -> None:
    print(f"{dt.datetime.now(dt.UTC).isoformat(timespec='seconds')} cron: {message}", flush=True)


def run(entries: list[Entry]) -> None:
    running: dict[int, subprocess.Popen] = {}
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"{len(entries)} entries; times are UTC")
    next_minute = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    while not stopping:
        # Wake at the next minute boundary (or sooner, to notice a signal and reap finished runs).
        time.sleep(max(0.0, min(1.0, (next_minute - dt.datetime.now(dt.UTC)).total_seconds())))
        for index, process in list(running.items()):
            if process.poll() is not None:
                log(f"entry {index + 1} finished with exit code {process.returncode}")
                del running[index]
        now = dt.datetime.now(dt.UTC)
        if stopping or now < next_minute:
            continue
        if now - next_minute >= dt.timedelta(minutes=1):
            # The clock jumped (or the host slept): cron does not run the missed minutes either.
            log(f"the clock moved from {next_minute:%H:%M} to {now:%H:%M}; skipping the minutes between")
            next_minute = now.replace(second=0, microsecond=0)
        for index, entry in enumerate(entries):
            if not entry.matches(next_minute):
                continue
            if index in running:
                log(f"entry {index + 1} is still running; not starting it again")
                continue
            log(f"starting entry {index + 1}: {entry.command}")
            running[index] = subprocess.Popen(["sh", "-c", entry.command])
        next_minute += dt.timedelta(minutes=1)
    for process in running.values():
        process.terminate()
    for process in running.values():
        try:
            process.wait(STOP_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the entries of a crontab file in the foreground.")
    parser.add_argument("crontab", type=Path)
    args = parser.parse_args(argv)
    try:
        entries = parse_crontab(args.crontab.read_text())
    except (OSError, CrontabError) as e:
        print(f"cron: {args.crontab}: {e}", file=sys.stderr)
        return 2
    run(entries)
    return 0


if __name__ == "__main__":
    sys.exit(main())
