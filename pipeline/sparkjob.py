"""Running the driver scripts of spark_jobs/ with spark-submit from a Luigi task."""

from __future__ import annotations

import collections
import contextlib
import hashlib
import importlib.metadata
import importlib.util
import logging
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import luigi
from luigi.contrib.external_program import ExternalProgramRunContext
from luigi.contrib.spark import SparkSubmitTask

import spark_jobs
from pipeline.blas import als_blas_options, build_als_blas
from storage import Store

logger = logging.getLogger("luigi-interface")

JOBS_DIR = Path(spark_jobs.__file__).parent
# What spark_jobs/common.py prints for the task to pick up; see progress() and spark_session().
PROGRESS_LINE = re.compile(r"^progress: (\d{1,3})% (.*)$")
SPARK_UI_LINE = re.compile(r"^Spark UI: (https?://\S+)$")
SPARK_INFO_LINE = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d INFO ")
# Spark's own default for spark.redaction.regex, applied to the command line we log.
SECRET_CONF = re.compile(r"(?i)secret|password|token|access[.]?key")
TAIL_LINES = 40
# ALS's lineage grows with every iteration. Without a checkpoint directory (a cluster with no
# shared storage for one) serialising its tasks in the driver and reading them in the executors
# recurse deep enough to overflow the JVM's default 1 MB thread stacks, at 15 iterations now and
# then and at 40 every time. Thread stacks of 16 MB are address space, not memory, until used.
THREAD_STACK = "-Xss16m"
BLAS_THREADS = "OPENBLAS_NUM_THREADS"
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


def job_flags(store: Store, **options) -> list[str]:
    """A Spark job's arguments: the store, then `--name value` pairs (underscores become
    dashes), as spark_jobs.common.job_parser reads them."""
    options = {"store_root": store.root, "s3_endpoint": store.s3_endpoint, "s3_region": store.s3_region, **options}
    return [
        item
        for name, value in options.items()
        if value is not None
        for item in (f"--{name.replace('_', '-')}", str(value))
    ]


def sized_driver_memory(ratings: int, machine_bytes: int) -> str:
    """The driver memory for a job that fits `ratings` ratings on a machine of `machine_bytes`."""
    wanted_mb = DRIVER_BASE_MB + DRIVER_MB_PER_MILLION_RATINGS * ratings / 1e6
    gb = max(DRIVER_MIN_GB, math.ceil(wanted_mb / 1024))
    return f"{max(1, min(gb, machine_bytes // 2 // 2**30))}g"


def jvm_size_bytes(size: str) -> int | None:
    """The bytes of a JVM memory size such as 512m or 2G, or None if the JVM would refuse it."""
    match = JVM_SIZE.fullmatch(size)
    return int(match[1]) << 10 * "bkmgt".index(match[2].lower() or "b") if match else None


def check_driver_memory(size: str, starts_spark_context: bool = True) -> None:
    """Refuses a [spark] driver_memory that the driver's JVM, or Spark if the job starts a
    SparkContext, would refuse, saying what to set."""
    what = f"[spark] driver_memory = {size}"
    where = "in luigi.cfg (SPARK_DRIVER_MEMORY in the compose stack)"
    size_bytes = jvm_size_bytes(size)
    if size_bytes is None:
        raise ValueError(
            f"{what} is not a memory size the JVM takes: a whole number with k, m, g or t, e.g. 512m or 2g; "
            f"set it {where}"
        )
    if starts_spark_context and size_bytes < MIN_DRIVER_MEMORY_MB << 20:
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


class SparkJobError(RuntimeError):
    """A Spark job that exited non-zero; carries the end of its log, never its environment."""


