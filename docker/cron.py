"""The runner's scheduler: runs the entries of a crontab file, in the foreground, as the
container's own (non-root) user and with the container's environment.

    python /app/docker/cron.py /app/docker/crontab

Each entry is `minute hour day-of-month month day-of-week command`, with `*`, lists, ranges
and steps (`*/15`, `1-5`, `0,30`), read as cron reads them (UTC in the image; when both
days are restricted either one matches). The command runs with `sh -c`; an entry whose
previous run has not finished is not started again. The standard library is all it needs,
so it runs on every architecture the image builds for: Debian's cron runs its jobs as root
with an emptied environment, and supercronic is a binary downloaded from GitHub per
architecture, which an air-gapped build cannot fetch.
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

FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
STOP_GRACE_SECONDS = 30


class CrontabError(ValueError):
    pass


def parse_field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        spec, _, step_text = part.partition("/")
        try:
            step = int(step_text) if step_text else 1
            if spec == "*":
                first, last = low, high
            elif "-" in spec:
                first, last = (int(v) for v in spec.split("-", 1))
            else:
                first = last = int(spec)
        except ValueError:
            raise CrontabError(f"{name} field {text!r}: {part!r} is not a number, a range or */step") from None
        if step < 1 or not low <= first <= last <= high:
            raise CrontabError(f"{name} field {text!r}: {part!r} is outside {low}-{high} or has a bad step")
        values.update(range(first, last + 1, step))
    if name == "day of week" and 7 in values:  # 0 and 7 are both Sunday
        values = (values - {7}) | {0}
    return frozenset(values)


@dataclass(frozen=True)
class Entry:
    fields: tuple[frozenset[int], ...]
    days_restricted: tuple[bool, bool]
    command: str

    def matches(self, when: dt.datetime) -> bool:
        minute, hour, dom, month, dow = self.fields
        if when.minute not in minute or when.hour not in hour or when.month not in month:
            return False
        by_dom, by_dow = when.day in dom, when.isoweekday() % 7 in dow
        if all(self.days_restricted):
            return by_dom or by_dow
        return by_dom and by_dow


def parse_crontab(text: str) -> list[Entry]:
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(None, 5)
        if len(parts) < 6:
            raise CrontabError(f"line {number}: expected 5 time fields and a command, got {line!r}")
        try:
            fields = tuple(parse_field(p, *spec) for p, spec in zip(parts[:5], FIELDS, strict=True))
        except CrontabError as e:
            raise CrontabError(f"line {number}: {e}") from None
        entries.append(Entry(fields, (parts[2] != "*", parts[4] != "*"), parts[5]))
    if not entries:
        raise CrontabError("the crontab has no entries")
    return entries


def log(message: str) -> None:
    print(f"{dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')} cron: {message}", flush=True)


def run(entries: list[Entry]) -> None:
    running: dict[int, subprocess.Popen] = {}
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(f"{len(entries)} entries; times are UTC")
    next_minute = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
    while not stopping:
        # Wake at the next minute boundary (or sooner, to notice a signal and reap finished runs).
        time.sleep(max(0.0, min(1.0, (next_minute - dt.datetime.now(dt.timezone.utc)).total_seconds())))
        for index, process in list(running.items()):
            if process.poll() is not None:
                log(f"entry {index + 1} finished with exit code {process.returncode}")
                del running[index]
        now = dt.datetime.now(dt.timezone.utc)
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
