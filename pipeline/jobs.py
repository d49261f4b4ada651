"""Tasks whose work is a driver script run in a process of its own: the numpy drivers of
drivers/ with the worker's Python (DriverTask), the Spark drivers of spark_jobs/ with
spark-submit (pipeline.sparkjob.SparkJobTask). Either way the driver's log is streamed live into
luigi's, its progress lines reach the scheduler, and a failure raises an error holding the end of
its log, where luigi's ExternalProgramRunError would also print the whole environment,
credentials included."""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from luigi.contrib.external_program import ExternalProgramRunContext

import drivers
from pipeline.base import StoreTask
from storage import Store

logger = logging.getLogger("luigi-interface")

DRIVERS = Path(drivers.__file__).parent
# What drivers/common.py prints for the task to pick up; see progress() and spark_session().
PROGRESS_LINE = re.compile(r"^progress: (\d{1,3})% (.*)$")
SPARK_UI_LINE = re.compile(r"^Spark UI: (https?://\S+)$")
SPARK_INFO_LINE = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d INFO ")
TAIL_LINES = 40
BLAS_THREADS = "OPENBLAS_NUM_THREADS"


def job_flags(store: Store, **options) -> list[str]:
    """A driver's arguments: the store, then `--name value` pairs (underscores become dashes),
    as drivers.common.job_parser reads them."""
    options = {**store.arguments(), **options}
    return [
        item
        for name, value in options.items()
        if value is not None
        for item in (f"--{name.replace('_', '-')}", str(value))
    ]


class DriverError(RuntimeError):
    """A driver that exited non-zero; carries the end of its log, never its environment."""


class DriverTask(StoreTask):
    """A driver script (`script`) run with the worker's own Python, beside the worker, as
    PySpark's drivers run in client mode: the numpy drivers start no Spark, whose JVM would only
    idle beside them (1.1 s to start and 250 MiB, BENCHMARKS.md)."""

    script: Path
    command = ""  # the driver's subcommand, for a script that has them
    kind = "Driver"  # what the errors call it
    # A native BLAS's own threads (Debian's OpenBLAS, when installed) only contend with a
    # driver's (the Bayesian model's batches of rank x rank solves, Spark's task threads);
    # EASE's one large Cholesky uses every core.
    single_threaded_blas = False

    def driver_options(self) -> dict[str, Any]:
        """The driver's own options, beside the store, the output and the parameters recorded."""
        raise NotImplementedError

    def app_options(self) -> list[str]:
        flags = job_flags(
            self.store, output=self.key, params=json.dumps(self.shaping_params()), **self.driver_options()
        )
        return [self.command, *flags] if self.command else flags

    def program_args(self) -> list[str]:
        return [sys.executable, str(self.script), *self.app_options()]

    def program_environment(self) -> dict[str, str]:
        return self.driver_environment(dict(os.environ))

    def driver_environment(self, env: dict[str, str]) -> dict[str, str]:
        env["PYTHONUNBUFFERED"] = "1"
        if self.single_threaded_blas and not env.get(BLAS_THREADS):
            # Empty is unset to OpenBLAS (a thread per core, which then contend): a
            # `OPENBLAS_NUM_THREADS= …` run of --tuned at 10 M took 492 s instead of 296 s.
            env[BLAS_THREADS] = "1"
        return env

    def failure_hint(self, out_of_memory: bool) -> str:
        """A line on what to change, after the end of a failed driver's log."""
        return "\nThe driver ran out of memory: give the worker's machine more." if out_of_memory else ""

    def run(self) -> None:
        self.run_driver()

    def run_driver(self) -> None:
        args = [str(a) for a in self.program_args()]
        logger.info("Running %s", " ".join(self.loggable_command(args)))
        tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
        proc = subprocess.Popen(
            args,
            env=self.program_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None  # a pipe, as asked for
        out_of_memory = False
        with ExternalProgramRunContext(proc):
            for line in proc.stdout:
                out_of_memory |= "java.lang.OutOfMemoryError" in line or line.startswith("MemoryError")
                self._on_log_line(line.rstrip("\n"), tail)
            returncode = proc.wait()
        if returncode != 0:
            raise DriverError(
                f"{self.kind} {self.script.name} failed with exit code {returncode}; the end of its log:\n"
                + "\n".join(tail)
                + self.failure_hint(out_of_memory)
            )

    def loggable_command(self, args: list[str]) -> list[str]:
        return args

    def _on_log_line(self, line: str, tail: collections.deque[str]) -> None:
        if SPARK_INFO_LINE.match(line):
            logger.debug(line)
            return
        tail.append(line)
        logger.info(line)
        if progress := PROGRESS_LINE.match(line):
            self._report(self.set_progress_percentage, min(100, int(progress[1])))
            self._report(self.set_status_message, progress[2])
        elif ui := SPARK_UI_LINE.match(line):
            self._report(self.set_tracking_url, ui[1])

    @staticmethod
    def _report(callback, value) -> None:
        # The worker installs these callbacks only while the task runs under a scheduler.
        if callback is not None:
            callback(value)
