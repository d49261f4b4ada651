import collections
import logging
import re
import sys
from pathlib import Path

import pytest
from luigi.contrib.spark import SparkSubmitTask

from pipeline.jobs import DriverError, DriverTask
from pipeline.sparkjob import (
    MIN_DRIVER_MEMORY_MB,
    ClassArchive,
    SparkJobTask,
    bundled_spark_submit,
    check_driver_memory,
    jvm_size_bytes,
    machine_memory,
    redact_command,
    sized_driver_memory,
)
from tests.helpers import FAKE_SECRET

EXECUTOR_JAVA = "spark.executor.extraJavaOptions"


class ScriptJob(SparkJobTask):
    """A Spark driver script the test writes."""

    script = Path()

    def app_options(self) -> list[str]:
        return []


class NumpyScriptJob(DriverTask):
    """A driver script the test writes, that starts no Spark."""

    script = Path()

    def app_options(self) -> list[str]:
        return []


def test_redacts_secret_looking_conf_values():
    args = [
        "spark-submit",
        "--conf",
        "spark.hadoop.fs.s3a.secret.key=abc",
        "--conf",
        "spark.sql.shuffle.partitions=4",
        "--conf",
        "spark.hadoop.fs.s3a.access.key=AKIA",
        "job.py",
        "--conf",
    ]
    assert redact_command(args) == [
        "spark-submit",
        "--conf",
        "spark.hadoop.fs.s3a.secret.key=*********(redacted)",
        "--conf",
        "spark.sql.shuffle.partitions=4",
        "--conf",
        "spark.hadoop.fs.s3a.access.key=*********(redacted)",
        "job.py",
        "--conf",
    ]


def test_spark_submit_comes_from_the_config_then_path_then_pyspark(luigi_config, monkeypatch, tmp_path):
    task = ScriptJob()
    monkeypatch.setenv("PATH", str(tmp_path))
    assert task.spark_submit == str(bundled_spark_submit())
    assert bundled_spark_submit().is_file()
    on_path = tmp_path / "spark-submit"
    on_path.write_text("#!/bin/sh\n")
    on_path.chmod(0o755)
    assert task.spark_submit == str(on_path)
    luigi_config("spark", "spark_submit", "/opt/spark/bin/spark-submit")
    assert task.spark_submit == "/opt/spark/bin/spark-submit"


def test_the_driver_runs_this_python(monkeypatch):
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    env = ScriptJob().program_environment()
    assert env["PYSPARK_PYTHON"] == env["PYSPARK_DRIVER_PYTHON"] == sys.executable


def test_log_lines_become_progress_status_and_tracking_url():
    task = ScriptJob()
    calls = []
    task.set_progress_percentage = lambda p: calls.append(("progress", p))
    task.set_status_message = lambda m: calls.append(("status", m))
    task.set_tracking_url = lambda u: calls.append(("url", u))
    tail = collections.deque()
    for line in [
        "26/11/26 14:38:47 INFO BlockManager: Initialized",
        "Spark UI: http://10.0.0.1:4040",
        "progress: 20% fitting ALS",
        "26/11/26 14:38:48 WARN TaskSetManager: large task",
    ]:
        task._on_log_line(line, tail)
    assert calls == [("url", "http://10.0.0.1:4040"), ("progress", 20), ("status", "fitting ALS")]
    assert list(tail) == [
        "Spark UI: http://10.0.0.1:4040",
        "progress: 20% fitting ALS",
        "26/11/26 14:38:48 WARN TaskSetManager: large task",
    ]


@pytest.mark.spark
def test_a_failing_job_raises_with_its_log_and_without_the_environment(tmp_path, monkeypatch, luigi_config, caplog):
    luigi_config("spark", "master", "local[1]")
    luigi_config("spark_driver", "class_archive_dir", "")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    script = tmp_path / "job.py"
    script.write_text("print('progress: 5% reading')\nraise ValueError('Parquet magic bytes not found')\n")
    monkeypatch.setattr(ScriptJob, "script", script)
    with pytest.raises(DriverError) as failure:
        ScriptJob().run()
    message = str(failure.value)
    assert message.startswith("Spark job job.py failed with exit code 1; the end of its log:\n")
    assert "\nprogress: 5% reading\n" in message
    assert "ValueError: Parquet magic bytes not found" in message
    assert FAKE_SECRET not in message and "PATH=" not in message
    assert FAKE_SECRET not in caplog.text


