"""The S3 backend of the store: boto3 for buckets, existence checks, listings, deletes and
uploads, and pyarrow's S3 filesystem for reading. Unreachable endpoints and refused
credentials become one StoreError that says what to check."""

from __future__ import annotations

import contextlib
import functools
import io
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pyarrow.fs as pafs
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, NoCredentialsError

from storage.errors import StoreError

# Codes S3 answers with when a bucket or key does not exist (HEAD requests carry no body).
MISSING_CODES = {"404", "NoSuchKey", "NoSuchBucket"}
REFUSED_CODES = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"}
# What MinIO answers (HTTP 507) when its drives are at their free-space threshold; S3 has no such limit.
FULL_CODES = {"XMinioStorageFull"}
# Fail within seconds when the endpoint is down, rather than after minutes of retries.
BOTO_CONFIG = BotoConfig(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"})


class S3Backend:
    """The objects under `s3://bucket/prefix`; keys are relative to the prefix."""

    def __init__(self, bucket: str, prefix: str, endpoint: str | None, region: str | None):
        self.bucket, self.prefix, self.endpoint, self.region = bucket, prefix, endpoint, region

    @property
    def client(self):
        return client(self.endpoint, self.region)

    def filesystem(self) -> pafs.FileSystem:
        return _filesystem(self.endpoint, self.region)

    def object_key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def root_exists(self) -> bool:
        with self.errors():
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as e:
                if e.response["Error"]["Code"] in MISSING_CODES:
                    return False
                raise
        return True

    def create_root(self) -> None:
        kwargs: dict[str, Any] = {}
        if self.region and self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        with self.errors():
            try:
                self.client.create_bucket(Bucket=self.bucket, **kwargs)
            except ClientError as e:
                if e.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
                    raise

    def exists(self, key: str) -> bool:
        """Whether the object at `key` exists; a missing bucket is no error, only a missing object."""
        with self.errors():
            try:
                self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
            except ClientError as e:
                if e.response["Error"]["Code"] in MISSING_CODES:
                    return False
                raise
        return True

    def upload(self, key: str, chunks: Iterable[bytes]) -> None:
        # boto3 streams a multipart upload and aborts it on failure; pyarrow's S3 output
        # stream would complete a partial object when it is closed after an error.
        reader = io.BufferedReader(_ChunkReader(chunks), buffer_size=1 << 20)
        with self.errors():
            try:
                self.client.upload_fileobj(reader, self.bucket, self.object_key(key))
            except ClientError as e:
                if e.response["Error"]["Code"] not in FULL_CODES:
                    raise
                raise StoreError(
                    f"S3 at {self.endpoint or 'AWS'} (bucket {self.bucket}) has no room left "
                    f"({e.response['Error'].get('Message', '')}) for {key}: nothing was stored, and what was stored "
                    "before is unchanged. Free space on the server's drives (movielens-als-clean removes the "
                    "pipeline's outputs) or set [store] root in luigi.cfg to a bucket elsewhere"
                ) from None

    def list_files(self, prefix: str) -> list[tuple[str, int]]:
        paginator = self.client.get_paginator("list_objects_v2")
        start = len(self.object_key(""))
        with self.errors():
            objects = [
                (o["Key"][start:], o["Size"])
                for page in paginator.paginate(Bucket=self.bucket, Prefix=self.object_key(prefix))
                for o in page.get("Contents", [])
            ]
        return [(k, size) for k, size in objects if prefix.endswith("/") or k == prefix]

    def delete(self, prefix: str) -> None:
        keys = [{"Key": self.object_key(k)} for k, _ in self.list_files(prefix)]
        with self.errors():
            for start in range(0, len(keys), 1000):  # the most one DeleteObjects takes
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys[start : start + 1000]})

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """Turns an unreachable endpoint or refused credentials into one StoreError that
        names the endpoint and says what to check (botocore has already retried)."""
        where = f"S3 at {self.endpoint or 'AWS'} (bucket {self.bucket})"
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
            if code in REFUSED_CODES:
                raise StoreError(
                    f"{where} refused the credentials ({code}): check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                    "and that they may use this bucket"
                ) from None
            raise


def boto_options(endpoint: str | None, region: str | None) -> dict[str, Any]:
    """What boto3 needs to reach the store's S3: the endpoint, the region and the timeouts.
    Credentials come from boto3's own chain (environment, profile, role)."""
    options: dict[str, Any] = {k: v for k, v in (("endpoint_url", endpoint), ("region_name", region)) if v}
    return {**options, "config": BOTO_CONFIG}


@functools.cache
def client(endpoint: str | None, region: str | None):
    return boto3.client("s3", **boto_options(endpoint, region))


@functools.cache
def _filesystem(endpoint: str | None, region: str | None) -> pafs.FileSystem:
    options: dict[str, Any] = {"region": region} if region else {}
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        options.update(endpoint_override=parts.netloc, scheme=parts.scheme)
    # Credentials come from the AWS default chain: environment variables, profile, role.
    return pafs.S3FileSystem(
        connect_timeout=5, request_timeout=60, retry_strategy=pafs.AwsStandardS3RetryStrategy(3), **options
    )


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
