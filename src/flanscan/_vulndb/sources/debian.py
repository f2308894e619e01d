"""The Debian security tracker's JSON export: which CVEs each Debian release has fixed in which
package version (https://security-tracker.debian.org/tracker/data/json).

Shape: {source_package: {CVE-ID: {"description", "scope", "debianbug",
"releases": {codename: {"status", "fixed_version", "repositories", "urgency", "nodsa", ...}}}}}.
The file is one complete snapshot (about 70 MB): it is streamed package by package with ijson,
and replaces the previous Debian rows. Only CVE ids of released codenames are kept ("TEMP-"
ids have no NVD record to match; "sid" is no release a server runs).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import ijson

from flanscan._distro._releases import DEBIAN_RELEASES
from flanscan._distro._tracker import DISTRO_DDL
from flanscan._errors import VulnDbError
from flanscan._vulndb._files import READ_ERRORS, ContentProbe, feed_error, open_feed
from flanscan._vulndb._progress import Progress
from flanscan._vulndb.sources import (
    Fetcher,
    ImportFile,
    RemoteFile,
    SourceState,
    record_feed_file,
    record_source,
)

NAME = "debian"
FILE_NAME = "debian-security-tracker.json"
DEFAULT_URL = "https://security-tracker.debian.org/tracker/data/json"
_RELEASES = frozenset(DEBIAN_RELEASES.values())
_BATCH = 5000

Row = tuple[str, str, str, str, str, str | None, str | None, str | None]


def _rows(package: str, cves: Any) -> Iterator[Row]:
    if not isinstance(cves, dict):
        raise ValueError(f"package {package!r}: expected an object of CVE entries")
    for cve_id, entry in cves.items():
        if not str(cve_id).startswith("CVE-") or not isinstance(entry, dict):
            continue
        releases = entry.get("releases")
        if not isinstance(releases, dict):
            continue
        for release, data in releases.items():
            if release not in _RELEASES or not isinstance(data, dict):
                continue
            status = data.get("status")
            if not isinstance(status, str):
                continue
            fixed = data.get("fixed_version")
            reason = data.get("nodsa_reason") or data.get("nodsa")
            note = f"no DSA: {reason}" if isinstance(reason, str) and reason else None
            yield (
                "debian",
                release,
                package,
                cve_id,
                status,
                str(fixed) if fixed is not None else None,
                data.get("urgency"),
                note,
            )


def read_tracker(path: Path) -> Iterator[Row]:
    """Rows of the tracker file at `path` (gzip/xz allowed); VulnDbError naming it if unusable."""
    try:
        with open_feed(path) as stream:
            seen = False
            for package, cves in ijson.kvitems(stream, "", use_float=True):
                seen = True
                yield from _rows(str(package), cves)
            if not seen:
                raise ValueError("empty tracker data")
    except READ_ERRORS as exc:
        raise feed_error(path, exc, "expected the Debian security tracker JSON") from exc


class DebianTrackerSource:
    name = NAME
    title = "Debian security tracker"
    ddl = DISTRO_DDL
    default_url = DEFAULT_URL
    url_env = "FLAN_DEBIAN_TRACKER_URL"

    def sniff(self, probe: ContentProbe) -> bool:
        # {package: {"CVE-...": {"description"/"releases"/"scope": ...}}}
        for package in probe.keys_at("")[:3]:
            for cve_id in probe.keys_at(package)[:3]:
                if cve_id.startswith(("CVE-", "TEMP-")):
                    keys = set(probe.keys_at(f"{package}.{cve_id}"))
                    if keys & {"releases", "scope", "debianbug"}:
                        return True
        return False

    def plan(self, fetcher: Fetcher, base_url: str, state: SourceState) -> list[RemoteFile]:
        # One file with no .meta: always fetched; skipped at import when its sha256 is known.
        return [RemoteFile(source=NAME, name=FILE_NAME, url=base_url)]

    def import_files(
        self, conn: sqlite3.Connection, files: Sequence[ImportFile], progress: Progress
    ) -> None:
        # Each file is a complete snapshot: the last given one replaces the Debian rows.
        file = files[-1]
        conn.execute("DELETE FROM distro_fix WHERE distribution = 'debian'")
        task = progress.task("Debian tracker", None)
        count = 0
        batch: list[Row] = []
        for row in read_tracker(file.path):
            batch.append(row)
            if len(batch) >= _BATCH:
                conn.executemany(
                    "INSERT OR REPLACE INTO distro_fix VALUES (?,?,?,?,?,?,?,?)", batch
                )
                count += len(batch)
                task.advance(len(batch))
                batch.clear()
        conn.executemany("INSERT OR REPLACE INTO distro_fix VALUES (?,?,?,?,?,?,?,?)", batch)
        count += len(batch)
        task.finish()
        if count == 0:
            raise VulnDbError(f"{file.path}: no CVE entries for any Debian release in this file")
        date = file.remote.last_modified if file.remote else None
        if date is None:
            mtime = file.path.stat().st_mtime
            date = datetime.fromtimestamp(mtime, UTC).strftime("%Y-%m-%d")
        record_source(conn, NAME, date, f"{count} release entries")
        if file.remote is not None:
            record_feed_file(conn, NAME, file.remote)
        progress.note(f"Debian tracker: {count} release entries")


SOURCE = DebianTrackerSource()
