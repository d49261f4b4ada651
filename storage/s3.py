"""The S3 backend of the store: one boto3 client for everything (buckets, existence checks,
listings, deletes, uploads and reads), so [s3] verify and use_ssl reach every request; pyarrow's
S3 filesystem cannot turn certificate checks off and ignores AWS_CA_BUNDLE. Unreachable
endpoints, untrusted certificates and refused credentials become one StoreError that says
what to check."""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import ssl
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    SSLError,
)
from urllib3.exceptions import InsecureRequestWarning

from storage.errors import StoreError

# Codes S3 answers with when a bucket or key does not exist (HEAD requests carry no body).
MISSING_CODES = {"404", "NoSuchKey", "NoSuchBucket"}
REFUSED_CODES = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"}
# What MinIO answers (HTTP 507) when its drives are at their free-space threshold; S3 has no such limit.
FULL_CODES = {"XMinioStorageFull"}
# Fail within seconds when the endpoint is down, rather than after minutes of retries.
BOTO_CONFIG = BotoConfig(connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"})


log = logging.getLogger(__name__)
TRUE, FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


@dataclass(frozen=True)
class S3Settings:
    """How the store reaches S3: luigi.cfg's [s3] endpoint_url, region_name, verify and use_ssl,
    checked once by `parse`. `verify` is True (boto3's own trust: the CAs in AWS_CA_BUNDLE if
    set, else its bundled ones), False (no certificate check) or the path of a CA bundle;
    `use_ssl` is None when unset (the endpoint's scheme decides)."""

    endpoint: str | None = None
    region: str | None = None
    verify: bool | str = True
    use_ssl: bool | None = None

    @classmethod
    def parse(
        cls, endpoint: str | None, region: str | None, verify: bool | str | None, use_ssl: bool | str | None
    ) -> S3Settings:
        """The settings from the strings luigi.cfg (or a job's flags) holds, or StoreError naming
        the [s3] key to fix."""
        use_ssl = _boolean("use_ssl", use_ssl)
        return cls(_endpoint(endpoint, use_ssl), region or None, _verify(verify), use_ssl)

    def arguments(self) -> dict[str, str]:
        """The settings as strings that `parse` takes back, those unset left out."""
        values = {"endpoint": self.endpoint, "region": self.region, "verify": self.verify, "use_ssl": self.use_ssl}
        return {k: str(v).lower() if isinstance(v, bool) else v for k, v in values.items() if v is not None}

    def boto_options(self) -> dict[str, Any]:
        """boto3's arguments for a client or resource, every one given: luigi's S3Client fills
        the missing ones from [s3] as raw strings, and boto3 would take verify = "true" for the
        path of a CA bundle. verify=None is boto3's own trust (verify=True would skip
        AWS_CA_BUNDLE). Credentials come from boto3's own chain (environment, profile, role)."""
        if self.verify is False:
            _unverified(self.endpoint or "AWS")
        return {
            "endpoint_url": self.endpoint,
            "region_name": self.region,
            "use_ssl": self.use_ssl is not False,
            "verify": None if self.verify is True else self.verify,
            "config": BOTO_CONFIG,
        }


def _boolean(key: str, value: bool | str | None) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise StoreError(f"[s3] {key} = {value} is neither true nor false: set it to one of them, or remove it")


def _endpoint(endpoint: str | None, use_ssl: bool | None) -> str | None:
    """The endpoint with its scheme: https:// for a bare host:port unless use_ssl is false."""
    if not endpoint:
        return None
    if "://" not in endpoint:
        return f"{'http' if use_ssl is False else 'https'}://{endpoint}"
    if use_ssl is not None and (urlsplit(endpoint).scheme == "https") != use_ssl:
        raise StoreError(
            f"[s3] use_ssl = {str(use_ssl).lower()} contradicts [s3] endpoint_url = {endpoint}: boto3 follows the "
            "endpoint's scheme; make the two agree, or remove use_ssl"
        )
    return endpoint


def _verify(value: bool | str | None) -> bool | str:
    if value is None or isinstance(value, bool) or value.strip().lower() in TRUE | FALSE:
        return _boolean("verify", value) is not False
    path = os.path.abspath(os.path.expanduser(value.strip()))
    if not os.path.isfile(path):
        raise StoreError(
            f"[s3] verify = {value}: no such file ({path}); set it to the CA bundle (PEM) that signed the "
            "endpoint's certificate, to true, or to false"
        )
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, OSError) as e:
        raise StoreError(
            f"[s3] verify = {value}: not a readable CA bundle in PEM ({e}); set it to the CA certificate(s) that "
            "signed the endpoint's certificate"
        ) from None
    return path


