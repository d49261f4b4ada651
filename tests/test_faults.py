"""Faults and bad input through the real `luigi` command: what the user sees, and what the
store holds afterwards. The mirror misbehaves in the ways a real one does; the releases are
generated, in every format, with malformed variants."""

from __future__ import annotations

import http.server
import io
import json
import os
import socket
import threading
import time
import zipfile
from pathlib import Path

import boto3
import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server

from movielens_als.releases import RELEASES
from movielens_als.synthetic import synthetic_ratings, write_release
from tests.fakes import md5, ratings_text, release_zip
from tests.helpers import (
    BIN,
    COMMAND_TIMEOUT,
    FAKE_KEY_ID,
    FAKE_SECRET,
    SCHEDULING_ERROR,
    TASK_FAILED,
    UNHANDLED,
    process_group,
    run_luigi,
    serving,
    wait_until,
)

pytestmark = pytest.mark.e2e

ZIP_KEY = "downloads/ml-latest-small.zip"
SPLIT = "splits/ml-latest-small/user_random-0.2-seed42"


class Faulty(http.server.SimpleHTTPRequestHandler):
    """The mirror folder, with `faults` consumed one per zip request: "500" answers an error,
    "drop" sends half of the body and closes. Each test serves a subclass with a list of its own."""

    faults: list[str]

    def do_GET(self):
        if self.path.endswith(".zip") and self.faults:
            fault = self.faults.pop(0)
            if fault == "500":
                return self.send_error(500)
            body = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return None
        return super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def faulty_mirror(mirror):
    """The mirror, its faulty URL, and the faults still to come (empty: none), this test's own."""
    handler = type("FaultyOfThisTest", (Faulty,), {"faults": []})
    with serving(mirror.directory, handler) as base_url:
        yield mirror, base_url, handler.faults


@pytest.fixture
def local(tmp_path, pipeline_config):
    def config(base_url: str, **movielens):
        return pipeline_config(store={"root": tmp_path / "store"}, movielens={"base_url": base_url, **movielens})

    return config


def stored(tmp_path) -> set[str]:
    root = tmp_path / "store"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()


@pytest.mark.parametrize("faults", [["500", "500"], ["drop"], ["drop", "500", "drop"]], ids=lambda f: "+".join(f))
def test_server_errors_and_dropped_connections_are_retried(faulty_mirror, local, tmp_path, workdir, faults):
    mirror, base_url, faults_to_come = faulty_mirror
    data = release_zip()
    mirror.publish("ml-latest-small", data)
    faults_to_come.extend(faults)

    result = run_luigi(["SplitData", "--local-scheduler"], local(base_url), workdir)

    assert result.returncode == 0, result.stderr[-3000:]
    assert faults_to_come == []
    assert md5((tmp_path / "store" / ZIP_KEY).read_bytes()) == md5(data)
    if "drop" in faults:
        assert f"connection to {base_url}ml-latest-small.zip dropped after" in result.stderr


def test_a_missing_release_is_reported_not_retried(mirror, local, tmp_path, workdir):
    result = run_luigi(["SplitData", "--local-scheduler"], local(mirror.base_url), workdir)

    assert result.returncode == TASK_FAILED
    assert f"release not found at {mirror.base_url}ml-latest-small.zip (HTTP 404)" in result.stderr
    assert stored(tmp_path) == set()


def test_a_release_without_its_checksum_file_says_how_to_pin_one_and_stores_nothing(mirror, local, tmp_path, workdir):
    mirror.publish("ml-latest-small", release_zip())
    (mirror.directory / "ml-latest-small.zip.md5").unlink()

    result = run_luigi(["SplitData", "--local-scheduler"], local(mirror.base_url), workdir)

    assert result.returncode == TASK_FAILED
    assert (
        f"the checksum file {mirror.base_url}ml-latest-small.zip.md5 is missing (HTTP 404), though the release is "
        "there: nothing was downloaded"
    ) in result.stderr
    assert '[movielens]: md5s = {"ml-latest-small": "<md5 of ml-latest-small.zip>"}' in result.stderr
    assert stored(tmp_path) == set()


