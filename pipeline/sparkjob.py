"""The Spark jobs: the driver scripts of spark_jobs/, run with spark-submit from a Luigi task
(SparkJobTask), the driver's memory, its JVM's options and class archive."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import logging
import math
import os
import re
import shutil
import sys
from pathlib import Path

import luigi
from luigi.contrib.spark import SparkSubmitTask

import spark_jobs
from pipeline.jobs import BLAS_THREADS, DriverError, DriverTask

logger = logging.getLogger("luigi-interface")

SPARK_JOBS = Path(spark_jobs.__file__).parent
# Spark's own default for spark.redaction.regex, applied to the command line we log.
SECRET_CONF = re.compile(r"(?i)secret|password|token|access[.]?key")
# ALS's lineage grows with every iteration. Without a checkpoint directory (a cluster with no
# shared storage for one) serialising its tasks in the driver and reading them in the executors
# recurse deep enough to overflow the JVM's default 1 MB thread stacks, at 15 iterations now and
# then and at 40 every time. Thread stacks of 16 MB are address space, not memory, until used.
THREAD_STACK = "-Xss16m"
# The driver's heap when [spark] driver_memory is not set: in local mode it holds ALS's cached
# rating blocks and the local relation of the ratings the driver hands Spark. Measured
# (BENCHMARKS.md): 25 M ratings fit 2 GB, 32 M ran out of it and fit 4 GB; so 1 GB plus
# 100 MB per million ratings, rounded up to whole GB, at least 2 GB, and at most half of the
# machine's memory, since the driver's Python holds the ratings too (about 100 B each).
DRIVER_BASE_MB, DRIVER_MB_PER_MILLION_RATINGS, DRIVER_MIN_GB = 1024, 100, 2
# Spark starts no SparkContext in a heap under 1.5 times the 300 MiB it reserves of it
# (UnifiedMemoryManager), as the JVM reports the heap: -Xmx, less a survivor space under some
# collectors. The least --driver-memory that starts one, measured with pyspark 4.3 on JDK 17:
# 449m with G1 (the JVM's choice on 2 CPUs or more), 465m with the serial collector (its choice
# on one CPU), 505m with the parallel collector (used only when asked for).
MIN_DRIVER_MEMORY_MB = 465
# A size as the JVM's -Xmx takes it, which is what spark-submit makes of --driver-memory in
# client mode: a whole number of bytes, or of k, m, g or t (either case); no fractions, no "mb".
JVM_SIZE = re.compile(r"(\d+)([kmgt]?)", re.IGNORECASE)


def sized_driver_memory(ratings: int, machine_bytes: int) -> str:
    """The driver memory for a job that fits `ratings` ratings on a machine of `machine_bytes`."""
    wanted_mb = DRIVER_BASE_MB + DRIVER_MB_PER_MILLION_RATINGS * ratings / 1e6
    gb = max(DRIVER_MIN_GB, math.ceil(wanted_mb / 1024))
    return f"{max(1, min(gb, machine_bytes // 2 // 2**30))}g"


def jvm_size_bytes(size: str) -> int | None:
    """The bytes of a JVM memory size such as 512m or 2G, or None if the JVM would refuse it."""
    match = JVM_SIZE.fullmatch(size)
    return int(match[1]) << 10 * "bkmgt".index(match[2].lower() or "b") if match else None


def check_driver_memory(size: str) -> None:
    """Refuses a [spark] driver_memory that the driver's JVM, or Spark, would refuse, saying what
    to set."""
    what = f"[spark] driver_memory = {size}"
    where = "in luigi.cfg (SPARK_DRIVER_MEMORY in the compose stack)"
    size_bytes = jvm_size_bytes(size)
    if size_bytes is None:
        raise ValueError(
            f"{what} is not a memory size the JVM takes: a whole number with k, m, g or t, e.g. 512m or 2g; "
            f"set it {where}"
        )
    if size_bytes < MIN_DRIVER_MEMORY_MB << 20:
        bytes_note = f" (a number without a unit counts bytes: {size}m?)" if size.isdigit() else ""
        raise ValueError(
            f"{what}{bytes_note} is below the {MIN_DRIVER_MEMORY_MB}m Spark needs to start: it reserves 300 MiB of "
            f"the driver's heap and wants 1.5 times that. Set it {where} to {MIN_DRIVER_MEMORY_MB}m or more, "
            f"or remove it to have the driver sized from the release ({DRIVER_MIN_GB}g or more)"
        )


def machine_memory() -> int:
    """Bytes of memory this process may use: the machine's, or its cgroup's limit if lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    with contextlib.suppress(OSError, ValueError):
        total = min(total, int(Path("/sys/fs/cgroup/memory.max").read_text()))  # "max" when unlimited
    return total


