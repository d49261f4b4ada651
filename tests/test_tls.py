"""The store over TLS: moto's S3 API over HTTPS on 127.0.0.1 with a certificate signed by a CA
the test makes, reached as luigi.cfg's [s3] verify and use_ssl say, by the store's client,
luigi's targets, the drivers' flags and the luigi command."""

from __future__ import annotations

import io
import json
import logging
import zipfile

import pyarrow as pa
import pytest
from urllib3.exceptions import InsecureRequestWarning

import storage.s3
from drivers.common import job_parser, job_store
from pipeline.config import configured_store
from pipeline.jobs import job_flags
from pipeline.targets import RootTarget, directory_target, file_target, luigi_client
from storage import S3Settings, Store, StoreError
from tests.fakes import release_zip
from tests.helpers import SCHEDULING_ERROR, run_luigi, write_tls_files

UNVERIFIED = "[s3] verify = false: the certificate of S3 at"


@pytest.fixture(autouse=True)
def fresh_clients():
    """boto3 reads AWS_CA_BUNDLE when a client is made, and the clients are made once per
    process: each test makes its own."""

    def clear():
        storage.s3.client.cache_clear()
        storage.s3._unverified.cache_clear()
        luigi_client.cache_clear()

    clear()
    yield
    clear()


@pytest.fixture(autouse=True)
def no_ca_bundle(monkeypatch):
    """The default trust, whatever AWS_CA_BUNDLE this machine sets (here and in the commands run)."""
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)


@pytest.fixture
def configure(luigi_config, tls_s3_endpoint, bucket_name):
    """Points luigi.cfg's [store] and [s3] at the TLS endpoint, `s3` on top; returns the store."""

    def store(**s3: str) -> Store:
        luigi_config("store", "root", f"s3://{bucket_name}/movielens")
        for key, value in {"endpoint_url": tls_s3_endpoint, "region_name": "us-east-1", **s3}.items():
            luigi_config("s3", key, value)
        return configured_store()

    return store


def round_trip(store: Store) -> None:
    """Everything the tasks and drivers do with the store, and luigi's own client reading a target."""
    store.create_root()
    assert RootTarget(store).exists()
    store.write_json("runs/a.json", {"rmse": 0.9})
    assert store.read_json("runs/a.json") == {"rmse": 0.9}
    with file_target(store, "runs/a.json").open("r") as f:  # luigi's S3Client
        assert json.load(f) == {"rmse": 0.9}
    table = pa.table({"user": [1, 2], "rating": [4.0, 3.5]})
    store.write_files("splits/x", {"train.parquet": table})
    assert directory_target(store, "splits/x").exists()
    assert store.read_parquet("splits/x/train.parquet").equals(table)
    store.write_bytes("downloads/r.zip", release_zip())
    with store.open_zip("downloads/r.zip") as archive:
        assert archive.read("ml-latest-small/README.txt").startswith(b"A generated test release")
    assert [key for key, _ in store.list_files("runs/")] == ["runs/a.json"]


def test_the_store_and_luigis_client_trust_the_ca_that_verify_names(configure, tls_files):
    store = configure(verify=str(tls_files.ca))
    assert store.s3.verify == str(tls_files.ca)
    round_trip(store)


def test_a_bare_host_and_port_is_reached_over_https(configure, tls_files, tls_s3_endpoint):
    store = configure(endpoint_url=tls_s3_endpoint.removeprefix("https://"), verify=str(tls_files.ca))
    assert store.s3.endpoint == tls_s3_endpoint
    round_trip(store)


def test_an_untrusted_certificate_is_one_error_naming_verify(configure, tls_s3_endpoint, bucket_name):
    store = configure()
    expected = (
        rf"the certificate of S3 at {tls_s3_endpoint} \(bucket {bucket_name}\) is not trusted by the default CAs: "
        r"unable to get local issuer certificate\. Set \[s3\] verify in luigi.cfg \(or AWS_CA_BUNDLE\) to the CA "
        r"bundle \(PEM\) that signed it, or \[s3\] verify = false to not check it"
    )
    for operation in (
        RootTarget(store).exists,
        store.create_root,
        directory_target(store, "splits/x").exists,
        lambda: store.read_bytes("runs/a.json"),
        lambda: store.write_bytes("runs/a.json", b"{}"),
    ):
        with pytest.raises(StoreError, match=f"^{expected}$"):
            operation()