def test_a_wrong_checksum_stores_nothing(mirror, local, tmp_path, workdir):
    mirror.publish("ml-latest-small", release_zip(), published_md5="0" * 32)

    result = run_luigi(["SplitData", "--local-scheduler"], local(mirror.base_url), workdir)

    assert result.returncode == TASK_FAILED
    assert f"MD5 of {mirror.base_url}ml-latest-small.zip is" in result.stderr and "nothing was stored" in result.stderr
    assert stored(tmp_path) == set()


def traversal_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ml-latest-small/ratings.csv", ratings_text())
        archive.writestr("../../../etc/cron.d/evil", "* * * * * root true\n")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "data, message",
    [
        (release_zip()[:5000], "/downloads/ml-latest-small.zip is not a readable zip (File is not a zip file)"),
        (release_zip(ratings=ratings_text() + "0" * 30_000_000), "zip bomb?); refusing to read it"),
        (traversal_zip(), "escapes the archive ('../../../etc/cron.d/evil'); refusing to read it"),
    ],
    ids=["truncated", "zip-bomb", "path-traversal"],
)
def test_an_unsafe_or_broken_zip_fails_the_split_and_leaves_no_split(mirror, local, tmp_path, workdir, data, message):
    mirror.publish("ml-latest-small", data)  # its published checksum matches: the damage is at the source

    result = run_luigi(["SplitData", "--local-scheduler"], local(mirror.base_url), workdir)

    assert result.returncode == TASK_FAILED
    assert message in result.stderr
    assert stored(tmp_path) == {ZIP_KEY}
    assert not any(Path(workdir).iterdir()) and not Path("/etc/cron.d/evil").exists()


@pytest.mark.parametrize("layout", ["ml-100k", "ml-1m", "ml-10m", "ml-25m"])
def test_every_release_format_goes_through_a_mirror_with_a_checksum_override(mirror, local, tmp_path, workdir, layout):
    path = mirror.directory / f"{layout}.zip"
    step = RELEASES[layout].rating_step
    checksum = write_release(synthetic_ratings(3000, 100, 80, seed=2, step=step), path, layout)
    # The catalogue pins GroupLens' checksum of the real release; a mirror of other bytes needs its own.
    config = local(mirror.base_url, md5s=json.dumps({layout: checksum}))

    result = run_luigi(["SplitData", "--local-scheduler", "--dataset", layout], config, workdir)

    assert result.returncode == 0, result.stderr[-3000:]
    stats = json.loads(next((tmp_path / "store" / "splits" / layout).glob("*/stats.json")).read_text())
    assert stats["ratings"]["rows"] == 3000


