"""Shared fixtures: a download mirror over HTTP, an S3 server over HTTP, luigi configuration
files and a JVM class archive for the session. Everything listens on 127.0.0.1 and is stopped
when its test ends. What tests import lives in tests/helpers.py."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    FAKE_KEY_ID,
    FAKE_SECRET,
    REPO,
    TEST_SPARK,
    Mirror,
    TlsFiles,
    moto_over_tls,
    real_release_candidates,
    recording,
    serving,
    write_config,
    write_tls_files,
)


@pytest.fixture(scope="session")
def real_release_zip() -> Path:
    candidates = real_release_candidates()
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    pytest.fail(
        "ml-latest-small.zip not found; set MOVIELENS_SMALL_ZIP or place it at " + " or ".join(map(str, candidates))
    )


@pytest.fixture(scope="session")
def ml_100k_zip() -> Path:
    """The real ml-100k, with its official folds, from the shared data folder; its licence
    forbids redistribution, so it is never in the repository and the tests skip without it."""
    path = REPO.parent / "shared" / "data" / "ml-100k.zip"
    if not path.is_file():
        pytest.skip(f"{path} is absent: ml-100k may not be redistributed, so only a shared copy can be used")
    return path


@pytest.fixture
def mirror(tmp_path) -> Iterator[Mirror]:
    directory = tmp_path / "mirror"
    directory.mkdir()
    requests: list[str] = []
    with serving(directory, recording(requests)) as base_url:
        yield Mirror(directory, base_url, requests)


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
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> TlsFiles:
    return write_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def tls_s3_endpoint(s3_endpoint, tls_files) -> Iterator[str]:
    """moto's S3 API over HTTPS, its certificate signed by `tls_files.ca`, with the same fake
    credentials (and the same buckets) as `s3_endpoint`."""
    with moto_over_tls(tls_files) as url:
        yield url


@pytest.fixture
def bucket_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


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
        defaults = {"spark": TEST_SPARK, "spark_driver": {"class_archive_dir": class_archive_dir}}
        return write_config(tmp_path / "luigi.cfg", **{**defaults, **sections})

    return write


@pytest.fixture
def workdir(tmp_path) -> Path:
    """An empty working directory for the luigi command: anything written to local disk
    by mistake shows up here."""
    path = tmp_path / "work"
    path.mkdir()
    return path
