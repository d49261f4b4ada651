"""The store on both backends: a local folder, and S3 over HTTP (moto's server)."""

import http.server
import os
import socket
import threading
import zipfile
from datetime import UTC

import pyarrow as pa
import pytest

from pipeline.config import configured_store
from pipeline.jobs import job_flags
from pipeline.targets import RootTarget, directory_target, file_target
from storage import S3Settings, Store, StoreError
from tests.helpers import FAKE_KEY_ID, FAKE_SECRET


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path, bucket_name) -> Store:
    if request.param == "local":
        return Store.at(str(tmp_path / "root"))
    endpoint = request.getfixturevalue("s3_endpoint")
    return Store.at(f"s3://{bucket_name}/prefix", endpoint, "us-east-1")


@pytest.fixture
def ready(store) -> Store:
    store.create_root()
    return store


def failing_after(chunks):
    yield from chunks
    raise RuntimeError("checksum mismatch")


def test_a_local_root_is_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Store.at("data")
    assert store.root == str(tmp_path / "data")
    assert store.uri("splits/x/train.parquet") == f"{tmp_path}/data/splits/x/train.parquet"
    assert store.arguments() == {"store_root": str(tmp_path / "data")}


def test_an_s3_root_maps_keys_into_its_bucket_and_prefix():
    store = Store.at("s3://bucket/some/prefix/", "http://127.0.0.1:9000", "eu-west-1")
    assert (store.is_s3, store.backend.bucket) == (True, "bucket")
    assert store.uri("k/v.json") == "s3://bucket/some/prefix/k/v.json"
    assert Store.at(*_reparse(job_flags(store))) == store


def _reparse(args):
    values = dict(zip(args[::2], args[1::2], strict=True))
    return [values.get(f"--{name}") for name in ("store-root", "s3-endpoint", "s3-region", "s3-verify", "s3-use-ssl")]


@pytest.mark.parametrize(
    "root, message", [("s3://", "names no bucket"), ("gs://bucket", "only local folders and s3://")]
)
def test_bad_roots_are_rejected(root, message):
    with pytest.raises(StoreError, match=message):
        Store.at(root)


def test_credentials_in_the_luigi_config_are_refused(luigi_config):
    luigi_config("s3", "aws_secret_access_key", "do-not-commit-me")
    with pytest.raises(StoreError, match=r"\[s3\] aws_secret_access_key is set .* through the environment") as e:
        configured_store()
    assert "do-not-commit-me" not in str(e.value)


def test_the_store_comes_from_the_luigi_config(luigi_config, tmp_path):
    luigi_config("store", "root", "s3://configured/pre")
    luigi_config("s3", "endpoint_url", "http://127.0.0.1:9000")
    luigi_config("s3", "region_name", "eu-west-1")
    assert configured_store() == Store("s3://configured/pre", S3Settings("http://127.0.0.1:9000", "eu-west-1"))


def test_the_root_exists_only_once_created_and_creating_twice_is_fine(store):
    assert not RootTarget(store).exists()
    store.create_root()
    store.create_root()
    assert RootTarget(store).exists()


def test_targets_of_a_missing_bucket_or_folder_do_not_exist(store):
    assert not file_target(store, "downloads/x.zip").exists()
    assert not directory_target(store, "splits/x").exists()


def test_json_round_trips(ready):
    ready.write_json("a/b.json", {"rmse": 0.9})
    assert ready.read_json("a/b.json") == {"rmse": 0.9}
    assert file_target(ready, "a/b.json").exists()


def test_upload_stores_the_whole_stream(ready):
    chunks = [b"x" * 3_000_000, b"y" * 3_000_000, b"z" * 3_000_000]  # past boto3's multipart threshold
    ready.upload("downloads/r.zip", chunks)
    assert ready.read_bytes("downloads/r.zip") == b"".join(chunks)


