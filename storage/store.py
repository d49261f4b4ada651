"""Where every output lives: one store root, a local folder or `s3://bucket[/prefix]`.

A key such as `splits/ml-latest-small/user_random-0.2-seed42/train.parquet` (pipeline.layout
builds them all) maps to a file to read and to an atomic write, the same way on both
backends, so tasks and Spark jobs never branch on the backend.
The Luigi targets of the same keys are in pipeline.targets.

Writes keep one promise: nothing that looks complete is ever partial. A single-file output
appears atomically (a local rename; an S3 object is visible only once fully uploaded), and a
directory output is complete only once its `_SUCCESS` flag, written last, exists.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import io
import json
import os
import shutil
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.parquet as pq

from storage.errors import StoreError
from storage.s3 import S3Backend, S3Settings

FLAG = "_SUCCESS"
# A write that failed for want of space: the disk is full, or the user's quota on it is.
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class Store:
    root: str  # an absolute local path, or s3://bucket[/prefix] without a trailing slash
    s3: S3Settings = field(default_factory=S3Settings)  # how an s3:// root is reached; unused for a local one

    @classmethod
    def at(
        cls,
        root: str,
        s3_endpoint: str | None = None,
        s3_region: str | None = None,
        s3_verify: bool | str | None = None,
        s3_use_ssl: bool | str | None = None,
    ) -> Store:
        """The store at `root`; for an s3:// root, reached as luigi.cfg's [s3] endpoint_url,
        region_name, verify and use_ssl say (strings as written there, checked here)."""
        if root.startswith("s3://"):
            if not urlsplit(root).netloc:
                raise StoreError(f"[store] root {root!r} names no bucket; use s3://bucket or s3://bucket/prefix")
            return cls(root.rstrip("/"), S3Settings.parse(s3_endpoint, s3_region, s3_verify, s3_use_ssl))
        if "://" in root:
            raise StoreError(f"[store] root {root!r}: only local folders and s3:// URLs are supported")
        return cls(str(Path(root).expanduser().resolve()))

    @property
    def is_s3(self) -> bool:
        return self.root.startswith("s3://")

    @functools.cached_property
    def backend(self) -> S3Backend | LocalBackend:
        if self.is_s3:
            parts = urlsplit(self.root)
            return S3Backend(parts.netloc, parts.path.strip("/"), self.s3)
        return LocalBackend(self.root)

    def arguments(self) -> dict[str, str]:
        """What opens this store in another process, as strings named as the drivers' flags
        (--store-root, --s3-endpoint, ...: pipeline.sparkjob.job_flags writes them, and
        drivers.common.job_store hands them back to `Store.at`)."""
        s3 = self.s3.arguments() if self.is_s3 else {}
        return {"store_root": self.root, **{f"s3_{name}": value for name, value in s3.items()}}

    def uri(self, key: str) -> str:
        return f"{self.root}/{key}"

    def key_of(self, uri: str) -> str:
        return uri.removeprefix(self.root + "/")

    # -- the root, existence, listing, deleting ---------------------------------------------

    def root_exists(self) -> bool:
        return self.backend.root_exists()

    def create_root(self) -> None:
        self.backend.create_root()

    def exists(self, key: str) -> bool:
        """Whether the file at `key` exists."""
        return self.backend.exists(key)

    def is_complete(self, key: str) -> bool:
        """Whether the directory output at `key` is complete: its flag exists."""
        return self.backend.exists(f"{key}/{FLAG}")

    def list_files(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of the file at `prefix`, or of every file under it if it ends in '/'."""
        return self.backend.list_files(prefix)

    def delete(self, prefix: str) -> None:
        """Deletes the file at `prefix`, or everything under it if it ends in '/'."""
        self.backend.delete(prefix)

    # -- reading and writing ----------------------------------------------------------------

    def read_bytes(self, key: str) -> bytes:
        return self.backend.read_bytes(key)

    def upload(self, key: str, chunks: Iterable[bytes]) -> None:
        """Streams chunks into the object at `key`, which appears only if the iterator finishes:
        an exception from it (a checksum mismatch, a dropped connection) stores nothing, and
        two writers of the same key never mix their bytes."""
        self.backend.upload(key, chunks)

    def write_bytes(self, key: str, data: bytes) -> None:
        """Writes the object atomically: it is either absent or complete."""
        self.upload(key, [data])

    def read_json(self, key: str) -> Any:
        return json.loads(self.read_bytes(key))

    def write_json(self, key: str, obj: Any) -> None:
        self.write_bytes(key, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())

    def read_parquet(self, key: str) -> pa.Table:
        # One whole read: on S3 a single request, where Parquet's column-by-column reads would
        # be one range request each.
        return pq.read_table(pa.BufferReader(self.read_bytes(key)))

    def write_parquet(self, key: str, table: pa.Table, **options: Any) -> None:
        """`table` as Parquet at `key`; `options` are pyarrow.parquet.write_table's."""
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, **options)
        self.write_bytes(key, sink.getvalue().to_pybytes())

    def write_files(self, key: str, files: Mapping[str, pa.Table | bytes | Any]) -> None:
        """Writes the directory output at `key`, file by file (a table as Parquet, bytes as
        they are, anything else as JSON), and completes it."""
        for name, content in files.items():
            if isinstance(content, pa.Table):
                self.write_parquet(f"{key}/{name}", content)
            elif isinstance(content, bytes):
                self.write_bytes(f"{key}/{name}", content)
            else:
                self.write_json(f"{key}/{name}", content)
        self.mark_complete(key)

    def read_files(self, key: str, names: Iterable[str]) -> dict[str, pa.Table | bytes | Any]:
        """The files `names` of the directory output at `key`, as `write_files` wrote them
        (told apart by their names: .parquet, .json, anything else bytes)."""
        readers = {".parquet": self.read_parquet, ".json": self.read_json}
        return {name: readers.get(Path(name).suffix, self.read_bytes)(f"{key}/{name}") for name in names}

    def mark_complete(self, key: str) -> None:
        """Completes the directory output at `key`: call it once every file is written."""
        self.write_bytes(f"{key}/{FLAG}", b"")

    @contextlib.contextmanager
    def open_zip(self, key: str) -> Iterator[zipfile.ZipFile]:
        """The zip at `key`, read in place: zipfile seeks, and the buffer turns its small
        reads into few large ones (each read is an HTTP range request on S3)."""
        with self.backend.open_input(key) as raw:
            try:
                archive = zipfile.ZipFile(io.BufferedReader(raw, buffer_size=8 << 20))
            # A file too short to hold a zip's directory makes the seek before its start fail first.
            except (zipfile.BadZipFile, OSError) as e:
                raise zipfile.BadZipFile(
                    f"{self.uri(key)} is not a readable zip ({e}): truncated or corrupt at the source; "
                    "remove it (movielens-als-clean) to download it again"
                ) from None
            with archive:
                yield archive


