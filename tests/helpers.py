"""What the tests import: paths, fake credentials, a mirror folder served over HTTP, luigi
configuration files, and the processes the tests start, each stopped with its whole process
group however the test ends. Fixtures live in conftest.py, which pytest loads by itself."""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import datetime
import functools
import http.server
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from tests.fakes import md5

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Fake credentials for moto: the secret-leak tests grep every output for these values.
FAKE_KEY_ID = "AKIAFAKEKEYID0000000"
FAKE_SECRET = "fake-secret-5dQ8wZr1xPq7"
FAKE_SESSION_TOKEN = "fake-session-token-Vb3kQ9mZ"
FAKE_MINIO_PASSWORD = "fake-minio-password-Hs7Tq2Lx"
# Spark for tests: two cores, tiny shuffles.
TEST_SPARK = {"master": "local[2]", "conf": "spark.sql.shuffle.partitions=2|spark.ui.showConsoleProgress=false"}
# [retcode] in luigi.cfg.
ALREADY_RUNNING, NOT_RUN, TASK_FAILED, SCHEDULING_ERROR, UNHANDLED = 10, 25, 30, 35, 40
# How long a command of a test may run before it is killed (a whole chain takes well under a minute).
COMMAND_TIMEOUT = 600


def real_release_candidates() -> list[Path]:
    """Where ml-latest-small.zip may be: the file MOVIELENS_SMALL_ZIP names, or the shared data
    folder beside the repository's."""
    named = os.environ.get("MOVIELENS_SMALL_ZIP")
    return [*([Path(named)] if named else []), REPO.parent / "shared" / "data" / "ml-latest-small.zip"]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def recording(requests: list[str], handler: type[http.server.BaseHTTPRequestHandler] = QuietHandler):
    """`handler`, appending "METHOD /path" of every request it is sent to `requests`."""

    class Recording(handler):  # type: ignore[valid-type, misc]
        def parse_request(self):
            parsed = super().parse_request()
            if parsed:
                requests.append(f"{self.command} {self.path}")
            return parsed

    return Recording


class Mirror:
    """A folder served over HTTP, standing in for files.grouplens.org; `requests` lists what it
    was asked for, as "GET /ml-latest-small.zip"."""

    def __init__(self, directory: Path, base_url: str, requests: list[str] | None = None):
        self.directory = directory
        self.base_url = base_url
        self.requests = [] if requests is None else requests

    def downloads(self) -> list[str]:
        """The requests for a release zip."""
        return [r for r in self.requests if r.startswith("GET ") and r.endswith(".zip")]

    def publish(self, name: str, data: bytes, published_md5: str | None = None) -> None:
        """Serves `<name>.zip` and `<name>.zip.md5` in GroupLens' BSD layout."""
        (self.directory / f"{name}.zip").write_bytes(data)
        (self.directory / f"{name}.zip.md5").write_text(f"MD5 ({name}.zip) = {published_md5 or md5(data)}\n")