@pytest.mark.parametrize("size", [10, 9_000_000])  # one PUT, and a multipart upload
def test_a_failed_upload_stores_nothing_and_keeps_the_old_object(ready, size):
    ready.write_bytes("downloads/r.zip", b"previous")
    with pytest.raises(RuntimeError, match="checksum mismatch"):
        ready.upload("downloads/r.zip", failing_after([b"n" * size]))
    assert ready.read_bytes("downloads/r.zip") == b"previous"
    with pytest.raises(RuntimeError, match="checksum mismatch"):
        ready.upload("downloads/new.zip", failing_after([b"n" * size]))
    assert not file_target(ready, "downloads/new.zip").exists()
    assert_no_leftovers(ready)


def assert_no_leftovers(store):
    if store.is_s3:
        assert store.backend.client.list_multipart_uploads(Bucket=store.backend.bucket).get("Uploads", []) == []
    else:
        assert not [f for f in os.listdir(store.backend.path("downloads")) if f.endswith(".partial")]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full, whose writes fail with ENOSPC")
@pytest.mark.parametrize("size", [10, 3_000_000])  # flushed only on close, and written while streaming
def test_a_full_disk_stores_nothing_and_says_what_to_free(tmp_path, monkeypatch, size):
    import storage.store

    store = Store.at(str(tmp_path / "root"))
    store.create_root()
    store.write_bytes("downloads/r.zip", b"previous")

    def on_a_full_disk(path, mode):
        """The partial file is created as usual, but its bytes go where the kernel says the disk is full."""
        open(path, mode).close()
        return open("/dev/full", "wb")

    monkeypatch.setattr(storage.store, "open", on_a_full_disk, raising=False)
    for key in ("downloads/r.zip", "downloads/new.zip"):
        with pytest.raises(StoreError) as e:
            store.upload(key, [b"n" * size])
        assert str(e.value) == (
            f"the store {store.root} has no room left on its disk (No space left on device) for {key}: nothing was "
            "stored, and what was stored before is unchanged. Free space on that disk (movielens-als-clean removes "
            "the pipeline's outputs) or set [store] root in luigi.cfg to a folder on a disk with room"
        )
    monkeypatch.undo()
    assert store.read_bytes("downloads/r.zip") == b"previous"
    assert not store.exists("downloads/new.zip")
    assert sorted(os.listdir(store.backend.path("downloads"))) == ["r.zip"]


def test_a_directory_is_complete_only_with_its_flag(ready):
    ready.write_parquet("splits/s/train.parquet", pa.table({"a": [1, 2]}))
    assert not directory_target(ready, "splits/s").exists()
    ready.mark_complete("splits/s")
    assert directory_target(ready, "splits/s").exists()
    assert ready.read_parquet("splits/s/train.parquet").column("a").to_pylist() == [1, 2]


def test_concurrent_writers_of_one_key_never_mix_their_bytes(ready):
    both_writing = threading.Barrier(2)

    def chunks(byte: bytes):
        for _ in range(3):
            both_writing.wait(timeout=60)  # each chunk is written while the other writer is mid-file
            yield byte * 3_000_000

    writers = [threading.Thread(target=ready.upload, args=("downloads/r.zip", chunks(b))) for b in (b"a", b"b")]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join()
    assert ready.read_bytes("downloads/r.zip") in (b"a" * 9_000_000, b"b" * 9_000_000)
    assert_no_leftovers(ready)


def test_a_zip_is_read_in_place(ready, real_release_zip):
    ready.write_bytes("downloads/ml-latest-small.zip", real_release_zip.read_bytes())
    with ready.open_zip("downloads/ml-latest-small.zip") as archive:
        assert archive.read("ml-latest-small/README.txt").startswith(b"Summary")