def test_https_to_a_server_without_tls_says_to_check_the_scheme(configure, s3_endpoint):
    endpoint = s3_endpoint.replace("http://", "https://")
    with pytest.raises(StoreError, match=rf"^TLS with S3 at {endpoint} \(bucket .*\) failed \(.*\): check that \[s3\]"):
        configure(endpoint_url=endpoint).create_root()


def test_a_certificate_from_another_ca_names_the_bundle_it_was_checked_against(configure, tmp_path):
    other = write_tls_files(tmp_path)
    store = configure(verify=str(other.ca))
    with pytest.raises(StoreError, match=rf"is not trusted by the CA bundle \[s3\] verify names \({other.ca}\)"):
        store.create_root()


@pytest.mark.parametrize("verify", [None, "true"])
def test_aws_ca_bundle_keeps_working(configure, tls_files, monkeypatch, verify):
    monkeypatch.setenv("AWS_CA_BUNDLE", str(tls_files.ca))
    round_trip(configure(**({"verify": verify} if verify else {})))


def test_an_aws_ca_bundle_of_another_ca_is_named_in_the_error(configure, monkeypatch, tmp_path):
    other = write_tls_files(tmp_path)
    monkeypatch.setenv("AWS_CA_BUNDLE", str(other.ca))
    with pytest.raises(StoreError, match=rf"is not trusted by the CA bundle AWS_CA_BUNDLE names \({other.ca}\)"):
        configure().create_root()


def test_verify_false_works_and_says_so_once(configure, caplog, recwarn, tls_s3_endpoint):
    store = configure(verify="false")
    with caplog.at_level(logging.WARNING):
        round_trip(store)
        round_trip(store)
    warnings = [r.getMessage() for r in caplog.records if UNVERIFIED in r.getMessage()]
    assert warnings == [f"{UNVERIFIED} {tls_s3_endpoint} is not checked"]
    assert not [w for w in recwarn if issubclass(w.category, InsecureRequestWarning)]


@pytest.mark.parametrize(
    "s3, message",
    [
        ({"verify": "/nowhere/ca.pem"}, r"^\[s3\] verify = /nowhere/ca.pem: no such file \(/nowhere/ca.pem\); set it"),
        ({"verify": "NOT-A-PEM"}, r"^\[s3\] verify = .*NOT-A-PEM: not a readable CA bundle in PEM"),
        ({"use_ssl": "maybe"}, r"^\[s3\] use_ssl = maybe is neither true nor false"),
        ({"use_ssl": "false"}, r"^\[s3\] use_ssl = false contradicts \[s3\] endpoint_url = https://127.0.0.1:"),
    ],
)
def test_bad_tls_settings_are_refused_naming_the_key(configure, s3, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "NOT-A-PEM").write_text("not a certificate\n")
    with pytest.raises(StoreError, match=message):
        configure(**s3)


@pytest.mark.parametrize("verify", ["false", "true", "CA"])
def test_the_drivers_open_the_store_with_the_same_settings(configure, tls_files, verify):
    store = configure(verify=str(tls_files.ca) if verify == "CA" else verify, use_ssl="true")
    flags = job_flags(store, train="splits/x/train.parquet", output="models/x", seed=1)
    assert job_store(job_parser(None).parse_args(flags)) == store
    assert store.s3.use_ssl is True and store.s3.verify == {"false": False, "true": True}.get(verify, str(tls_files.ca))


def test_a_local_store_passes_no_s3_flags(tmp_path):
    assert job_flags(Store.at(str(tmp_path)), seed=1) == ["--store-root", str(tmp_path), "--seed", "1"]


def test_boto3_gets_real_values_not_the_configs_strings(tls_files):
    assert S3Settings.parse(None, None, "true", "true").boto_options() | {"config": None} == {
        "endpoint_url": None,
        "region_name": None,
        "use_ssl": True,
        "verify": None,  # boto3's own trust, AWS_CA_BUNDLE included: verify=True would skip it
        "config": None,
    }
    assert S3Settings.parse(None, None, str(tls_files.ca), None).boto_options()["verify"] == str(tls_files.ca)


