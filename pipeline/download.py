"""Streaming, verified downloads over HTTP(S)."""

from __future__ import annotations

import hashlib
import logging
import posixpath
import re
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

CHUNK_BYTES = 1 << 16  # also what a dropped connection can lose: resumes start at a chunk boundary
TIMEOUT_SECONDS = (10, 60)  # connect, and between two bytes of the body
logger = logging.getLogger("luigi-interface")
_MD5_TOKEN = re.compile(r"\b[0-9a-fA-F]{32}\b")

Progress = Callable[[int, "int | None"], None]


class DownloadError(RuntimeError):
    """A download that failed or whose content is not what was expected; names the URL."""


class NotFound(DownloadError):
    """An HTTP 404: nothing at the URL."""


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


def published_md5(session: requests.Session, zip_url: str, name: str) -> str:
    """The checksum published beside the zip of release `name`, at `<zip_url>.md5`."""
    url = f"{zip_url}.md5"
    try:
        response = _get(session, url, stream=False)
    except NotFound:
        # Without its checksum file, is the release itself there? Only its headers are read.
        _get(session, zip_url, stream=True).close()
        raise DownloadError(
            f"the checksum file {url} is missing (HTTP 404), though the release is there: nothing was downloaded, "
            "since the zip cannot be verified without it. Pin the release's MD5 in luigi.cfg instead, "
            f'under [movielens]: md5s = {{"{name}": "<md5 of {posixpath.basename(urlsplit(zip_url).path)}>"}}'
        ) from None
    return parse_md5_file(response.text, url)


def verified_chunks(
    session: requests.Session,
    url: str,
    expected_md5: str,
    progress: Progress = lambda done, total: None,
    deadline_seconds: float = 7200,
    max_resumes: int = 5,
    resume_backoff_seconds: float = 0.5,
) -> Iterator[bytes]:
    """The body at `url`, chunk by chunk; raises DownloadError after the last chunk if its
    MD5 is not `expected_md5`, so a consumer that stores only complete streams stores nothing.

    A connection that drops mid-body is resumed with an HTTP Range request; a server that
    ignores Range sends the whole body again and the part already received is skipped. The
    whole download, resumes included, must finish within `deadline_seconds`."""
    started = time.monotonic()
    digest = hashlib.md5()
    done, total, resumes = 0, None, 0
    while True:
        response = _get(session, url, stream=True, headers={"Range": f"bytes={done}-"} if done else None)
        with response:
            if total is None and "Content-Length" in response.headers:
                total = int(response.headers["Content-Length"])
            # 206 continues where we are; 200 (Range ignored) starts again from byte 0.
            skip = 0 if response.status_code == 206 and _range_start(response) == done else done
            try:
                for chunk in response.iter_content(CHUNK_BYTES):
                    if time.monotonic() - started > deadline_seconds:
                        raise DownloadError(
                            f"download of {url} did not finish within {deadline_seconds:.0f} s ({done} bytes received)"
                        )
                    if skip:
                        dropped = min(skip, len(chunk))
                        chunk, skip = chunk[dropped:], skip - dropped
                    if chunk:
                        digest.update(chunk)
                        done += len(chunk)
                        progress(done, total)
                        yield chunk
            except requests.RequestException as e:
                resumes += 1
                if resumes > max_resumes:
                    raise DownloadError(
                        f"download of {url} failed after {done} bytes and {max_resumes} resumes: {e}"
                    ) from e
                logger.warning("connection to %s dropped after %d bytes (%s); resuming", url, done, e)
                time.sleep(min(resume_backoff_seconds * 2 ** (resumes - 1), 30))
                continue
        if total is None or done >= total:
            break
        raise DownloadError(f"download of {url} ended after {done} of {total} bytes")
    actual = digest.hexdigest()
    if actual != expected_md5.lower():
        raise DownloadError(
            f"MD5 of {url} is {actual}, expected {expected_md5}: the file is corrupt or not the "
            "release it claims to be; nothing was stored. If the mirror is right and the release "
            "was re-issued, update the checksum."
        )


def _range_start(response: requests.Response) -> int | None:
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    return int(match.group(1)) if match else None


def _get(session: requests.Session, url: str, stream: bool, headers: dict | None = None) -> requests.Response:
    try:
        response = session.get(url, stream=stream, timeout=TIMEOUT_SECONDS, headers=headers)
    except requests.RequestException as e:
        raise DownloadError(f"cannot download {url}: {e}") from e
    if not response.ok:
        response.close()
    if response.status_code == 404:
        raise NotFound(f"release not found at {url} (HTTP 404); check the base URL and the dataset name")
    if not response.ok:
        raise DownloadError(f"cannot download {url}: HTTP {response.status_code} {response.reason}")
    return response