@pytest.mark.spark
def test_a_job_out_of_memory_says_which_setting_to_raise(tmp_path, monkeypatch, luigi_config):
    luigi_config("spark", "master", "local[1]")
    luigi_config("spark", "driver_memory", "512m")
    luigi_config("spark_driver", "class_archive_dir", "")
    script = tmp_path / "job.py"
    # A real JVM heap exhaustion: a 4 GiB array in a 512 MiB driver.
    script.write_text(
        "from pyspark.sql import SparkSession\n"
        "jvm = SparkSession.builder.getOrCreate()._jvm\n"
        "jvm.java.lang.reflect.Array.newInstance(jvm.java.lang.Long.TYPE, 2**29)\n"
    )
    monkeypatch.setattr(ScriptJob, "script", script)
    with pytest.raises(DriverError) as failure:
        ScriptJob().run()
    message = str(failure.value)
    assert "java.lang.OutOfMemoryError" in message
    assert message.endswith(
        "Spark ran out of memory: raise [spark] driver_memory in luigi.cfg (now 512m; "
        "in local mode the driver also runs the executors), or executor_memory on a cluster."
    )


@pytest.mark.spark
def test_alss_lineage_does_not_overflow_the_stack_without_checkpoints(tmp_path, monkeypatch, luigi_config, caplog):
    luigi_config("spark", "master", "local[2]")
    luigi_config("spark_driver", "class_archive_dir", "")
    script = tmp_path / "job.py"
    # No checkpoint directory, as on a cluster without shared storage: 60 iterations overflow
    # the JVM's default thread stacks every time.
    script.write_text(
        "from pyspark.ml.recommendation import ALS\n"
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.config('spark.sql.shuffle.partitions', '2').getOrCreate()\n"
        "rows = [(u, i, float(u * i % 5 + 1)) for u in range(50) for i in range(40) if (u + i) % 3]\n"
        "frame = spark.createDataFrame(rows, ['user', 'item', 'rating'])\n"
        "als = ALS(rank=2, maxIter=60, userCol='user', itemCol='item', ratingCol='rating', seed=1)\n"
        "print('users with factors:', als.fit(frame).userFactors.count())\n"
    )
    monkeypatch.setattr(ScriptJob, "script", script)
    caplog.set_level(logging.INFO, logger="luigi-interface")

    ScriptJob().run()

    assert "users with factors: 50" in caplog.text
    assert f"{EXECUTOR_JAVA}=-Xss16m" in ScriptJob().spark_command()


@pytest.mark.spark
def test_the_first_driver_writes_the_class_archive_and_later_ones_use_it(tmp_path, monkeypatch, luigi_config, caplog):
    luigi_config("spark", "master", "local[1]")
    luigi_config("spark_driver", "class_archive_dir", str(tmp_path / "cache"))
    script = tmp_path / "job.py"
    script.write_text("raise SystemExit(3)\n")
    monkeypatch.setattr(ScriptJob, "script", script)
    caplog.set_level(logging.INFO, logger="luigi-interface")

    for _ in range(2):
        with pytest.raises(DriverError, match="exit code 3"):
            ScriptJob().run()

    archives = list((tmp_path / "cache").iterdir())
    assert len(archives) == 1 and archives[0].suffix == ".jsa" and archives[0].stat().st_size > 1_000_000
    commands = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Running ")]
    assert "-XX:ArchiveClassesAtExit=" in commands[0]
    assert f"-XX:SharedArchiveFile={archives[0]}" in commands[1]


