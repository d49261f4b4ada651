import collections
import logging
import sys

import pytest

from pipeline.sparkjob import ClassArchive, SparkJobError, SparkJobTask, bundled_spark_submit, redact_command
from tests.conftest import FAKE_SECRET


class FailingJob(SparkJobTask):
    """A driver script that fails the way a job does: a Python traceback, a non-zero exit."""

    script = None

    @property
    def app(self):
        return str(self.script)


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
    task = FailingJob()
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
    env = FailingJob().program_environment()
    assert env["PYSPARK_PYTHON"] == env["PYSPARK_DRIVER_PYTHON"] == sys.executable


def test_log_lines_become_progress_status_and_tracking_url():
    task = FailingJob()
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


def test_a_failing_job_raises_with_its_log_and_without_the_environment(tmp_path, monkeypatch, luigi_config, caplog):
    luigi_config("spark", "master", "local[1]")
    luigi_config("spark_driver", "class_archive_dir", "")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", FAKE_SECRET)
    script = tmp_path / "job.py"
    script.write_text("print('progress: 5% reading')\nraise ValueError('Parquet magic bytes not found')\n")
    monkeypatch.setattr(FailingJob, "script", script)
    with pytest.raises(SparkJobError) as failure:
        FailingJob().run()
    message = str(failure.value)
    assert message.startswith("Spark job job.py failed with exit code 1; the end of its log:\n")
    assert "\nprogress: 5% reading\n" in message
    assert "ValueError: Parquet magic bytes not found" in message
    assert FAKE_SECRET not in message and "PATH=" not in message
    assert FAKE_SECRET not in caplog.text


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
    monkeypatch.setattr(FailingJob, "script", script)
    with pytest.raises(SparkJobError) as failure:
        FailingJob().run()
    message = str(failure.value)
    assert "java.lang.OutOfMemoryError" in message
    assert message.endswith(
        "Spark ran out of memory: raise [spark] driver_memory in luigi.cfg (now 512m; "
        "in local mode the driver also runs the executors), or executor_memory on a cluster."
    )


def test_the_first_driver_writes_the_class_archive_and_later_ones_use_it(tmp_path, monkeypatch, luigi_config, caplog):
    luigi_config("spark", "master", "local[1]")
    luigi_config("spark_driver", "class_archive_dir", str(tmp_path / "cache"))
    script = tmp_path / "job.py"
    script.write_text("raise SystemExit(3)\n")
    monkeypatch.setattr(FailingJob, "script", script)
    caplog.set_level(logging.INFO, logger="luigi-interface")

    for _ in range(2):
        with pytest.raises(SparkJobError, match="exit code 3"):
            FailingJob().run()

    archives = list((tmp_path / "cache").iterdir())
    assert len(archives) == 1 and archives[0].suffix == ".jsa" and archives[0].stat().st_size > 1_000_000
    commands = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Running ")]
    assert "-XX:ArchiveClassesAtExit=" in commands[0]
    assert f"-XX:SharedArchiveFile={archives[0]}" in commands[1]


def test_an_unwritable_archive_folder_only_disables_the_archive(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert ClassArchive(blocker / "cache", str(bundled_spark_submit())).java_options() == ""
