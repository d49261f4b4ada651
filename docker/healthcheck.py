"""The compose services' healthchecks: exit 0 when the service is ready for the runner, 1
with a reason otherwise. Ready means more than listening:

- luigid: its API answers;
- spark-master: its status is ALIVE (a standby master would not take applications);
- spark-worker: the master lists this worker as ALIVE, i.e. it registered, so an
  application submitted now gets an executor;
- runner: its scheduler (docker/cron.py) runs.

    python /app/docker/healthcheck.py luigid|spark-master|spark-worker|runner
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import urllib.request
from pathlib import Path

TIMEOUT_SECONDS = 4


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
        return json.load(response)


def luigid() -> str | None:
    port = os.environ.get("LUIGID_PORT", "8082")
    get_json(f"http://127.0.0.1:{port}/api/task_list?data=%7B%22status%22%3A%22RUNNING%22%7D")
    return None


def spark_master() -> str | None:
    status = get_json("http://127.0.0.1:8080/json/")["status"]
    return None if status == "ALIVE" else f"the master's status is {status}"


def spark_worker() -> str | None:
    worker_id = get_json("http://127.0.0.1:8081/json/")["id"]
    master_ui = os.environ.get("SPARK_MASTER_UI_URL", "http://spark-master:8080")
    workers = {w["id"]: w["state"] for w in get_json(f"{master_ui}/json/")["workers"]}
    if workers.get(worker_id) != "ALIVE":
        return f"the master at {master_ui} lists this worker ({worker_id}) as {workers.get(worker_id, 'unknown')}"
    return None


def runner() -> str | None:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            if b"docker/cron.py" in cmdline.read_bytes():
                return None
    return "docker/cron.py is not running"


CHECKS = {"luigid": luigid, "spark-master": spark_master, "spark-worker": spark_worker, "runner": runner}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in CHECKS:
        print(f"usage: healthcheck.py {'|'.join(CHECKS)}", file=sys.stderr)
        return 2
    try:
        problem = CHECKS[argv[0]]()
    except (OSError, ValueError, KeyError) as e:
        problem = f"{type(e).__name__}: {e}"
    if problem:
        print(problem)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