class Refusing(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint that refuses every request, as S3 does for unknown credentials."""

    status, body = 403, b"<Error><Code>InvalidAccessKeyId</Code><Message>The key does not exist.</Message></Error>"

    def _refuse(self):
        body = self.body
        self.send_response(self.status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = _refuse

    def log_message(self, *args):
        pass


class Full(Refusing):
    """A MinIO server whose drives are at their free-space threshold: it refuses every write."""

    status, body = (
        507,
        (
            b"<Error><Code>XMinioStorageFull</Code><Message>Storage backend has reached its minimum free drive "
            b"threshold. Please delete a few objects to proceed.</Message></Error>"
        ),
    )


def serving(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def refusing_endpoint():
    yield from serving(Refusing)


@pytest.fixture
def full_endpoint():
    yield from serving(Full)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_endpoint_is_one_error_naming_it():
    endpoint = f"http://127.0.0.1:{closed_port()}"
    store = Store.at("s3://bucket", endpoint, "us-east-1")
    for operation in (RootTarget(store).exists, file_target(store, "downloads/x.zip").exists, store.create_root):
        with pytest.raises(
            StoreError, match=rf"cannot reach S3 at {endpoint} \(bucket bucket\): .*check \[s3\] endpoint_url"
        ):
            operation()


def test_refused_credentials_are_one_error_naming_the_endpoint(refusing_endpoint, s3_endpoint):
    store = Store.at("s3://bucket", refusing_endpoint, "us-east-1")
    for operation in (RootTarget(store).exists, directory_target(store, "splits/x").exists, store.create_root):
        with pytest.raises(
            StoreError, match=rf"S3 at {refusing_endpoint} \(bucket bucket\) refused the credentials"
        ) as e:
            operation()
        assert FAKE_SECRET not in str(e.value) and FAKE_KEY_ID not in str(e.value)


@pytest.mark.parametrize("size", [10, 9_000_000])  # one PUT, and a multipart upload
def test_a_full_minio_is_one_error_saying_what_to_free(full_endpoint, s3_endpoint, size):
    store = Store.at("s3://bucket/prefix", full_endpoint, "us-east-1")
    with pytest.raises(StoreError) as e:
        store.upload("downloads/r.zip", [b"n" * size])
    assert str(e.value) == (
        f"S3 at {full_endpoint} (bucket bucket) has no room left (Storage backend has reached its minimum free "
        "drive threshold. Please delete a few objects to proceed.) for downloads/r.zip: nothing was stored, and "
        "what was stored before is unchanged. Free space on the server's drives (movielens-als-clean removes the "
        "pipeline's outputs) or set [store] root in luigi.cfg to a bucket elsewhere"
    )


def test_record_time_stamps_follow_the_clock(monkeypatch):
    from datetime import datetime

    import storage.store

    times = iter([datetime(2026, 1, 1, 12, 0, 0, 999, UTC), datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)])

    class Clock:
        @staticmethod
        def now(tz):
            return next(times)

    monkeypatch.setattr(storage.store, "datetime", Clock)
    assert [storage.store.utc_now(), storage.store.utc_now()] == [
        "2026-01-01T12:00:00+00:00",
        "2026-01-01T12:00:05+00:00",
    ]


@pytest.mark.parametrize("data", [b"", b"PK", b"not a zip at all"], ids=["empty", "two-bytes", "text"])
def test_an_empty_or_tiny_file_is_not_a_readable_zip(ready, data):
    ready.write_bytes("downloads/r.zip", data)
    with (
        pytest.raises(zipfile.BadZipFile, match=r"downloads/r.zip is not a readable zip .* remove it"),
        ready.open_zip("downloads/r.zip"),
    ):
        pass


def test_a_local_root_that_is_a_file_names_the_setting(tmp_path):
    (tmp_path / "data").write_text("not a folder")
    store = Store.at(str(tmp_path / "data"))
    assert not RootTarget(store).exists()
    with pytest.raises(StoreError, match=r"\[store\] root .*/data is a file, not a folder: set \[store\] root"):
        store.create_root()
    assert (tmp_path / "data").read_text() == "not a folder"


def test_a_local_root_that_cannot_be_created_names_the_setting(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match=r"\[store\] root .*/file/data cannot be created \(Not a directory\)"):
        Store.at(str(tmp_path / "file" / "data")).create_root()
