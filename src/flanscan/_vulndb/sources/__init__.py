"""Pluggable data sources of the vulnerability database, and their registry.

A source is a module exposing `SOURCE`, an object with the `Source` interface below. Adding one
(for example a distribution tracker) means writing `sources/<name>.py` and adding one line to
`REGISTRY`; the store, `flan db update`, `flan db import` and `flan db status` pick it up:

- `ddl` creates its tables (`CREATE TABLE IF NOT EXISTS ...`) in every database.
- `sniff(probe)` says whether a file handed to `flan db import` is this source's (by content).
- `plan(fetcher, base_url, state)` lists the remote files `flan db update` must download, given
  what the current database already holds (`state`); an empty list means "unchanged".
- `import_files(conn, files, progress)` loads files into the database being built (a copy of
  the current one, inside a transaction) and records its state with `record_source` /
  `record_feed_file`. It raises `VulnDbError` naming the file when one is unusable.
"""

from __future__ import annotations

import importlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from flanscan._vulndb._files import ContentProbe
from flanscan._vulndb._progress import Progress

# name -> "module:attribute". Order is import order (later sources may refer to earlier data).
REGISTRY: dict[str, str] = {
    "nvd": "flanscan._vulndb.sources.nvd:SOURCE",
    "kev": "flanscan._vulndb.sources.kev:SOURCE",
    "epss": "flanscan._vulndb.sources.epss:SOURCE",
    "debian": "flanscan._vulndb.sources.debian:SOURCE",
    "ubuntu": "flanscan._vulndb.sources.ubuntu:SOURCE",
    # Asked before cve5 when sniffing: an override file is NVD-shaped, a vuln-list JSON entry of
    # the Debian tracker is named CVE-....json too; a damaged file named so is the CVE 5
    # source's to skip and name only when no one else claims it.
    "overrides": "flanscan._vulndb.sources.overrides:SOURCE",
    "debian-list": "flanscan._vulndb.sources.debian_list:SOURCE",
    "cve5": "flanscan._vulndb.sources.cve5:SOURCE",
}


@dataclass(frozen=True)
class RemoteFile:
    """One file `flan db update` downloads for a source."""

    source: str
    name: str  # file name in the download directory and in `feed_files`
    url: str
    sha256: str | None = None  # from the feed's .meta: checked after download
    last_modified: str | None = None
    size: int | None = None  # expected size of the download, when known


@dataclass(frozen=True)
class ImportFile:
    """A local file to import, and the remote file it came from (None for `flan db import`)."""

    path: Path
    remote: RemoteFile | None = None
    # sha256 of the (decompressed) content to check while reading: from a `.meta` copied beside
    # the file for `flan db import` (downloads are checked when they arrive).
    expect_sha256: str | None = None


@dataclass(frozen=True)
class FeedFileState:
    sha256: str | None
    last_modified: str | None
    imported_at: str


@dataclass(frozen=True)
class SourceState:
    """What the current database holds for one source."""

    data_date: str | None = None
    imported_at: str | None = None
    files: dict[str, FeedFileState] = field(default_factory=dict)
    cve_count: int = 0  # CVE records in the store (only meaningful for CVE sources)


class Fetcher(Protocol):
    """Small HTTP reads during planning (e.g. `.meta` files)."""

    def get_text(self, url: str) -> str: ...


class Source(Protocol):
    name: str  # registry key, e.g. "nvd"
    title: str  # for `flan db status`, e.g. "NVD CVE API 2.0 feeds"
    ddl: str
    default_url: str  # base URL (or full URL for single-file sources)
    url_env: str  # environment variable overriding default_url

    def sniff(self, probe: ContentProbe) -> bool: ...

    def plan(self, fetcher: Fetcher, base_url: str, state: SourceState) -> list[RemoteFile]: ...

    def import_files(
        self, conn: sqlite3.Connection, files: Sequence[ImportFile], progress: Progress
    ) -> None: ...


def load_source(name: str) -> Source:
    """The registered source called `name`."""
    module_name, attr = REGISTRY[name].split(":")
    source: Source = getattr(importlib.import_module(module_name), attr)
    return source


def all_sources() -> list[Source]:
    """Every registered source, in registry order."""
    return [load_source(name) for name in REGISTRY]


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def record_source(
    conn: sqlite3.Connection, name: str, data_date: str | None, detail: str | None = None
) -> None:
    """Record that `name` was imported now, with the date of its data (newest wins)."""
    row = conn.execute("SELECT data_date FROM sources WHERE name = ?", (name,)).fetchone()
    if row is not None and row[0] and data_date and row[0] > data_date:
        data_date = row[0]
    conn.execute(
        "INSERT OR REPLACE INTO sources(name, data_date, imported_at, detail) VALUES (?,?,?,?)",
        (name, data_date, now_iso(), detail),
    )


def record_feed_file(conn: sqlite3.Connection, source: str, remote: RemoteFile) -> None:
    """Record that a remote file's content is in, so the next update can skip it."""
    conn.execute(
        "INSERT OR REPLACE INTO feed_files(source, name, sha256, last_modified, imported_at)"
        " VALUES (?,?,?,?,?)",
        (source, remote.name, remote.sha256, remote.last_modified, now_iso()),
    )


def read_state(conn: sqlite3.Connection | None, name: str) -> SourceState:
    """What the database behind `conn` holds for source `name` (empty state for None)."""
    if conn is None:
        return SourceState()
    row = conn.execute(
        "SELECT data_date, imported_at FROM sources WHERE name = ?", (name,)
    ).fetchone()
    files = {
        n: FeedFileState(sha, lm, at)
        for n, sha, lm, at in conn.execute(
            "SELECT name, sha256, last_modified, imported_at FROM feed_files WHERE source = ?",
            (name,),
        )
    }
    count = 0
    if name == "nvd":
        count = conn.execute("SELECT count(*) FROM cve").fetchone()[0]
    if row is None:
        return SourceState(files=files, cve_count=count)
    return SourceState(data_date=row[0], imported_at=row[1], files=files, cve_count=count)
