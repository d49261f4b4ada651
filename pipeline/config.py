"""Our own sections of luigi.cfg, and the store they configure.

Operational settings live here and in luigi's own sections ([s3], [spark]); parameters that
change a result are task parameters (pipeline.tasks). Credentials never come from these
files: only from the environment or an AWS profile or role.
"""

from __future__ import annotations

import luigi

from storage import Store, StoreError

# luigi's S3Client would accept these from luigi.cfg, but the Spark jobs read S3 through
# pyarrow, which only sees the environment; one source of credentials keeps both in step and
# keeps secrets out of committed files.
CREDENTIAL_KEYS = ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")


class store(luigi.Config):
    root = luigi.Parameter(
        default="data",
        description="Where outputs go: a local folder (relative to the working directory) or "
        "s3://bucket[/prefix], with the endpoint and region in luigi's [s3] section.",
    )


class movielens(luigi.Config):
    base_url = luigi.Parameter(
        default="https://files.grouplens.org/datasets/movielens/",
        description="Where release zips (and their .md5 files) are downloaded from; a mirror works.",
    )
    urls: dict[str, str] = luigi.DictParameter(
        default={}, description='Per-release zip URLs, e.g. {"ml-25m": "http://host/ml-25m.zip"}.'
    )
    md5s: dict[str, str] = luigi.DictParameter(
        default={}, description='Per-release MD5 checksums, e.g. {"ml-25m": "6b51..."}.'
    )
    download_timeout = luigi.FloatParameter(default=7200, description="Seconds a download may take, resumes included.")


def configured_store() -> Store:
    """The store of luigi.cfg's [store] root, reached as [s3] endpoint_url, region_name, verify
    and use_ssl say: the one place they are read, for the store's client, luigi's targets and
    (through the store's arguments) the drivers."""
    config = luigi.configuration.get_config()
    for key in CREDENTIAL_KEYS:
        if config.has_option("s3", key):
            raise StoreError(
                f"[s3] {key} is set in the luigi configuration; remove it and provide credentials "
                "through the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or an AWS profile"
            )
    s3 = {key: config.get("s3", key, None) for key in ("endpoint_url", "region_name", "verify", "use_ssl")}
    return Store.at(store().root, s3["endpoint_url"], s3["region_name"], s3["verify"], s3["use_ssl"])
