import http.server
import re
import threading

import pytest

from pipeline.download import DownloadError, http_session, parse_md5_file, published_md5, verified_chunks
from tests.fakes import md5

BODY = bytes(range(256)) * 5000  # 1.28 MB: more than one chunk


class FlakyServer(http.server.ThreadingHTTPServer):
    """Serves BODY at /release.zip, after `failures` answers of HTTP 500, dropping the
    connection halfway through the body `drops` times; honours Range unless told not to.
    /release.zip.md5 is its checksum, unless told not to publish it; anything else is a 404."""

    def __init__(self, failures: int = 0, drops: int = 0, honour_range: bool = True, publish_md5: bool = True):
        super().__init__(("127.0.0.1", 0), FlakyHandler)
        self.failures, self.drops, self.honour_range = failures, drops, honour_range
        self.publish_md5 = publish_md5
        self.requests: list[str | None] = []  # the Range header of each request

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class FlakyHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server
        server.requests.append(self.headers.get("Range"))
        if self.path == "/release.zip.md5" and server.publish_md5:
            return self._send(200, f"MD5 (release.zip) = {md5(BODY)}\n".encode())
        if self.path != "/release.zip":
            return self.send_error(404)
        if server.failures > 0:
            server.failures -= 1
            return self.send_error(500)
        start = 0
        if server.honour_range and (match := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))):
            start = int(match.group(1))
        body = BODY[start:]
        if server.drops > 0:
            server.drops -= 1
            return self._send(206 if start else 200, body, cut_at=len(body) // 2, start=start)
        self._send(206 if start else 200, body, start=start)

    def _send(self, status: int, body: bytes, cut_at: int | None = None, start: int = 0):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(BODY) - 1}/{len(BODY)}")
        self.end_headers()
        self.wfile.write(body[:cut_at])
        if cut_at is not None:
            self.close_connection = True  # the client gets fewer bytes than announced

    def log_message(self, format, *args):
        pass


@pytest.fixture
def serve():
    servers = []

    def start(**behaviour) -> FlakyServer:
        server = FlakyServer(**behaviour)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def download(url: str, expected: str = md5(BODY), **options) -> bytes:
    return b"".join(
        verified_chunks(http_session(backoff_seconds=0), url, expected, resume_backoff_seconds=0, **options)
    )


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
    assert published_md5(http_session(), f"{server.url}/release.zip", "ml-latest-small") == md5(BODY)


def test_a_wrong_md5_fails_after_the_last_chunk(serve):
    server = serve()
    with pytest.raises(DownloadError, match=rf"MD5 of {server.url}/release.zip is {md5(BODY)}, expected 0{{32}}"):
        download(f"{server.url}/release.zip", "0" * 32)


def test_retries_server_errors(serve):
    server = serve(failures=2)
    assert download(f"{server.url}/release.zip") == BODY
    assert len(server.requests) == 3


def test_gives_up_after_the_retries(serve):
    server = serve(failures=10)
    with pytest.raises(DownloadError, match=r"cannot download .*/release.zip: HTTP 500"):
        next(verified_chunks(http_session(retries=2, backoff_seconds=0), f"{server.url}/release.zip", md5(BODY)))
    assert len(server.requests) == 3


def test_resumes_a_dropped_connection_with_a_range_request(serve):
    server = serve(drops=2)
    assert download(f"{server.url}/release.zip") == BODY
    first, *resumes = server.requests
    assert first is None and len(resumes) == 2
    starts = [int(re.fullmatch(r"bytes=(\d+)-", r).group(1)) for r in resumes]
    # Each resume asks for what is missing: at most one 64 KiB chunk before the cut is read again.
    assert len(BODY) // 2 - 65536 < starts[0] <= len(BODY) // 2 < starts[1]


def test_a_server_that_ignores_range_sends_everything_again(serve):
    server = serve(drops=1, honour_range=False)
    assert download(f"{server.url}/release.zip") == BODY
    assert len(server.requests) == 2


def test_gives_up_when_the_connection_keeps_dropping(serve):
    server = serve(drops=100)
    with pytest.raises(DownloadError, match=r"release.zip failed after \d+ bytes and 3 resumes"):
        download(f"{server.url}/release.zip", max_resumes=3)
    assert len(server.requests) == 4


def test_a_download_is_bounded_in_time(serve):
    server = serve()
    with pytest.raises(DownloadError, match=r"release.zip did not finish within 0 s"):
        download(f"{server.url}/release.zip", deadline_seconds=0)


def test_a_404_says_the_release_is_not_there_and_is_not_retried(serve):
    server = serve()
    with pytest.raises(DownloadError, match=r"release not found at .*/ml-9m.zip \(HTTP 404\)"):
        download(f"{server.url}/ml-9m.zip")
    assert len(server.requests) == 1


def test_a_missing_checksum_file_says_how_to_pin_the_checksum(serve):
    server = serve(publish_md5=False)
    with pytest.raises(DownloadError) as e:
        published_md5(http_session(), f"{server.url}/release.zip", "ml-latest-small")
    assert str(e.value) == (
        f"the checksum file {server.url}/release.zip.md5 is missing (HTTP 404), though the release is there: "
        "nothing was downloaded, since the zip cannot be verified without it. Pin the release's MD5 in luigi.cfg "
        'instead, under [movielens]: md5s = {"ml-latest-small": "<md5 of release.zip>"}'
    )
    # The .md5, then the zip, to tell a missing checksum file from a missing release.
    assert len(server.requests) == 2


def test_a_missing_release_without_a_checksum_file_is_not_found_where_the_zip_should_be(serve):
    server = serve(publish_md5=False)
    with pytest.raises(DownloadError, match=rf"^release not found at {server.url}/ml-9m.zip \(HTTP 404\); check"):
        published_md5(http_session(), f"{server.url}/ml-9m.zip", "ml-9m")


def test_an_unreachable_host_is_an_error():
    with pytest.raises(DownloadError, match=r"cannot download http://127.0.0.1:9/x.zip"):
        next(verified_chunks(http_session(retries=0), "http://127.0.0.1:9/x.zip", "0" * 32))