def test_an_unwritable_archive_folder_only_disables_the_archive(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert ClassArchive(blocker / "cache", str(bundled_spark_submit())).java_options() == ""


@pytest.mark.parametrize(
    "ratings, machine_gib, memory",
    [
        (100_836, 24, "2g"),
        (10_000_054, 24, "2g"),
        (20_000_263, 24, "3g"),
        (25_000_095, 24, "4g"),
        (32_000_204, 24, "5g"),
        (32_000_204, 6, "3g"),
        (100_836, 2, "1g"),
    ],
)
def test_the_driver_is_sized_from_the_ratings_and_the_machine(ratings, machine_gib, memory):
    assert sized_driver_memory(ratings, machine_gib * 2**30) == memory


def test_a_spark_task_sizes_its_driver_from_its_release_unless_configured(luigi_config):
    from pipeline import TrainedALS, TunedALS

    big = TrainedALS(dataset="ml-32m")
    assert big.driver_memory == sized_driver_memory(32_000_204, machine_memory())
    command = big.spark_command()
    assert command[command.index("--driver-memory") + 1] == big.driver_memory
    assert TunedALS(dataset="ml-latest-small").driver_memory == "2g"
    luigi_config("spark", "driver_memory", "7g")
    assert TrainedALS(dataset="ml-32m").driver_memory == "7g"


def test_alss_blas_runs_one_thread_per_spark_task_and_eases_keeps_every_core(monkeypatch):
    from pipeline import TrainedALS, TrainedEASE, TunedALS, TunedEASE

    monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    for als in (TrainedALS(), TunedALS()):
        assert als.program_environment()["OPENBLAS_NUM_THREADS"] == "1"  # the local driver, executors inside
        assert als.conf["spark.executorEnv.OPENBLAS_NUM_THREADS"] == "1"  # a cluster's executors
    for ease in (TrainedEASE(), TunedEASE()):
        assert "OPENBLAS_NUM_THREADS" not in ease.program_environment()
        assert not isinstance(ease, SparkSubmitTask)  # no executors


def test_an_empty_blas_thread_count_is_unset_and_a_set_one_is_kept(monkeypatch):
    from pipeline import TrainedALS, TrainedBPMF, ValidatedBPMF

    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "")  # OpenBLAS reads it as unset: a thread per core
    for task in (TrainedALS(), ValidatedBPMF(), TrainedBPMF()):
        assert task.program_environment()["OPENBLAS_NUM_THREADS"] == "1"
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "3")
    for task in (TrainedALS(), ValidatedBPMF(), TrainedBPMF()):
        assert task.program_environment()["OPENBLAS_NUM_THREADS"] == "3"


def test_alss_per_rating_blas_calls_go_to_the_als_blas_else_the_reference_blas_where_the_machine_has_it(
    tmp_path, monkeypatch
):
    from pipeline import TrainedALS, TunedALS, blas

    reference, built = tmp_path / "blas" / "libblas.so.3", tmp_path / "venv" / "libalsblas.so"
    monkeypatch.setattr(blas, "REFERENCE_BLAS", reference)
    monkeypatch.setattr(blas, "ALS_BLAS", built)
    for als in (TrainedALS(), TunedALS()):  # neither: netlib loads the system's libblas.so.3
        assert "nativeLibPath" not in als.driver_java_options and "nativeLibPath" not in als.conf[EXECUTOR_JAVA]
    for library in (reference, built):  # the reference BLAS, then the library built beside it
        library.parent.mkdir()
        library.touch()
        option = f"-Ddev.ludovic.netlib.blas.nativeLibPath={library}"
        for als in (TrainedALS(), TunedALS()):
            assert option in als.driver_java_options.split()  # the local driver, executors inside
            assert option in als.conf[EXECUTOR_JAVA].split()  # a cluster's executors
            assert als.driver_java_options.count("nativeLibPath") == 1
        assert option not in (ScriptJob().driver_java_options or "")


def test_an_als_job_builds_its_blas_first_and_logs_why_it_could_not(monkeypatch, caplog):
    from pipeline import TrainedALS, rating

    events = []
    monkeypatch.setattr(rating, "build_als_blas", lambda: events.append("build") or "no C compiler (gcc)")
    monkeypatch.setattr(SparkJobTask, "run", lambda task: events.append(f"run {type(task).__name__}"))
    with caplog.at_level(logging.INFO, logger="luigi-interface"):
        ScriptJob().run()  # not an ALS job: its BLAS is the system's
        TrainedALS().run()
    assert events == ["run ScriptJob", "build", "run TrainedALS"]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == ["no C compiler (gcc)"]


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ("465m", 465 << 20),
        ("465M", 465 << 20),
        ("2g", 2 << 30),
        ("1T", 1 << 40),
        ("476160k", 465 << 20),
        ("1024", 1024),  # bytes, as -Xmx reads it: too small for any JVM
        ("0.5g", None),
        ("512mb", None),
        ("512 m", None),
        ("-1g", None),
        ("", None),
    ],
)
def test_driver_memory_is_read_as_the_jvms_heap_option_reads_it(size, expected):
    assert jvm_size_bytes(size) == expected


