"""Shared fixtures: a download mirror over HTTP, an S3 server over HTTP, luigi configuration
files and a way to run the real `luigi` command against them. Everything listens on
127.0.0.1 and is stopped when its test ends."""

from __future__ import annotations

import configparser
import contextlib
import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import md5

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REAL_RELEASE_CANDIDATES = (
    Path(os.environ.get("MOVIELENS_SMALL_ZIP", "/nonexistent")),
    REPO.parent / "shared" / "data" / "ml-latest-small.zip",
    Path("/work/shared/data/ml-latest-small.zip"),
)
# Fake credentials for moto: the secret-leak tests grep every output for this value.
FAKE_KEY_ID = "AKIAFAKEKEYID0000000"
FAKE_SECRET = "fake-secret-5dQ8wZr1xPq7"


@pytest.fixture(scope="session")
def real_release_zip() -> Path:
    for candidate in REAL_RELEASE_CANDIDATES:
        if candidate.is_file():
            return candidate
    pytest.fail(
        "ml-latest-small.zip not found; set MOVIELENS_SMALL_ZIP or place it at "
        + " or ".join(map(str, REAL_RELEASE_CANDIDATES[1:]))
    )


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


class Mirror:
    """A folder served over HTTP, standing in for files.grouplens.org."""

    def __init__(self, directory: Path, base_url: str):
        self.directory = directory
        self.base_url = base_url

    def publish(self, name: str, data: bytes, published_md5: str | None = None) -> None:
        """Serves `<name>.zip` and `<name>.zip.md5` in GroupLens' BSD layout."""
        (self.directory / f"{name}.zip").write_bytes(data)
        (self.directory / f"{name}.zip.md5").write_text(f"MD5 ({name}.zip) = {published_md5 or md5(data)}\n")


@contextlib.contextmanager
def serving(directory: Path, handler=_QuietHandler) -> Iterator[str]:
    """An HTTP server for `directory` on 127.0.0.1 while the block runs; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def mirror(tmp_path) -> Iterator[Mirror]:
    directory = tmp_path / "mirror"
    directory.mkdir()
    with serving(directory) as base_url:
        yield Mirror(directory, base_url)


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 API over HTTP, with fake credentials in the environment for every client:
    boto3 and pyarrow here, and the luigi and Spark processes the tests start."""
    from moto.server import ThreadedMotoServer

    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_EC2_METADATA_DISABLED")}
    os.environ.update(
        AWS_ACCESS_KEY_ID=FAKE_KEY_ID, AWS_SECRET_ACCESS_KEY=FAKE_SECRET, AWS_EC2_METADATA_DISABLED="true"
    )
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def bucket_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


def write_config(path: Path, **sections: dict[str, str]) -> Path:
    """The repository's luigi.cfg with `sections` overriding it, written to `path`."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(REPO / "luigi.cfg")
    for section, options in sections.items():
        if not config.has_section(section):
            config.add_section(section)
        for key, value in options.items():
            config.set(section, key, str(value))
    with open(path, "w") as f:
        config.write(f)
    return path


@pytest.fixture
def luigi_config():
    """Sets options in this process's luigi configuration, restored afterwards."""
    import luigi

    config = luigi.configuration.get_config()
    saved = []

    def set_option(section: str, key: str, value: str) -> None:
        if not config.has_section(section):
            config.add_section(section)
        saved.append((section, key, config.get(section, key, None)))
        config.set(section, key, value)

    yield set_option
    for section, key, value in reversed(saved):
        if value is None:
            config.remove_option(section, key)
        else:
            config.set(section, key, value)


# Spark for tests: two cores, tiny shuffles.
TEST_SPARK = {"master": "local[2]", "conf": "spark.sql.shuffle.partitions=2|spark.ui.showConsoleProgress=false"}


@pytest.fixture(scope="session")
def class_archive_dir(tmp_path_factory) -> Path:
    """One JVM class archive for the whole session, as on a user's machine: the first Spark
    job writes it, the others start from it."""
    return tmp_path_factory.mktemp("class-archive")


@pytest.fixture
def pipeline_config(tmp_path, class_archive_dir):
    """Writes a luigi.cfg for a test run: the repository's, with Spark on two cores and tiny
    shuffles, and `sections` on top. Returns its path."""

    def write(**sections: dict[str, str]) -> Path:
        defaults = {
            "spark": {
                "master": "local[2]",
                "conf": "spark.sql.shuffle.partitions=2|spark.ui.showConsoleProgress=false",
            },
            "spark_driver": {"class_archive_dir": class_archive_dir},
        }
        return write_config(tmp_path / "luigi.cfg", **{**defaults, **sections})

    return write


@pytest.fixture
def workdir(tmp_path) -> Path:
    """An empty working directory for the luigi command: anything written to local disk
    by mistake shows up here."""
    path = tmp_path / "work"
    path.mkdir()
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def background_process(command_for_port, env: dict, ready: str, timeout: float = 120) -> Iterator[int]:
    """Runs `command_for_port(port)` on a free port until the block ends, once a line of its
    output contains `ready`; yields the port. Its output is drained, and shown if it never
    gets ready. Stopped with SIGTERM (then SIGKILL) at the end."""
    port = free_port()
    proc = subprocess.Popen(
        command_for_port(port), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    is_ready = threading.Event()
    log: list[str] = []

    def read_log():
        for line in proc.stdout:
            log.append(line)
            if ready in line:
                is_ready.set()

    reader = threading.Thread(target=read_log, daemon=True)
    reader.start()
    try:
        assert is_ready.wait(timeout), f"{command_for_port(port)[0]} did not start:\n" + "".join(log[-50:])
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(10)


def run_command(command: list[str], config: Path, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    # The virtual environment is deliberately not on PATH, as for a user who runs
    # .venv/bin/luigi without activating it: spark-submit must still be found.
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(config))
    return subprocess.run(command, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def run_luigi(args: list[str], config: Path, cwd: Path) -> subprocess.CompletedProcess:
    """The real `luigi --module pipeline ...` command, as a user runs it."""
    return run_command([str(BIN / "luigi"), "--module", "pipeline", *args], config, cwd)
