"""What the benchmark scripts share: the release zip they run on, a local mirror serving it,
the luigi.cfg overlay that points the pipeline at that mirror and at a scratch store, the
runner of one luigi command (wall time, seconds per task, peak memory), and the facts of the
machine printed with every result.

Every command a benchmark starts imports this checkout's packages (PYTHONPATH), whichever
virtual environment runs it, and the driver of every Spark application runs this Python."""

from __future__ import annotations

import argparse
import configparser
import contextlib
import dataclasses
import functools
import hashlib
import http.server
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from movielens_als.releases import RELEASES

REPO = Path(__file__).resolve().parents[1]
SMALL_ZIP = REPO.parent / "shared" / "data" / "ml-latest-small.zip"
TASK_TIME = re.compile(r"(\w+)\(.*\) finished in ([\d.]+) s, CPU ([\d.]+) s")
# What spark_jobs/ and bench/bare_als.py print at the end of a Spark application.
PEAK_MEMORY = re.compile(r"driver peak resident memory: (?:JVM (\d+) MiB, )?Python (\d+) MiB")
# The `luigi` command, printing on exit the peak resident memory of its own process, where the
# tasks without Spark (SplitData, EvaluatedRMSE, EvaluatedRanking, Recommendations) run.
LUIGI_WITH_PEAK = """
import atexit, resource, sys
from luigi.cmdline import luigi_run
atexit.register(lambda: print(
    f"luigi worker peak resident memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB",
    file=sys.stderr,
))
luigi_run(sys.argv[1:])
"""
WORKER_MEMORY = re.compile(r"luigi worker peak resident memory: (\d+) MiB")
# Spark's netlib loads the system's libblas.so.3 and liblapack.so.3 when they exist (Debian:
# libopenblas0, which `make run` installs), or the BLAS the ALS jobs name by path (the
# reference BLAS, pipeline/blas.py); these options make it fall back to its Java
# implementations, as on a machine without them.
JAVA_BLAS = (
    "-Ddev.ludovic.netlib.blas.nativeLib=none",
    "-Ddev.ludovic.netlib.blas.nativeLibPath=none",
    "-Ddev.ludovic.netlib.lapack.nativeLib=none",
)
NATIVE_LIBRARIES = ("libblas.so.3", "liblapack.so.3")


def argument_parser(module: str, doc: str | None) -> argparse.ArgumentParser:
    """The parser of a benchmark run as `python -m <module>`, its docstring as the help."""
    return argparse.ArgumentParser(
        prog=f"python -m {module}", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )


@dataclasses.dataclass(frozen=True)
class Release:
    """A release zip to run on. Its name says which release it is, so a generated ml-25m.zip
    has ml-25m's layout; its MD5 is configured as that release's checksum."""

    path: Path
    name: str
    md5: str

    @classmethod
    def at(cls, path: Path) -> Release:
        name = path.name.removesuffix(".zip")
        if name not in RELEASES:
            sys.exit(f"{path}: name the zip after the release whose layout it has, one of {', '.join(RELEASES)}")
        digest = hashlib.md5()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        return cls(path.resolve(), name, digest.hexdigest())

    @property
    def ratings_member(self) -> str:
        return RELEASES[self.name].ratings_member


@contextlib.contextmanager
def mirror(release: Release) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 standing in for files.grouplens.org, serving the release's
    zip while the block runs; yields its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

    with tempfile.TemporaryDirectory(prefix="bench-mirror-") as folder:
        (Path(folder) / release.path.name).symlink_to(release.path)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=folder))
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            server.server_close()
            thread.join()