@contextlib.contextmanager
def serving(directory: Path, handler=QuietHandler) -> Iterator[str]:
    """An HTTP server for `directory` on 127.0.0.1 while the block runs; yields its base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def write_config(path: Path, **sections: dict[str, str]) -> Path:
    """The repository's luigi.cfg with `sections` overriding it, written to `path`."""
    config = configparser.ConfigParser(interpolation=None)
    config.read(REPO / "luigi.cfg")
    for section, options in sections.items():
        if not config.has_section(section):
            config.add_section(section)
        for key, value in options.items():
            config.set(section, key, str(value))
    with open(path, "w") as f:
        config.write(f)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen, grace_seconds: float = 20) -> None:
    """Stops `proc` and everything it started in its process group (luigi's worker,
    spark-submit, the JVM): SIGTERM, then SIGKILL for whatever is left; reaps `proc`.
    Stopping a stopped group does nothing."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace_seconds)
    # Also when `proc` itself is gone: a child it left behind still holds the group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)


@contextlib.contextmanager
def process_group(command: list[str], **popen_options) -> Iterator[subprocess.Popen]:
    """`command` started in a process group of its own, stopped with the whole group when the
    block ends, also when an assertion in it fails."""
    proc = subprocess.Popen(command, start_new_session=True, **popen_options)
    try:
        yield proc
    finally:
        stop_group(proc)


def run_to_end(command: list[str], timeout: float = COMMAND_TIMEOUT, **popen_options) -> subprocess.CompletedProcess:
    """subprocess.run with its output captured, except that a timeout kills the command's
    whole process group rather than only the command, and fails the test with its output."""
    with process_group(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen_options) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_group(proc)
            stdout, stderr = proc.communicate(timeout=30)
            raise AssertionError(
                f"{' '.join(command)} did not finish within {timeout} s; the end of its output:\n"
                f"{stdout[-3000:]}\n{stderr[-5000:]}"
            ) from None
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


@contextlib.contextmanager
def background_process(
    command_for_port: Callable[[int], list[str]], env: dict, ready: str, timeout: float = 120
) -> Iterator[int]:
    """Runs `command_for_port(port)` on a free port until the block ends, once a line of its
    output contains `ready`; yields the port. Its output is drained, and shown if it never
    gets ready. Stopped with SIGTERM (then SIGKILL), with its process group."""
    port = free_port()
    command = command_for_port(port)
    is_ready = threading.Event()
    log: list[str] = []
    with process_group(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc:

        def read_log():
            for line in proc.stdout:
                log.append(line)
                if ready in line:
                    is_ready.set()

        reader = threading.Thread(target=read_log, daemon=True)
        reader.start()
        try:
            assert is_ready.wait(timeout), f"{command[0]} did not start:\n" + "".join(log[-50:])
            yield port
        finally:
            stop_group(proc)
            reader.join(10)


def wait_until(condition, what: str, watched: subprocess.Popen, seconds: float = 120) -> None:
    """Polls `condition` until it holds; fails if `watched` exits first or time runs out."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert watched.poll() is None, f"{what}: the run exited first, with code {watched.returncode}"
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.2)


def run_command(
    command: list[str], config: Path, cwd: Path, timeout: float = COMMAND_TIMEOUT, env: dict[str, str] | None = None
):
    """`command` with this environment, `env` on top, and `config` as its luigi.cfg."""
    # The virtual environment is deliberately not on PATH, as for a user who runs
    # .venv/bin/luigi without activating it: spark-submit must still be found.
    return run_to_end(command, timeout, cwd=cwd, env={**os.environ, **(env or {}), "LUIGI_CONFIG_PATH": str(config)})


def run_luigi(
    args: list[str], config: Path, cwd: Path, timeout: float = COMMAND_TIMEOUT, env: dict[str, str] | None = None
):
    """The real `luigi --module pipeline ...` command, as a user runs it."""
    return run_command([str(BIN / "luigi"), "--module", "pipeline", *args], config, cwd, timeout, env)


def tasks_run(log: str) -> list[str]:
    """The names of the tasks a luigi worker's log says it started running, in order."""
    return re.findall(r"\) running   (\w+)\(", log)


def luigid_api(port: int, method: str, **data) -> dict:
    """The answer of luigid's `/api/<method>` to `data`."""
    query = urllib.parse.quote(json.dumps(data))
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/{method}?data={query}", timeout=30) as response:
        return json.load(response)["response"]


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """A private CA (ca.pem) and a certificate it signed for 127.0.0.1 (cert.pem, key.pem)."""

    ca: Path
    cert: Path
    key: Path


def write_tls_files(directory: Path) -> TlsFiles:
    """A CA and a server certificate for 127.0.0.1, valid for a day, as PEM files in `directory`,
    with the extensions a strict verifier wants (a CA with key identifiers; the IP in the SAN)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "movielens-als test CA")])

    def certificate(subject: x509.Name, public_key) -> x509.CertificateBuilder:
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )

    usage = dict.fromkeys(
        ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement"), False
    )
    ca = (
        certificate(ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(**usage, key_cert_sign=True, crl_sign=True, encipher_only=False, decipher_only=False),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    server = (
        certificate(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]), key.public_key())
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return files


@contextlib.contextmanager
def moto_over_tls(tls: TlsFiles) -> Iterator[str]:
    """moto's S3 API over HTTPS on 127.0.0.1 with `tls`'s certificate, in a thread, sharing the
    in-process state of every other moto server; yields its URL. ThreadedMotoServer takes no
    certificate, so this is its server with werkzeug's TLS, as `moto_server -c cert -k key`."""
    import ssl

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls.cert, tls.key)
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler, ssl_context=context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