def bundled_spark_submit() -> Path:
    """spark-submit of the installed pyspark, found without importing pyspark."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise DriverError("pyspark is not installed in this Python environment; pip install pyspark")
    return Path(spec.submodule_search_locations[0]) / "bin" / "spark-submit"


def redact_command(args: list[str]) -> list[str]:
    """The command with the values of secret-looking `--conf key=value` pairs masked."""
    redacted = list(args)
    for i, arg in enumerate(args[:-1]):
        if arg == "--conf" and "=" in args[i + 1]:
            key = args[i + 1].split("=", 1)[0]
            if SECRET_CONF.search(key):
                redacted[i + 1] = f"{key}=*********(redacted)"
    return redacted


class spark_driver(luigi.Config):
    class_archive_dir = luigi.Parameter(
        default=os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "movielens-als"),
        description="Folder of the driver JVM's class-data-sharing archive (about 160 MB); empty to disable.",
    )


class ClassArchive:
    """A class-data-sharing archive of the classes a Spark driver JVM loads (JDK 17's
    `-XX:ArchiveClassesAtExit`). The first job that runs without one writes it when it
    exits, which makes that job about 15 s slower; every later driver maps the classes
    instead of loading and verifying them, and starts 2-3 s sooner. The archive is keyed
    by the java binary and the Spark installation, so an upgrade of either starts a new one;
    a JVM that cannot use an archive ignores it, and so does this class when it cannot write."""

    def __init__(self, directory: Path, spark_submit: str):
        java = Path(os.environ["JAVA_HOME"], "bin", "java") if "JAVA_HOME" in os.environ else shutil.which("java")
        identity = [os.path.realpath(spark_submit), importlib.metadata.version("pyspark")]
        if java and os.path.exists(java):
            identity += [os.path.realpath(java), str(os.stat(java).st_mtime_ns)]
        digest = hashlib.sha256("|".join(identity).encode()).hexdigest()[:16]
        self.path = directory.expanduser() / f"spark-driver-{digest}.jsa"
        # Concurrent first runs each write their own file; the last one to finish wins.
        self._pending = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")

    def java_options(self) -> str:
        if self.path.is_file():
            option = f"-XX:SharedArchiveFile={self.path}"
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                logger.warning("not using a JVM class archive: %s", e)
                return ""
            option = f"-XX:ArchiveClassesAtExit={self._pending}"
        return f"{option} -Xlog:cds*=off"  # silences the JVM's notes on classes it cannot archive

    def keep(self) -> None:
        """Puts a newly written archive in place; called once the driver has exited."""
        if self._pending.exists():
            os.replace(self._pending, self.path)


class SparkJobTask(DriverTask, SparkSubmitTask):
    """A driver script from spark_jobs/, run by spark-submit in client mode with the worker's
    own Python; Spark's master, memory and conf come from the [spark] section as for any
    SparkSubmitTask."""

    kind = "Spark job"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.name = self.task_id  # the Spark application is named as luigid shows the task

    @property
    def app(self) -> str:  # type: ignore[override]  # luigi declares app = None
        return str(self.script)

    @property
    def ratings_hint(self) -> int | None:
        """How many ratings the job fits, to size the driver when luigi.cfg does not."""
        return None

    def program_args(self) -> list[str]:
        return SparkSubmitTask.program_args(self)

    def program_environment(self) -> dict[str, str]:
        env = self.driver_environment(SparkSubmitTask.program_environment(self))
        # The driver runs the interpreter (and so the packages) of this worker.
        env.setdefault("PYSPARK_PYTHON", sys.executable)
        env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        return env

    def loggable_command(self, args: list[str]) -> list[str]:
        return redact_command(args)

    @property
    def driver_memory(self) -> str | None:
        configured = super().driver_memory
        if configured or not self.ratings_hint:
            return configured
        return sized_driver_memory(self.ratings_hint, machine_memory())

    @property
    def driver_java_options(self) -> str | None:
        archive = getattr(self, "_class_archive", None)
        options = [*self.jvm_options(), super().driver_java_options, archive and archive.java_options()]
        return " ".join(o for o in options if o) or None

    def jvm_options(self) -> list[str]:
        """The JVM options of the driver and, unless luigi.cfg sets theirs, of the executors."""
        return [THREAD_STACK]

    @property
    def conf(self) -> dict[str, str]:
        conf = super().conf or {}
        conf.setdefault("spark.executor.extraJavaOptions", " ".join(self.jvm_options()))
        if self.single_threaded_blas:
            conf.setdefault(f"spark.executorEnv.{BLAS_THREADS}", "1")
        return conf

    @property
    def spark_submit(self) -> str:
        configured = super().spark_submit
        if configured != "spark-submit":
            return configured
        return shutil.which("spark-submit") or str(bundled_spark_submit())

    def failure_hint(self, out_of_memory: bool) -> str:
        if not out_of_memory:
            return ""
        return (
            f"\nSpark ran out of memory: raise [spark] driver_memory in luigi.cfg (now {self.driver_memory}; "
            "in local mode the driver also runs the executors), or executor_memory on a cluster."
        )

    def run(self) -> None:
        if configured := super().driver_memory:
            check_driver_memory(configured)
        if self.ratings_hint and not configured:
            logger.info(
                "Spark driver memory %s, sized for %s ratings; [spark] driver_memory in luigi.cfg overrides it",
                self.driver_memory,
                f"{self.ratings_hint:,}",
            )
        archive_dir = spark_driver().class_archive_dir
        self._class_archive = ClassArchive(Path(archive_dir), self.spark_submit) if archive_dir else None
        try:
            self.run_driver()
        finally:
            if self._class_archive:
                self._class_archive.keep()