def test_malformed_lines_fail_or_are_skipped_and_counted_on_request(mirror, local, tmp_path, workdir):
    text = ratings_text() + "7,7\n7,x,3.0,1\n7,8,11.0,1\n"
    mirror.publish("ml-latest-small", release_zip(ratings=text))
    config = local(mirror.base_url)
    n_lines = len(text.splitlines())

    strict = run_luigi(["SplitData", "--local-scheduler"], config, workdir)
    lenient = run_luigi(["SplitData", "--local-scheduler", "--skip-malformed"], config, workdir)

    assert strict.returncode == TASK_FAILED
    assert (
        f"RatingsError: ml-latest-small/ratings.csv line {n_lines - 2}: expected 4 fields separated by ',': "
        f"'7,7'; 2 malformed lines in all"
    ) in strict.stderr
    assert lenient.returncode == 0, lenient.stderr[-3000:]
    stats = json.loads(
        (tmp_path / "store/splits/ml-latest-small/user_random-0.2-seed42-skip-malformed/stats.json").read_text()
    )
    assert stats["read"] == {"malformed_lines_skipped": 2, "out_of_scale_skipped": 1, "duplicates_dropped": 0}
    assert stats["ratings"]["rows"] == n_lines - 1 - 3


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--dataset", "ml-7m"],
            "--dataset must be one of ml-100k, ml-10m, ml-1m, ml-20m, ml-25m, ml-32m, ml-latest, ml-latest-small, "
            "not 'ml-7m'",
        ),
        (
            ["--strategy", "newest"],
            "--strategy must be one of item_random, official, random, time, user_random, user_time, not 'newest'",
        ),
        (["--test-fraction", "1.5"], "--test-fraction must be strictly between 0 and 1, not 1.5"),
        (["--rank", "0"], "--rank must be a whole number from 1 to 10000, not 0"),
        (["--reg-param", "-0.1"], "--reg-param must be a finite number, 0 or more, not -0.1"),
        (["--max-iter", "0"], "--max-iter must be a whole number from 1 to 10000, not 0"),
        (["--max-iter", "10001"], "--max-iter must be a whole number from 1 to 10000, not 10001"),
        (
            ["--ranks", "[16,0]"],
            "--ranks must be a non-empty list of values each a whole number from 1 to 10000, not [16, 0]",
        ),
        (
            ["--reg-params", "[0.1,-1]"],
            "--reg-params must be a non-empty list of values each a finite number, 0 or more, not [0.1, -1]",
        ),
        (["--max-iters", "[]"], "--max-iters must be a non-empty list of values each a whole number from 1 to 10000"),
    ],
)
def test_nonsensical_parameters_are_rejected_before_any_work(mirror, local, tmp_path, workdir, args, message):
    result = run_luigi(["EvaluatedRMSE", "--local-scheduler", *args], local(mirror.base_url), workdir)

    assert result.returncode == UNHANDLED
    assert message in result.stderr
    assert stored(tmp_path) == set() and not (tmp_path / "store").exists()


@pytest.mark.parametrize("top_n", ["0", "1001"])
def test_a_top_n_out_of_range_is_rejected_before_any_work(mirror, local, tmp_path, workdir, top_n):
    result = run_luigi(["Recommendations", "--local-scheduler", "--top-n", top_n], local(mirror.base_url), workdir)

    assert result.returncode == UNHANDLED
    assert f"--top-n must be a whole number from 1 to 1000, not {top_n}" in result.stderr
    assert not (tmp_path / "store").exists()


class Refusing(http.server.BaseHTTPRequestHandler):
    def _refuse(self):
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD = do_PUT = do_POST = _refuse

    def log_message(self, *args):
        pass


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("endpoint_kind", ["down", "refusing"])
def test_an_s3_endpoint_that_is_down_or_refuses_is_one_clear_error(
    mirror, pipeline_config, workdir, s3_endpoint, endpoint_kind
):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refusing)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_port if endpoint_kind == 'refusing' else closed_port()}"
    config = pipeline_config(
        store={"root": "s3://movielens"},
        s3={"endpoint_url": endpoint, "region_name": "us-east-1"},
        movielens={"base_url": mirror.base_url},
    )
    try:
        result = run_luigi(["EvaluatedRMSE", "--local-scheduler"], config, workdir)
    finally:
        server.shutdown()
        server.server_close()

    assert result.returncode == SCHEDULING_ERROR
    expected = (
        f"cannot reach S3 at {endpoint} (bucket movielens)"
        if endpoint_kind == "down"
        else f"S3 at {endpoint} (bucket movielens) refused the credentials (403)"
    )
    assert result.stderr.count(f"StoreError: {expected}") == 1
    assert FAKE_SECRET not in result.stderr + result.stdout and FAKE_KEY_ID not in result.stderr + result.stdout


