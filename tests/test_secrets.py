"""No secret of the environment (the AWS secret key, a session token, MinIO's password) ever
leaves it: not in a log line of luigi or of a driver, not in luigid's task list, errors or state
file, not in any stored object (the report and the JSON records included), whether the run
succeeds, a driver fails, the credentials are refused (403) or the endpoint is down."""

from __future__ import annotations

import http.server
import json
import socket
import threading

import boto3
import pytest

from tests.fakes import release_zip
from tests.helpers import (
    FAKE_KEY_ID,
    FAKE_MINIO_PASSWORD,
    FAKE_SECRET,
    FAKE_SESSION_TOKEN,
    SCHEDULING_ERROR,
    TASK_FAILED,
    luigid_api,
    run_luigi,
)
from tests.test_luigid import running_luigid

pytestmark = [pytest.mark.e2e, pytest.mark.spark]
SECRETS = (FAKE_SECRET, FAKE_SESSION_TOKEN, FAKE_MINIO_PASSWORD)


def assert_no_secret(text: str | bytes, where: str) -> None:
    data = text.encode() if isinstance(text, str) else text
    leaked = [secret for secret in SECRETS if secret.encode() in data]
    assert not leaked, f"{leaked} in {where}"


class Refusing(http.server.BaseHTTPRequestHandler):
    """An S3 endpoint that refuses the credentials, as S3 and MinIO answer a wrong secret."""

    def _refuse(self):
        body = b"<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature is wrong.</Message></Error>"
        self.send_response(403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = _refuse

    def log_message(self, *args):
        pass


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_secret_leaves_the_environment(
    monkeypatch, mirror, pipeline_config, workdir, tmp_path, s3_endpoint, bucket_name
):
    monkeypatch.setenv("AWS_SESSION_TOKEN", FAKE_SESSION_TOKEN)
    monkeypatch.setenv("MINIO_ROOT_USER", FAKE_KEY_ID)
    monkeypatch.setenv("MINIO_ROOT_PASSWORD", FAKE_MINIO_PASSWORD)
    mirror.publish("ml-latest-small", release_zip())
    refusing = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=refusing.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def config(endpoint: str):
        return pipeline_config(
            store={"root": f"s3://{bucket_name}/movielens"},
            s3={"endpoint_url": endpoint, "region_name": "us-east-1"},
            movielens={"base_url": mirror.base_url},
        )

    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    state_dir = tmp_path / "luigid"
    state_dir.mkdir()
    try:
        with running_luigid(state_dir) as port:
            scheduler = ["--scheduler-host", "127.0.0.1", "--scheduler-port", str(port)]
            small = ["--rank", "4", "--max-iter", "5"]
            report = run_luigi(["Report", *scheduler, *small], config(s3_endpoint), workdir)
            assert report.returncode == 0, report.stderr[-5000:]
            # A driver that fails: the split it reads is not Parquet.
            split = run_luigi(["SplitData", *scheduler, "--seed", "7"], config(s3_endpoint), workdir)
            assert split.returncode == 0, split.stderr[-5000:]
            train = "movielens/splits/ml-latest-small/user_random-0.2-seed7/train.parquet"
            s3.put_object(Bucket=bucket_name, Key=train, Body=b"not parquet")
            driver = run_luigi(["TunedEASE", *scheduler, "--seed", "7"], config(s3_endpoint), workdir)
            assert driver.returncode == TASK_FAILED, driver.stderr[-5000:]
            assert "Parquet magic bytes not found" in driver.stderr
            refused = run_luigi(["SplitData", *scheduler, "--seed", "8"], config(refusing_url(refusing)), workdir)
            down = f"http://127.0.0.1:{closed_port()}"
            unreachable = run_luigi(["SplitData", *scheduler, "--seed", "9"], config(down), workdir)
            for result in (refused, unreachable):
                assert result.returncode == SCHEDULING_ERROR, result.stderr[-5000:]
            assert "refused the credentials (403)" in refused.stderr  # a HEAD answer carries no code
            assert "cannot reach S3 at" in unreachable.stderr

            tasks = luigid_api(port, "task_list", status="", upstream_status="", limit=False)
            failed = [luigid_api(port, "fetch_error", task_id=task_id) for task_id in tasks]
    finally:
        refusing.shutdown()
        refusing.server_close()

    assert {"Report", "TrainedALS", "TunedEASE", "SplitData"} <= {task["name"] for task in tasks.values()}
    assert any("Parquet magic bytes not found" in (error.get("error") or "") for error in failed)
    for name, result in {"report": report, "split": split, "driver": driver, "refused": refused}.items():
        assert_no_secret(result.stdout + result.stderr, f"the output of the {name} run")
    assert_no_secret(unreachable.stdout + unreachable.stderr, "the output of the run against a closed port")
    assert_no_secret(json.dumps(tasks), "luigid's task list (names, parameters, descriptions, status messages)")
    assert_no_secret(json.dumps(failed), "luigid's errors")
    assert_no_secret((state_dir / "luigid-state.pickle").read_bytes(), "luigid's state file")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket_name)["Contents"]]
    assert any(key.endswith("report.html") for key in keys) and any(key.endswith(".json") for key in keys)
    for key in keys:
        assert_no_secret(s3.get_object(Bucket=bucket_name, Key=key)["Body"].read(), key)
    assert list(workdir.iterdir()) == []


def refusing_url(server: http.server.ThreadingHTTPServer) -> str:
    return f"http://127.0.0.1:{server.server_port}"
