"""Resumable HTTP downloads with sha256 checks (httpx)."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import httpx

from flanscan import __version__
from flanscan._deadline import DeadlineExceeded, call_with_deadline, deadline_from_env
from flanscan._errors import VulnDbError
from flanscan._safefile import open_append_nofollow
from flanscan._vulndb._files import READ_ERRORS, feed_error
from flanscan._vulndb._progress import Progress
from flanscan._vulndb.sources import RemoteFile

USER_AGENT = f"flanscan/{__version__} (+vulnerability database update)"
RESUME_HINT = "the previous database is still in use; run `flan db update` again to resume"


def make_client(timeout: float = 60.0) -> httpx.Client:
    return httpx.Client(
        follow_redirects=True,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 20.0)),
        headers={"User-Agent": USER_AGENT},
    )


def download_deadline() -> float:
    """Seconds one download (a feed file, a .meta) may take in all: FLAN_DOWNLOAD_TIMEOUT,
    default 1800 (httpx's timeout is per read; a trickling server would never end)."""
    return deadline_from_env("FLAN_DOWNLOAD_TIMEOUT", 1800.0)


class HttpFetcher:
    """`Fetcher` over an httpx client: small text files such as NVD `.meta`."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def get_text(self, url: str) -> str:
        try:
            response = call_with_deadline(lambda: self.client.get(url), download_deadline(), url)
        except DeadlineExceeded as exc:
            raise VulnDbError(f"{exc}; {RESUME_HINT}") from None
        except httpx.HTTPError as exc:
            raise VulnDbError(f"{url}: download failed ({exc}); {RESUME_HINT}") from exc
        if response.status_code != 200:
            raise VulnDbError(f"{url}: HTTP {response.status_code}; {RESUME_HINT}")
        return response.text


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_sha256(path: Path) -> str:
    """sha256 of the decompressed content of a gzip file (what NVD `.meta` files give)."""
    digest = hashlib.sha256()
    try:
        with gzip.open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except READ_ERRORS as exc:
        raise feed_error(path, exc, RESUME_HINT) from exc
    return digest.hexdigest()


def sha256_matches(path: Path, expected: str) -> bool:
    """Whether `path` has the `.meta` sha256 (of the JSON; the .gz file's own hash accepted)."""
    if file_sha256(path) == expected:
        return True
    if not path.name.endswith(".gz"):
        return False
    try:
        return content_sha256(path) == expected
    except VulnDbError:
        return False  # not even a whole gzip stream: certainly not the expected content


def verify_download(path: Path, expected: str, url: str) -> None:
    """Check a download against its `.meta`; a bad file is deleted so it is never resumed."""
    if sha256_matches(path, expected):
        return
    path.unlink(missing_ok=True)
    raise VulnDbError(
        f"{path.name}: sha256 does not match the one in its .meta ({url}); the file was "
        f"discarded; {RESUME_HINT}"
    )


def download(client: httpx.Client, remote: RemoteFile, dest_dir: Path, progress: Progress) -> Path:
    """Download `remote` into `dest_dir`, resuming a partial `.part` file with an HTTP Range.

    With a sha256 (from a `.meta`), the file is checked; a resumed file that fails the check
    (the remote file changed since the cut) is fetched once more from the start.
    """
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / remote.name
    if dest.is_file() and remote.sha256 is not None:
        try:
            if sha256_matches(dest, remote.sha256):
                return dest  # already fetched by an earlier, interrupted update
        except VulnDbError:
            pass
        dest.unlink()
    part = dest_dir / (remote.name + ".part")
    resumed = _fetch_within_deadline(client, remote, part, progress)
    part.replace(dest)
    if remote.sha256 is None:
        return dest
    if resumed and not sha256_matches(dest, remote.sha256):
        dest.unlink()
        _fetch_within_deadline(client, remote, part, progress)
        part.replace(dest)
    verify_download(dest, remote.sha256, remote.url)
    return dest


def _fetch_within_deadline(
    client: httpx.Client, remote: RemoteFile, part: Path, progress: Progress
) -> bool:
    try:
        return call_with_deadline(
            lambda: _fetch(client, remote, part, progress), download_deadline(), remote.url
        )
    except DeadlineExceeded as exc:
        raise VulnDbError(f"{remote.name}: {exc}; {RESUME_HINT}") from None


def _fetch(client: httpx.Client, remote: RemoteFile, part: Path, progress: Progress) -> bool:
    """Fill `part` with the remote file, continuing what is there; True if it resumed."""
    for attempt in range(2):
        offset = part.stat().st_size if part.is_file() else 0
        # identity: byte offsets must be those of the file itself, not of a re-encoding.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        try:
            with client.stream("GET", remote.url, headers=headers) as response:
                if response.status_code == 416 and attempt == 0:
                    part.unlink(missing_ok=True)  # stale partial file: start over
                    continue
                if response.status_code not in (200, 206):
                    raise VulnDbError(f"{remote.url}: HTTP {response.status_code}; {RESUME_HINT}")
                if response.status_code == 200:
                    offset = 0  # the server ignored the Range: take the whole file
                length = response.headers.get("Content-Length")
                total = offset + int(length) if length and length.isdigit() else remote.size
                task = progress.task(f"Downloading {remote.name}", total=total)
                task.advance(offset)
                if not offset:
                    part.unlink(missing_ok=True)
                # O_NOFOLLOW: a symlink planted at the .part name is refused, not written through.
                with open_append_nofollow(part) as out:
                    for chunk in response.iter_raw():
                        out.write(chunk)
                        task.advance(len(chunk))
                task.finish()
        except httpx.HTTPError as exc:
            got = part.stat().st_size if part.is_file() else 0
            what = f"cut after {got} bytes" if got else "failed"
            raise VulnDbError(
                f"{remote.name}: download from {remote.url} {what} ({exc}); {RESUME_HINT}"
            ) from exc
        return offset > 0
    return False
