"""Where every output lives: one store root, a local folder or `s3://bucket[/prefix]`.

A key such as `splits/ml-latest-small/user_random-0.2-seed42/train.parquet` maps to a Luigi
target (for `output()`) and to a path in a `pyarrow.fs` filesystem (for reading and writing
data), the same way on both backends, so tasks and Spark jobs never branch on the backend.

Writes keep one promise: nothing that looks complete is ever partial. A single-file output
appears atomically (a local rename; an S3 object is visible only once fully uploaded), and a
directory output is complete only once its `_SUCCESS` flag, written last, exists.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import os
import shutil
import uuid
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import luigi
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, NoCredentialsError
from luigi.contrib.s3 import S3Client, S3FlagTarget, S3Target

FLAG = "_SUCCESS"
# luigi's S3Client would accept these from luigi.cfg, but the Spark jobs read S3 through
# pyarrow, which only sees the environment; one source of credentials keeps both in step and
# keeps secrets out of committed files.
CREDENTIAL_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
# Codes S3 answers with when a bucket or key does not exist (HEAD requests carry no body).
MISSING_CODES = {"404", "NoSuchKey", "NoSuchBucket"}


class StoreError(RuntimeError):
    """A store that is misconfigured or cannot be reached; the message says what to change."""


class store(luigi.Config):
    root = luigi.Parameter(
        default="data",
        description="Where outputs go: a local folder (relative to the working directory) or "
        "s3://bucket[/prefix], with the endpoint and region in luigi's [s3] section.",
    )


@dataclass(frozen=True)
class Store:
    root: str  # an absolute local path, or s3://bucket[/prefix] without a trailing slash
    s3_endpoint: str | None = None
    s3_region: str | None = None

    @classmethod
    def at(cls, root: str, s3_endpoint: str | None = None, s3_region: str | None = None) -> Store:
        if root.startswith("s3://"):
            bucket = urlsplit(root).netloc
            if not bucket:
                raise StoreError(f"store root {root!r} names no bucket; use s3://bucket or s3://bucket/prefix")
            return cls(root.rstrip("/"), s3_endpoint or None, s3_region or None)
        if "://" in root:
            raise StoreError(f"store root {root!r}: only local folders and s3:// URLs are supported")
        return cls(str(Path(root).expanduser().resolve()))

    @classmethod
    def from_config(cls) -> Store:
        config = luigi.configuration.get_config()
        for key in CREDENTIAL_KEYS:
            if config.has_option("s3", key):
                raise StoreError(
                    f"[s3] {key} is set in the luigi configuration; remove it and provide credentials "
                    "through the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or an AWS profile"
                )
        return cls.at(store().root, config.get("s3", "endpoint_url", None), config.get("s3", "region_name", None))

    # -- passing the store to a Spark driver ------------------------------------------------

    def job_args(self) -> list[str]:
        args = ["--store-root", self.root]
        if self.s3_endpoint:
            args += ["--s3-endpoint", self.s3_endpoint]
        if self.s3_region:
            args += ["--s3-region", self.s3_region]
        return args

    @staticmethod
    def add_job_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--store-root", required=True)
        parser.add_argument("--s3-endpoint")
        parser.add_argument("--s3-region")

    @classmethod
    def from_job_arguments(cls, args: argparse.Namespace) -> Store:
        return cls.at(args.store_root, args.s3_endpoint, args.s3_region)

    # -- naming -----------------------------------------------------------------------------

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    @property
    def bucket(self) -> str:
        return urlsplit(self.root).netloc

    def uri(self, key: str) -> str:
        return f"{self.root}/{key}"

    def fs_path(self, key: str) -> str:
        """The key's path in `filesystem()`."""
        return self.uri(key).removeprefix("s3://")

    # -- luigi targets ----------------------------------------------------------------------

    def root_target(self) -> luigi.Target:
        return _RootTarget(self)

    def file(self, key: str) -> luigi.Target:
        if self.is_s3:
            return _S3ObjectTarget(self, self.uri(key))
        return luigi.LocalTarget(self.uri(key))

    def directory(self, key: str) -> luigi.Target:
        """A directory output: complete once its _SUCCESS flag exists."""
        if self.is_s3:
            return _S3FlagTarget(self, self.uri(key) + "/")
        return _LocalFlagTarget(self.uri(key))

    # -- the bucket or root folder ----------------------------------------------------------

    def root_exists(self) -> bool:
        if not self.is_s3:
            return os.path.isdir(self.root)
        with self._s3_errors():
            try:
                self._boto().head_bucket(Bucket=self.bucket)
            except ClientError as e:
                if e.response["Error"]["Code"] in MISSING_CODES:
                    return False
                raise
        return True

    def create_root(self) -> None:
        if not self.is_s3:
            os.makedirs(self.root, exist_ok=True)
            return
        kwargs: dict[str, Any] = {}
        if self.s3_region and self.s3_region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.s3_region}
        with self._s3_errors():
            try:
                self._boto().create_bucket(Bucket=self.bucket, **kwargs)
            except ClientError as e:
                if e.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
                    raise

    def object_exists(self, key: str) -> bool:
        """Whether the object at `key` exists; a missing bucket is no error, only a missing object."""
        if not self.is_s3:
            return os.path.isfile(self.fs_path(key))
        with self._s3_errors():
            try:
                self._boto().head_object(Bucket=self.bucket, Key=self._s3_key(key))
            except ClientError as e:
                if e.response["Error"]["Code"] in MISSING_CODES:
                    return False
                raise
        return True

    # -- reading and writing ----------------------------------------------------------------

    def filesystem(self) -> pafs.FileSystem:
        return _filesystem(self.is_s3, self.s3_endpoint, self.s3_region)

    def read_bytes(self, key: str) -> bytes:
        with self.filesystem().open_input_stream(self.fs_path(key)) as f:
            return f.read()

    def write_bytes(self, key: str, data: bytes) -> None:
        """Writes the object atomically: it is either absent or complete."""
        self.upload(key, [data])

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, obj: Any) -> None:
        self.write_bytes(key, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())

    def read_parquet(self, key: str) -> pa.Table:
        return pq.read_table(self.fs_path(key), filesystem=self.filesystem())

    def write_parquet(self, key: str, table: pa.Table) -> None:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        self.write_bytes(key, sink.getvalue().to_pybytes())

    def upload(self, key: str, chunks: Iterable[bytes]) -> None:
        """Streams chunks into the object at `key`, which appears only if the iterator finishes:
        an exception from it (a checksum mismatch, a dropped connection) stores nothing, and
        two writers of the same key never mix their bytes."""
        if self.is_s3:
            # boto3 streams a multipart upload and aborts it on failure; pyarrow's S3 output
            # stream would complete a partial object when it is closed after an error.
            reader = io.BufferedReader(_ChunkReader(chunks), buffer_size=1 << 20)
            with self._s3_errors():
                self._boto().upload_fileobj(reader, self.bucket, self._s3_key(key))
            return
        path = self.fs_path(key)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{uuid.uuid4().hex}.partial")
        try:
            with open(partial, "xb") as out:  # a name of its own; permissions from the umask
                out.writelines(chunks)
            os.replace(partial, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.remove(partial)
            raise

    @contextlib.contextmanager
    def open_zip(self, key: str) -> Iterator[zipfile.ZipFile]:
        """The zip at `key`, read in place: zipfile seeks, and the buffer turns its small
        reads into few large ones (each read is an HTTP range request on S3)."""
        with self.filesystem().open_input_file(self.fs_path(key)) as raw:
            try:
                archive = zipfile.ZipFile(io.BufferedReader(raw, buffer_size=8 << 20))
            except zipfile.BadZipFile as e:
                raise zipfile.BadZipFile(
                    f"{self.uri(key)} is not a readable zip ({e}): truncated or corrupt at the source; "
                    "remove it (movielens-als-clean) to download it again"
                ) from None
            with archive:
                yield archive

    def list_files(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of the file at `prefix`, or of every file under it if it ends in '/'."""
        if self.is_s3:
            paginator = self._boto().get_paginator("list_objects_v2")
            start = len(self._s3_key(""))
            with self._s3_errors():
                objects = [
                    (o["Key"][start:], o["Size"])
                    for page in paginator.paginate(Bucket=self.bucket, Prefix=self._s3_key(prefix))
                    for o in page.get("Contents", [])
                ]
            return [(k, size) for k, size in objects if prefix.endswith("/") or k == prefix]
        path = Path(self.fs_path(prefix))
        if not prefix.endswith("/"):
            return [(prefix, path.stat().st_size)] if path.is_file() else []
        return [(f"{prefix}{f.relative_to(path)}", f.stat().st_size) for f in sorted(path.rglob("*")) if f.is_file()]

    def delete(self, prefix: str) -> None:
        """Deletes the file at `prefix`, or everything under it if it ends in '/'."""
        if self.is_s3:
            keys = [{"Key": self._s3_key(k)} for k, _ in self.list_files(prefix)]
            with self._s3_errors():
                for start in range(0, len(keys), 1000):  # the most one DeleteObjects takes
                    self._boto().delete_objects(Bucket=self.bucket, Delete={"Objects": keys[start : start + 1000]})
        elif prefix.endswith("/"):
            shutil.rmtree(self.fs_path(prefix), ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.fs_path(prefix))

    def mark_complete(self, key: str) -> None:
        self.write_bytes(f"{key}/{FLAG}", b"")

    # -- internals --------------------------------------------------------------------------

    def _s3_key(self, key: str) -> str:
        return self.fs_path(key).split("/", 1)[1]

    def _luigi_s3(self) -> S3Client:
        return _luigi_s3_client(self.s3_endpoint, self.s3_region)

    def _boto(self):
        return self._luigi_s3().s3.meta.client

    @contextlib.contextmanager
    def _s3_errors(self) -> Iterator[None]:
        """Turns an unreachable endpoint or refused credentials into one StoreError that
        names the endpoint and says what to check (botocore has already retried)."""
        where = f"S3 at {self.s3_endpoint or 'AWS'} (bucket {self.bucket})"
        try:
            yield
        except (EndpointConnectionError, ConnectTimeoutError) as e:
            raise StoreError(f"cannot reach {where}: {e}; check [s3] endpoint_url and that the server is up") from None
        except NoCredentialsError:
            raise StoreError(
                f"no credentials for {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE"
            ) from None
        except ClientError as e:
            code = e.response["Error"]["Code"]
            if code in {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"}:
                raise StoreError(
                    f"{where} refused the credentials ({code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                    "and that they may use this bucket"
                ) from None
            raise


# Fail within seconds when the endpoint is down, rather than after minutes of retries.
_BOTO_CONFIG = BotoConfig(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"})


def utc_now() -> str:
    """The time stamp of a stored record (UTC, to the second)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@functools.cache
def _luigi_s3_client(endpoint: str | None, region: str | None) -> S3Client:
    options = {k: v for k, v in (("endpoint_url", endpoint), ("region_name", region)) if v}
    return S3Client(config=_BOTO_CONFIG, **options)


@functools.cache
def _filesystem(is_s3: bool, endpoint: str | None, region: str | None) -> pafs.FileSystem:
    if not is_s3:
        return pafs.LocalFileSystem()
    options: dict[str, Any] = {"region": region} if region else {}
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options.update(endpoint_override=parts.netloc, scheme=parts.scheme)
    # Credentials come from the AWS default chain: environment variables, profile, role.
    return pafs.S3FileSystem(
        connect_timeout=5, request_timeout=60, retry_strategy=pafs.AwsStandardS3RetryStrategy(3), **options
    )


# luigi's S3Client.exists also counts a key prefix as existing and fails when the bucket is
# missing; an output exists exactly when its object does.
class _S3ObjectTarget(S3Target):
    def __init__(self, store_: Store, uri: str):
        super().__init__(uri, client=store_._luigi_s3())
        self.store = store_

    def exists(self) -> bool:
        return self.store.object_exists(self.path.removeprefix(self.store.root + "/"))


class _S3FlagTarget(S3FlagTarget):
    def __init__(self, store_: Store, uri: str):
        super().__init__(uri, client=store_._luigi_s3())
        self.store = store_

    def exists(self) -> bool:
        return self.store.object_exists(self.path.removeprefix(self.store.root + "/") + self.flag)


class _LocalFlagTarget(luigi.LocalTarget):
    def exists(self) -> bool:
        return os.path.isfile(os.path.join(self.path, FLAG))


class _RootTarget(luigi.Target):
    """The bucket or root folder. luigi's S3Target says a bucket root always exists."""

    def __init__(self, store_: Store):
        self.store = store_

    def exists(self) -> bool:
        return self.store.root_exists()


class _ChunkReader(io.RawIOBase):
    """A read-only file over an iterator of byte chunks."""

    def __init__(self, chunks: Iterable[bytes]):
        self._chunks = iter(chunks)
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n