def test_a_driver_memory_spark_would_refuse_is_refused_before_spark_submit_naming_the_option(luigi_config, monkeypatch):
    monkeypatch.setattr("subprocess.Popen", lambda *a, **k: pytest.fail("spark-submit was started"))
    luigi_config("spark", "driver_memory", "300m")
    with pytest.raises(ValueError) as e:
        ScriptJob().run()
    assert str(e.value) == (
        f"[spark] driver_memory = 300m is below the {MIN_DRIVER_MEMORY_MB}m Spark needs to start: it reserves "
        "300 MiB of the driver's heap and wants 1.5 times that. Set it in luigi.cfg (SPARK_DRIVER_MEMORY in the "
        f"compose stack) to {MIN_DRIVER_MEMORY_MB}m or more, or remove it to have the driver sized from the release "
        "(2g or more)"
    )
    with pytest.raises(
        ValueError, match=r"^\[spark\] driver_memory = 2048 \(a number without a unit counts bytes: 2048m\?\) is below"
    ):
        check_driver_memory("2048")
    with pytest.raises(
        ValueError, match=r"^\[spark\] driver_memory = 0.5g is not a memory size the JVM takes: .* 512m or 2g"
    ):
        check_driver_memory("0.5g")


def test_only_the_als_jobs_are_spark_jobs():
    from pipeline import TrainedALS, TrainedBPMF, TrainedEASE, TunedALS, TunedEASE, ValidatedBPMF

    assert all(issubclass(task, SparkJobTask) for task in (TunedALS, TrainedALS))
    numpy_jobs = (TunedEASE, TrainedEASE, ValidatedBPMF, TrainedBPMF)
    assert all(issubclass(task, DriverTask) and not issubclass(task, SparkSubmitTask) for task in numpy_jobs)


@pytest.mark.spark
@pytest.mark.parametrize(
    ("mb", "starts"), [(MIN_DRIVER_MEMORY_MB, True), (MIN_DRIVER_MEMORY_MB - 1, False)], ids=["floor", "below"]
)
def test_the_floor_is_the_least_driver_memory_spark_starts_in_under_the_serial_collector(
    tmp_path, monkeypatch, luigi_config, mb, starts
):
    # The serial collector (the JVM's choice on one CPU) leaves the least of -Xmx to Spark of
    # the collectors the JVM picks by itself; G1 starts from 449m.
    luigi_config("spark", "master", "local[1]")
    luigi_config("spark", "driver_memory", f"{mb}m")
    luigi_config("spark", "driver_java_options", "-XX:+UseSerialGC")
    luigi_config("spark_driver", "class_archive_dir", "")
    script = tmp_path / "job.py"
    script.write_text("from pyspark.sql import SparkSession\nSparkSession.builder.getOrCreate().stop()\n")
    monkeypatch.setattr(ScriptJob, "script", script)
    if starts:
        ScriptJob().run()
        return
    with pytest.raises(ValueError, match="is below"):
        ScriptJob().run()
    with pytest.raises(DriverError, match="INVALID_DRIVER_MEMORY"):
        ScriptJob().run_driver()  # past the check: Spark itself refuses it


def test_a_driver_that_starts_no_spark_runs_with_the_workers_python_and_reports_its_peak(
    tmp_path, monkeypatch, luigi_config, caplog
):
    """No spark-submit, so no JVM to start or to idle beside it; the log, progress and peak
    memory lines are the same as a Spark driver's."""
    luigi_config("spark_driver", "class_archive_dir", str(tmp_path / "archive"))
    luigi_config("spark", "driver_memory", "300m")  # a Spark setting: not this driver's
    script = tmp_path / "job.py"
    script.write_text(
        "import os, sys\n"
        "from drivers.common import peak_memory, progress\n"
        "progress(50, f'parent {os.path.basename(sys.executable)}')\n"
        "print(f'driver peak resident memory: {peak_memory()}')\n"
    )
    monkeypatch.setattr(NumpyScriptJob, "script", script)
    task = NumpyScriptJob()
    assert task.program_args() == [sys.executable, str(script)]
    messages = []
    monkeypatch.setattr(task, "set_status_message", messages.append, raising=False)
    with caplog.at_level(logging.INFO, logger="luigi-interface"):
        task.run()
    assert messages == [f"parent {sys.executable.rsplit('/', 1)[-1]}"]
    assert re.search(r" driver peak resident memory: Python \d+ MiB$", caplog.text, re.MULTILINE)
    assert not (tmp_path / "archive").exists()  # no JVM, no class archive
    monkeypatch.setattr(ScriptJob, "script", script)
    assert ScriptJob().program_args()[0].endswith("spark-submit")