def luigi_config(release: Release, base_url: str, store: Path) -> configparser.ConfigParser:
    """What the pipeline runs under: luigi.cfg (or the file LUIGI_CONFIG_PATH names), with its
    store at `store` and the release downloaded from the mirror at `base_url`."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(os.environ.get("LUIGI_CONFIG_PATH", REPO / "luigi.cfg"))
    overlay = {
        "store": {"root": str(store)},
        "movielens": {"base_url": base_url, "md5s": json.dumps({release.name: release.md5})},
    }
    for section, options in overlay.items():
        if not config.has_section(section):
            config.add_section(section)
        for key, value in options.items():
            config.set(section, key, value)
    return config


def write_config(config: configparser.ConfigParser, path: Path) -> Path:
    with open(path, "w") as f:
        config.write(f)
    return path


def run(what: str, command: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> tuple[float, str, str]:
    """`command` run to its end in `cwd` with `env` added to the environment: its wall time,
    stdout and stderr. Exits with the end of its log, saying `what` failed, if it fails."""
    pythonpath = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
    environment = {
        **os.environ,
        "PYTHONPATH": pythonpath,
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
        **(env or {}),
    }
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{what} failed with exit code {result.returncode}:\n{result.stdout[-2000:]}\n{result.stderr[-5000:]}")
    return seconds, result.stdout, result.stderr


def run_luigi(
    task: str, config: Path, dataset: str, cwd: Path, *args: str, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """`luigi --module pipeline TASK --local-scheduler --dataset DATASET ARGS` under `config`:
    {"seconds": wall time, "tasks": {task: seconds} of the tasks that ran, "memory": the
    largest JVM and Python peaks (MiB) of its Spark drivers, "worker_memory": the luigi
    worker's own peak (MiB)}. Exits with the end of its log if it fails."""
    command = [sys.executable, "-c", LUIGI_WITH_PEAK, "--module", "pipeline", task, "--local-scheduler"]
    seconds, _, log = run(
        f"luigi {task}", [*command, "--dataset", dataset, *args], cwd, {"LUIGI_CONFIG_PATH": str(config), **(env or {})}
    )
    worker = WORKER_MEMORY.search(log)
    return {
        "seconds": seconds,
        "tasks": {m[1]: float(m[2]) for m in TASK_TIME.finditer(log)},
        "task_details": task_details(log),
        "memory": peak_memory(log),
        "worker_memory": int(worker[1]) if worker else 0,
    }


def task_details(log: str) -> dict[str, dict[str, float]]:
    """Each task that ran: its wall and CPU seconds, and the JVM and Python peaks (MiB) its
    driver printed (0 for a task that runs in the luigi worker), which come before its
    `finished in` line."""
    details, start = {}, 0
    for m in TASK_TIME.finditer(log):
        jvm, python = peak_memory(log[start : m.start()])
        details[m[1]] = {"seconds": float(m[2]), "cpu": float(m[3]), "jvm": jvm, "python": python}
        start = m.end()
    return details


def peak_memory(log: str) -> tuple[int, int]:
    """The largest JVM and Python driver peaks (MiB) of the Spark applications in `log`."""
    peaks = [(int(m[1] or 0), int(m[2])) for m in PEAK_MEMORY.finditer(log)]
    return max((p[0] for p in peaks), default=0), max((p[1] for p in peaks), default=0)


def json_line(output: str) -> dict[str, Any]:
    """The one JSON object a spark-submit script prints."""
    return json.loads(next(line for line in output.splitlines() if line.startswith("{")))


def machine() -> str:
    """The facts of this machine a result depends on, to print with it."""
    from pipeline.sparkjob import machine_memory  # what the Spark drivers are sized from

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = f"{os.cpu_count()} cores" + (f" ({usable} usable)" if usable != os.cpu_count() else "")
    java = subprocess.run(["java", "-version"], check=False, capture_output=True, text=True).stderr.splitlines()
    return (
        f"{cores}, {model[1] if model else platform.processor() or 'CPU model unknown'}, "
        f"{machine_memory() / 2**30:.0f} GiB RAM, load average {os.getloadavg()[0]:.1f}; {platform.platform()}; "
        f"Python {platform.python_version()}; {java[0] if java else 'no java'}; "
        f"Spark {importlib.metadata.version('pyspark')}; BLAS for Spark: {spark_blas()}; "
        f"for numpy and scipy: {python_blas()}"
    )


def spark_blas() -> str:
    """The BLAS and LAPACK Spark's netlib loads unless told otherwise (JAVA_BLAS): the
    libraries the dynamic linker finds as libblas.so.3 and liblapack.so.3, else its own Java."""
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    listing = subprocess.run([ldconfig, "-p"], check=False, capture_output=True, text=True).stdout
    found = [re.search(rf"^\s*{re.escape(name)} \(.*\) => (\S+)$", listing, re.MULTILINE) for name in NATIVE_LIBRARIES]
    if not all(found):
        return "netlib's Java BLAS and LAPACK (no native libblas.so.3 and liblapack.so.3)"
    native = "native " + ", ".join(os.path.realpath(m[1]) for m in found if m)
    from pipeline.blas import als_blas

    return native + (f"; ALS's per-rating calls: {library}" if (library := als_blas()) else "")


def python_blas() -> str:
    """The BLAS numpy and scipy were built with (EASE and the scoring compute with them)."""
    import numpy
    import scipy

    names = []
    for module in (numpy, scipy):
        try:
            blas = module.show_config(mode="dicts")["Build Dependencies"]["blas"]
            names.append(f"{blas['name']} {blas.get('version', '')}".strip())
        except (TypeError, KeyError):  # older releases print their configuration only
            names.append("unknown")
    return " / ".join(names)