def test_zip_reads_seek_within_the_object(configure, tls_files):
    store = configure(verify=str(tls_files.ca))
    store.create_root()
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w") as archive:
        archive.writestr("a.txt", b"a" * 100)
        archive.writestr("b.txt", b"b" * 3)
    store.write_bytes("downloads/two.zip", data.getvalue())
    with store.open_zip("downloads/two.zip") as archive:
        assert (archive.read("b.txt"), archive.read("a.txt")) == (b"bbb", b"a" * 100)
    with pytest.raises(FileNotFoundError, match=r"movielens/downloads/none\.zip does not exist"):
        store.read_bytes("downloads/none.zip")


# -- the luigi command over TLS ----------------------------------------------------------------


@pytest.fixture
def tls_chain(mirror, pipeline_config, workdir, tls_s3_endpoint, bucket_name):
    """Runs `luigi --module pipeline <task>` against the TLS endpoint with [s3] `s3` on top."""
    mirror.publish("ml-latest-small", release_zip())

    def run(task: str, env: dict[str, str] | None = None, **s3: str):
        config = pipeline_config(
            store={"root": f"s3://{bucket_name}/movielens"},
            s3={"endpoint_url": tls_s3_endpoint, "region_name": "us-east-1", **s3},
            movielens={"base_url": mirror.base_url},
        )
        return run_luigi([task, "--local-scheduler"], config, workdir, env=env)

    return run


def stored(tls_s3_endpoint, tls_files, bucket_name) -> Store:
    return Store.at(f"s3://{bucket_name}/movielens", tls_s3_endpoint, "us-east-1", str(tls_files.ca))


SPLIT = "splits/ml-latest-small/user_random-0.2-seed42"


@pytest.mark.e2e
def test_the_chain_runs_over_tls_with_the_ca_that_verify_names(tls_chain, tls_files, tls_s3_endpoint, bucket_name):
    # TunedEASE: its driver is another process, which reaches the store with the flags' settings.
    result = tls_chain("TunedEASE", verify=str(tls_files.ca))
    assert result.returncode == 0, result.stderr[-5000:]
    store = stored(tls_s3_endpoint, tls_files, bucket_name)
    assert store.exists("downloads/ml-latest-small.zip") and store.is_complete(SPLIT)
    tuning = [key for key, _ in store.list_files("tuning/")]
    assert [key.rpartition("/")[2] for key in tuning] == ["tuning.json"], tuning


@pytest.mark.e2e
def test_the_chain_without_the_ca_stops_with_one_line_naming_verify(tls_chain, tls_s3_endpoint, bucket_name):
    result = tls_chain("SplitData")
    assert result.returncode == SCHEDULING_ERROR, result.stderr[-5000:]
    assert (
        result.stderr.count(
            f"StoreError: the certificate of S3 at {tls_s3_endpoint} (bucket {bucket_name}) is not trusted by the "
            "default CAs: unable to get local issuer certificate. Set [s3] verify in luigi.cfg (or AWS_CA_BUNDLE)"
        )
        == 1
    )
    assert "SSLError" not in result.stderr and "botocore" not in result.stderr


@pytest.mark.e2e
def test_the_chain_runs_with_verify_false_and_says_so_once(tls_chain, tls_s3_endpoint):
    result = tls_chain("SplitData", verify="false")
    assert result.returncode == 0, result.stderr[-5000:]
    assert result.stderr.count(UNVERIFIED) == 1
    assert "InsecureRequestWarning" not in result.stderr


@pytest.mark.e2e
def test_the_chain_runs_with_aws_ca_bundle(tls_chain, tls_files, tls_s3_endpoint, bucket_name):
    result = tls_chain("SplitData", env={"AWS_CA_BUNDLE": str(tls_files.ca)})
    assert result.returncode == 0, result.stderr[-5000:]
    assert stored(tls_s3_endpoint, tls_files, bucket_name).is_complete(SPLIT)