class LocalBackend:
    """Files under a local folder; each appears by an atomic rename."""

    def __init__(self, root: str):
        self.root = root

    def path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def read_bytes(self, key: str) -> bytes:
        return Path(self.path(key)).read_bytes()

    def open_input(self, key: str) -> io.RawIOBase:
        return open(self.path(key), "rb", buffering=0)

    def root_exists(self) -> bool:
        return os.path.isdir(self.root)

    def create_root(self) -> None:
        if os.path.exists(self.root) and not os.path.isdir(self.root):
            raise StoreError(
                f"[store] root {self.root} is a file, not a folder: set [store] root in luigi.cfg to a folder"
            )
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as e:
            raise StoreError(
                f"[store] root {self.root} cannot be created ({e.strerror}): set [store] root in luigi.cfg "
                "to a folder this user may create or write"
            ) from None

    def exists(self, key: str) -> bool:
        return os.path.isfile(self.path(key))

    def upload(self, key: str, chunks: Iterable[bytes]) -> None:
        path = self.path(key)
        partial = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.{uuid.uuid4().hex}.partial")
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(partial, "xb") as out:  # a name of its own; permissions from the umask
                out.writelines(chunks)
            os.replace(partial, path)
        except BaseException as e:
            with contextlib.suppress(FileNotFoundError):
                os.remove(partial)
            if isinstance(e, OSError) and e.errno in DISK_FULL:
                raise StoreError(
                    f"the store {self.root} has no room left on its disk ({e.strerror}) for {key}: nothing was "
                    "stored, and what was stored before is unchanged. Free space on that disk (movielens-als-clean "
                    "removes the pipeline's outputs) or set [store] root in luigi.cfg to a folder on a disk with room"
                ) from None
            raise

    def list_files(self, prefix: str) -> list[tuple[str, int]]:
        path = Path(self.path(prefix))
        if not prefix.endswith("/"):
            return [(prefix, path.stat().st_size)] if path.is_file() else []
        return [(f"{prefix}{f.relative_to(path)}", f.stat().st_size) for f in sorted(path.rglob("*")) if f.is_file()]

    def delete(self, prefix: str) -> None:
        if prefix.endswith("/"):
            shutil.rmtree(self.path(prefix), ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.path(prefix))


def utc_now() -> str:
    """The time stamp of a stored record (UTC, to the second)."""
    return datetime.now(UTC).isoformat(timespec="seconds")