@functools.cache
def _unverified(endpoint: str) -> None:
    """Says once per process that certificates are not checked, instead of urllib3's
    warning on every request."""
    warnings.filterwarnings("ignore", category=InsecureRequestWarning)
    log.warning("[s3] verify = false: the certificate of S3 at %s is not checked", endpoint)


class S3Backend:
    """The objects under `s3://bucket/prefix`; keys are relative to the prefix."""

    def __init__(self, bucket: str, prefix: str, settings: S3Settings):
        self.bucket, self.prefix, self.settings = bucket, prefix, settings
        self.where = f"S3 at {settings.endpoint or 'AWS'} (bucket {bucket})"

    @property
    def client(self):
        return client(self.settings)

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
        region = self.settings.region
        if region and region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
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

    def read_bytes(self, key: str, **get_options: str) -> bytes:
        """The object at `key` (the part `Range` names, if given); FileNotFoundError if it is missing."""
        with self.errors(), self.missing_file(key):
            response = self.client.get_object(Bucket=self.bucket, Key=self.object_key(key), **get_options)
            return response["Body"].read()

    def open_input(self, key: str) -> io.RawIOBase:
        """The object at `key` as a seekable file whose reads are range requests."""
        with self.errors(), self.missing_file(key):
            size = self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))["ContentLength"]
        return _RangeReader(self, key, size)

    @contextlib.contextmanager
    def missing_file(self, key: str) -> Iterator[None]:
        """A missing object (or bucket) read as a missing file is, as the local backend says it."""
        try:
            yield
        except ClientError as e:
            if e.response["Error"]["Code"] not in MISSING_CODES:
                raise
            raise FileNotFoundError(f"s3://{self.bucket}/{self.object_key(key)} does not exist") from None

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
                    f"{self.where} has no room left "
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
        where = self.where
        try:
            yield
        except SSLError as e:
            raise StoreError(self.tls_failure(str(e.kwargs.get("error", e)))) from None
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

    def tls_failure(self, reason: str) -> str:
        """What to do about a failed TLS handshake: an untrusted certificate names the CAs it
        was checked against and the settings that choose them."""
        if "CERTIFICATE_VERIFY_FAILED" not in reason:
            return (
                f"TLS with {self.where} failed ({reason}): check that [s3] endpoint_url says https:// only for a "
                "server that speaks TLS"
            )
        detail = reason.partition("certificate verify failed: ")[2].partition(" (_ssl")[0] or reason
        if isinstance(self.settings.verify, str):
            checked = f"the CA bundle [s3] verify names ({self.settings.verify})"
        elif os.environ.get("AWS_CA_BUNDLE"):
            checked = f"the CA bundle AWS_CA_BUNDLE names ({os.environ['AWS_CA_BUNDLE']})"
        else:
            checked = "the default CAs"
        return (
            f"the certificate of {self.where} is not trusted by {checked}: {detail}. Set [s3] verify in luigi.cfg "
            "(or AWS_CA_BUNDLE) to the CA bundle (PEM) that signed it, or [s3] verify = false to not check it"
        )


@functools.cache
def client(settings: S3Settings):
    return boto3.client("s3", **settings.boto_options())


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


class _RangeReader(io.RawIOBase):
    """A read-only, seekable file over an S3 object of `size` bytes: each read is a range request."""

    def __init__(self, backend: S3Backend, key: str, size: int):
        self._backend, self._key, self._size, self._position = backend, key, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        position = offset + {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if position < 0:
            raise OSError(f"seek to {position}, before the start of {self._key}")
        self._position = position
        return position

    def readinto(self, buffer) -> int:
        n = min(len(buffer), self._size - self._position)
        if n <= 0:
            return 0
        data = self._backend.read_bytes(self._key, Range=f"bytes={self._position}-{self._position + n - 1}")
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)
