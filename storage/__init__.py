"""The store: where every output of the pipeline lives, a local folder or `s3://bucket[/prefix]`,
as keys read and written atomically. The Luigi tasks and the Spark drivers both use it; it
imports neither (nor luigi), so a driver loads only what it reads and writes with."""

from storage.errors import StoreError
from storage.s3 import S3Settings
from storage.store import FLAG, Store, utc_now

__all__ = ["FLAG", "S3Settings", "Store", "StoreError", "utc_now"]