class RestartingS3:
    """moto's S3 API on one port, as a service that is restarted while a request is in
    flight: `restart_at(method, suffix)` holds the first such request; once it arrives
    (`reached`), `stop()` closes the port and `cut()` drops the held request's connection;
    `start()` listens on the same port again. The buckets and objects survive, as a server's
    drives do: moto keeps them in this process."""

    def __init__(self):
        self.app = DomainDispatcherApplication(create_backend_app)
        self.port = closed_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.target: tuple[str, str] | None = None
        self.reached, self._cut = threading.Event(), threading.Event()
        self.server = None
        self.thread = None

    def __call__(self, environ, start_response):
        if self.target and (environ["REQUEST_METHOD"], True) == (
            self.target[0],
            environ["PATH_INFO"].endswith(self.target[1]),
        ):
            self.target = None
            self.reached.set()
            self._cut.wait(60)
            environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)  # as the server's process dies
            start_response("500 Internal Server Error", [("Content-Length", "0")])  # to a closed socket
            return [b""]
        return self.app(environ, start_response)

    def start(self) -> None:
        self.server = make_server("127.0.0.1", self.port, self, threaded=True, request_handler=MotoRequestHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def cut(self) -> None:
        self._cut.set()


@pytest.fixture
def restarting_s3(s3_endpoint):  # s3_endpoint: the fake credentials in the environment
    server = RestartingS3()
    server.start()
    yield server
    server.cut()
    server.stop()


@pytest.mark.parametrize(
    "path, complete_flag",
    [
        ("/downloads/ml-latest-small.zip", "downloads/ml-latest-small.zip"),
        (f"/{SPLIT}/test.parquet", f"{SPLIT}/_SUCCESS"),
    ],
    ids=["DownloadedZip", "SplitData"],
)
@pytest.mark.parametrize("back", ["before-the-retry", "after-the-run-failed"])
def test_an_s3_service_restarted_mid_write_leaves_nothing_partial_and_the_run_or_its_rerun_completes(
    mirror, pipeline_config, workdir, tmp_path, bucket_name, restarting_s3, path, complete_flag, back
):
    """The S3 service restarts while the zip or a split file is being written. Back before
    botocore sends the write again, the run completes; back only after the run gave up, the
    task has failed saying the endpoint cannot be reached, nothing that looks complete was
    stored, and the rerun completes."""
    data = release_zip()
    mirror.publish("ml-latest-small", data)
    config = pipeline_config(
        store={"root": f"s3://{bucket_name}"},
        s3={"endpoint_url": restarting_s3.endpoint, "region_name": "us-east-1"},
        movielens={"base_url": mirror.base_url},
    )
    env = dict(os.environ, LUIGI_CONFIG_PATH=str(config))
    log = tmp_path / "restarted-run.log"
    restarting_s3.target = ("PUT", path)
    command = [str(BIN / "luigi"), "--module", "pipeline", "SplitData", "--local-scheduler"]
    with open(log, "w") as output, process_group(command, cwd=workdir, env=env, stdout=output, stderr=output) as run:
        wait_until(restarting_s3.reached.is_set, f"the PUT of {path}", run)
        restarting_s3.stop()
        if back == "before-the-retry":
            restarting_s3.start()
        restarting_s3.cut()
        cut_at = time.monotonic()
        code = run.wait(COMMAND_TIMEOUT)
        print(f"the run ended {time.monotonic() - cut_at:.1f} s after the connection was cut, with code {code}")
    text = log.read_text()
    if back == "after-the-run-failed":
        restarting_s3.start()
    s3 = boto3.client("s3", endpoint_url=restarting_s3.endpoint, region_name="us-east-1")
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket_name).get("Contents", [])}
    assert not s3.list_multipart_uploads(Bucket=bucket_name).get("Uploads")

    if back == "before-the-retry":  # botocore sent the request again, to the restarted server
        assert code == 0, text[-5000:]
    else:
        assert code == TASK_FAILED, text[-5000:]
        assert f"StoreError: cannot reach S3 at {restarting_s3.endpoint} (bucket {bucket_name})" in text
        assert complete_flag not in keys
        rerun = run_luigi(["SplitData", "--local-scheduler"], config, workdir)
        assert rerun.returncode == 0, rerun.stderr[-5000:]
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket_name).get("Contents", [])}
    assert {ZIP_KEY, f"{SPLIT}/_SUCCESS"} <= keys
    stored_zip = s3.get_object(Bucket=bucket_name, Key=ZIP_KEY)["Body"].read()
    assert md5(stored_zip) == md5(data)