def bundled_spark_submit() -> Path:
    """spark-submit of the installed pyspark, found without importing pyspark."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or not spec.submodule_search_locations:
        raise SparkJobError("pyspark is not installed in this Python environment; pip install pyspark")
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


class SparkJobTask(SparkSubmitTask):
    """A driver script from spark_jobs/, run by spark-submit in client mode with the worker's
    own Python (or, if it starts no SparkContext, by that Python alone); Spark's master,
    memory and conf come from the [spark] section as for any SparkSubmitTask.

    `run()` replaces luigi's: the job's log is streamed live into luigi's log (Spark's INFO
    lines at DEBUG), the job's progress lines reach the scheduler, and a failure raises an
    error holding the end of the log, where luigi's ExternalProgramRunError would also print
    the whole environment, credentials included."""

    job_script: str  # a file name in spark_jobs/
    # Spark's ALS calls BLAS once per rating on rank-wide vectors, from each of its task
    # threads: a native BLAS's own threads (Debian's OpenBLAS, when installed) would only
    # contend with them, and the ALS jobs name the BLAS for those calls (als_blas). The EASE
    # jobs keep theirs: one large Cholesky uses every core.
    single_threaded_blas = False
    # Whether the job starts a SparkContext. One that does not (the numpy drivers of EASE and
    # the Bayesian model) runs its script with the worker's Python, not through spark-submit,
    # whose JVM would only idle beside it (1.1 s to start and 250 MiB, BENCHMARKS.md). It runs
    # where it would have run all the same: PySpark's drivers run in client mode, beside the worker.
    starts_spark_context = True

    @property
    def ratings_hint(self) -> int | None:
        """How many ratings the job fits, to size the driver when luigi.cfg does not."""
        return None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if hasattr(cls, "job_script"):
            cls.app = str(JOBS_DIR / cls.job_script)  # type: ignore[assignment]  # luigi declares app = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.name = self.task_id  # the Spark application is named as luigid shows the task

    def program_args(self):
        if self.starts_spark_context:
            return super().program_args()
        return [sys.executable, *self.app_command()]

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
        return [THREAD_STACK, *(als_blas_options() if self.single_threaded_blas else [])]

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

    def program_environment(self) -> dict[str, str]:
        env = super().program_environment()
        # The driver runs the interpreter (and so the packages) of this worker.
        env.setdefault("PYSPARK_PYTHON", sys.executable)
        env.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        env["PYTHONUNBUFFERED"] = "1"
        if self.single_threaded_blas:
            env.setdefault(BLAS_THREADS, "1")  # in local mode the executors are the driver's JVM
        return env

    def run(self) -> None:
        if configured := super().driver_memory:
            check_driver_memory(configured, self.starts_spark_context)
        if self.single_threaded_blas and (notice := build_als_blas()):
            logger.warning(notice)
        archive_dir = spark_driver().class_archive_dir if self.starts_spark_context else ""
        self._class_archive = ClassArchive(Path(archive_dir), self.spark_submit) if archive_dir else None
        try:
            self._run_driver()
        finally:
            if self._class_archive:
                self._class_archive.keep()

    def _run_driver(self) -> None:
        args = [str(a) for a in self.program_args()]
        if self.starts_spark_context and self.ratings_hint and not super().driver_memory:
            logger.info(
                "Spark driver memory %s, sized for %s ratings; [spark] driver_memory in luigi.cfg overrides it",
                self.driver_memory,
                f"{self.ratings_hint:,}",
            )
        logger.info("Running %s", " ".join(redact_command(args)))
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
                out_of_memory |= "java.lang.OutOfMemoryError" in line
                self._on_log_line(line.rstrip("\n"), tail)
            returncode = proc.wait()
        if returncode != 0:
            hint = ""
            if out_of_memory:
                hint = (
                    f"\nSpark ran out of memory: raise [spark] driver_memory in luigi.cfg (now {self.driver_memory}; "
                    "in local mode the driver also runs the executors), or executor_memory on a cluster."
                )
            raise SparkJobError(
                f"Spark job {Path(str(self.app)).name} failed with exit code {returncode}; "
                f"the end of its log:\n" + "\n".join(tail) + hint
            )

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
