"""The Luigi targets of store keys, for `output()`: a file, a directory complete once its
`_SUCCESS` flag exists, and the store's root (the bucket or folder). Each exists exactly when
the store says so: luigi's own S3 targets count a key prefix as an existing file and a
bucket root as always there."""

from __future__ import annotations

import functools

import luigi
from luigi.contrib.s3 import S3Client, S3FlagTarget, S3Target

from storage import FLAG, S3Settings, Store
from storage.s3 import S3Backend


def file_target(store: Store, key: str) -> luigi.Target:
    if isinstance(store.backend, S3Backend):
        return _S3FileTarget(store, key, store.backend)
    return luigi.LocalTarget(store.uri(key))


def directory_target(store: Store, key: str) -> luigi.Target:
    if isinstance(store.backend, S3Backend):
        return _S3DirectoryTarget(store, key, store.backend)
    return _LocalDirectoryTarget(store, key)


class RootTarget(luigi.Target):
    """The bucket or root folder."""

    def __init__(self, store: Store):
        self.store = store

    def exists(self) -> bool:
        return self.store.root_exists()


@functools.cache
def luigi_client(settings: S3Settings) -> S3Client:
    """luigi's S3 client for the targets, reaching S3 as the store does: every boto3 option
    given, since S3Client would otherwise pass [s3] verify and use_ssl to boto3 as strings."""
    return S3Client(**settings.boto_options())


class _S3FileTarget(S3Target):
    def __init__(self, store: Store, key: str, backend: S3Backend):
        super().__init__(store.uri(key), client=luigi_client(backend.settings))
        self.store, self.key = store, key

    def exists(self) -> bool:
        return self.store.exists(self.key)


class _S3DirectoryTarget(S3FlagTarget):
    def __init__(self, store: Store, key: str, backend: S3Backend):
        super().__init__(store.uri(key) + "/", client=luigi_client(backend.settings), flag=FLAG)
        self.store, self.key = store, key

    def exists(self) -> bool:
        return self.store.is_complete(self.key)


class _LocalDirectoryTarget(luigi.LocalTarget):
    def __init__(self, store: Store, key: str):
        super().__init__(store.uri(key))
        self.store, self.key = store, key

    def exists(self) -> bool:
        return self.store.is_complete(self.key)
