import http.server
import threading

import pytest

from pipeline.download import DownloadError, http_session, parse_md5_file, published_md5, verified_chunks
from tests.fakes import md5

BODY = bytes(range(256)) * 5000  # 1.28 MB: more than one chunk


class FlakyServer(http.server.ThreadingHTTPServer):
    """Serves BODY at /release.zip after `failures` answers of HTTP 500; /truncated.zip
    promises more bytes than it sends; anything else is a 404."""

    def __init__(self, failures: int = 0):
        super().__init__(("127.0.0.1", 0), FlakyHandler)
        self.failures = failures
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FlakyHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.server.requests += 1
        if self.path == "/release.zip" and self.server.failures > 0:
            self.server.failures -= 1
            self.send_error(500)
        elif self.path == "/release.zip":
            self._send(BODY, len(BODY))
        elif self.path == "/truncated.zip":
            self._send(BODY[:1000], len(BODY))
        elif self.path == "/release.zip.md5":
            self._send(f"MD5 (release.zip) = {md5(BODY)}\n".encode(), None)
        else:
            self.send_error(404)

    def _send(self, body: bytes, length: int | None):
        self.send_response(200)
        self.send_header("Content-Length", str(length or len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


@pytest.fixture
def serve():
    servers = []

    def start(failures: int = 0) -> FlakyServer:
        server = FlakyServer(failures)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_parses_both_md5_file_layouts():
    digest = "91f91ad0f0846e764ddf79cf44a0cbe1"
    assert parse_md5_file(f"MD5 (ml-latest-small.zip) = {digest}\n", "u") == digest
    assert parse_md5_file(f"{digest.upper()}  ml-latest-small.zip\n", "u") == digest


def test_an_md5_file_without_a_checksum_is_an_error():
    with pytest.raises(DownloadError, match=r"http://m/x.zip.md5 holds no MD5 checksum \(it starts with '<html>"):
        parse_md5_file("<html>not found</html>", "http://m/x.zip.md5")


def test_streams_a_verified_body_and_reports_progress(serve):
    server = serve()
    seen = []
    chunks = verified_chunks(http_session(), f"{server.url}/release.zip", md5(BODY), lambda d, t: seen.append((d, t)))
    assert b"".join(chunks) == BODY
    assert seen[-1] == (len(BODY), len(BODY)) and len(seen) >= 2


def test_reads_the_published_checksum(serve):
    server = serve()
    assert published_md5(http_session(), f"{server.url}/release.zip.md5") == md5(BODY)


def test_a_wrong_md5_fails_after_the_last_chunk(serve):
    server = serve()
    chunks = verified_chunks(http_session(), f"{server.url}/release.zip", "0" * 32)
    with pytest.raises(DownloadError, match=rf"MD5 of {server.url}/release.zip is {md5(BODY)}, expected 0{{32}}"):
        for _ in chunks:
            pass


def test_retries_server_errors(serve):
    server = serve(failures=2)
    assert b"".join(verified_chunks(http_session(backoff_seconds=0), f"{server.url}/release.zip", md5(BODY))) == BODY
    assert server.requests == 3


def test_gives_up_after_the_retries(serve):
    server = serve(failures=10)
    with pytest.raises(DownloadError, match=r"cannot download .*/release.zip: HTTP 500"):
        next(verified_chunks(http_session(retries=2, backoff_seconds=0), f"{server.url}/release.zip", md5(BODY)))
    assert server.requests == 3


def test_a_404_says_the_release_is_not_there_and_is_not_retried(serve):
    server = serve()
    with pytest.raises(DownloadError, match=r"release not found at .*/ml-9m.zip \(HTTP 404\)"):
        next(verified_chunks(http_session(), f"{server.url}/ml-9m.zip", "0" * 32))
    assert server.requests == 1


def test_a_body_shorter_than_announced_is_an_error(serve):
    server = serve()
    with pytest.raises(DownloadError, match=r"truncated.zip"):
        b"".join(verified_chunks(http_session(retries=0), f"{server.url}/truncated.zip", md5(BODY)))


def test_an_unreachable_host_is_an_error():
    with pytest.raises(DownloadError, match=r"cannot download http://127.0.0.1:9/x.zip"):
        next(verified_chunks(http_session(retries=0), "http://127.0.0.1:9/x.zip", "0" * 32))
