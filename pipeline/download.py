"""Streaming, verified downloads over HTTP(S)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = (10, 60)  # connect, and between two bytes of the body
_MD5_TOKEN = re.compile(r"\b[0-9a-fA-F]{32}\b")

Progress = Callable[[int, "int | None"], None]


class DownloadError(RuntimeError):
    """A download that failed or whose content is not what was expected; names the URL."""


def http_session(retries: int = 5, backoff_seconds: float = 0.5) -> requests.Session:
    """A session that retries connection errors, timeouts and 5xx answers with backoff."""
    retry = Retry(
        total=retries,
        backoff_factor=backoff_seconds,
        status_forcelist=(500, 502, 503, 504),
        allowed_methods=("GET", "HEAD"),
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def parse_md5_file(text: str, url: str) -> str:
    """The checksum in a published .md5 file, in either the BSD layout
    (`MD5 (ml-latest-small.zip) = 91f9...`) or the coreutils one (`91f9...  ml-latest-small.zip`)."""
    match = _MD5_TOKEN.search(text)
    if not match:
        raise DownloadError(f"{url} holds no MD5 checksum (it starts with {text[:80]!r})")
    return match.group(0).lower()


def published_md5(session: requests.Session, url: str) -> str:
    response = _get(session, url, stream=False)
    return parse_md5_file(response.text, url)


def verified_chunks(
    session: requests.Session, url: str, expected_md5: str, progress: Progress = lambda done, total: None
) -> Iterator[bytes]:
    """The body at `url`, chunk by chunk; raises DownloadError after the last chunk if its
    MD5 is not `expected_md5`, so a consumer that stores only complete streams stores nothing."""
    response = _get(session, url, stream=True)
    with response:
        total = int(response.headers["Content-Length"]) if "Content-Length" in response.headers else None
        digest = hashlib.md5()
        done = 0
        try:
            for chunk in response.iter_content(CHUNK_BYTES):
                digest.update(chunk)
                done += len(chunk)
                progress(done, total)
                yield chunk
        except requests.RequestException as e:
            raise DownloadError(f"download of {url} failed after {done} bytes: {e}") from e
    if total is not None and done != total:
        raise DownloadError(f"download of {url} ended after {done} of {total} bytes")
    actual = digest.hexdigest()
    if actual != expected_md5.lower():
        raise DownloadError(
            f"MD5 of {url} is {actual}, expected {expected_md5}: the file is corrupt or not the "
            "release it claims to be; nothing was stored. If the mirror is right and the release "
            "was re-issued, update the checksum."
        )


def _get(session: requests.Session, url: str, stream: bool) -> requests.Response:
    try:
        response = session.get(url, stream=stream, timeout=TIMEOUT_SECONDS)
    except requests.RequestException as e:
        raise DownloadError(f"cannot download {url}: {e}") from e
    if not response.ok:
        response.close()
    if response.status_code == 404:
        raise DownloadError(f"release not found at {url} (HTTP 404); check the base URL and the dataset name")
    if not response.ok:
        raise DownloadError(f"cannot download {url}: HTTP {response.status_code} {response.reason}")
    return response
