"""Ubuntu's fixed package versions, from Ubuntu's OSV export
(https://osv-vulnerabilities.storage.googleapis.com/Ubuntu/all.zip).

Each member is an OSV record (Ubuntu CVE records "UBUNTU-CVE-..." and notices "USN-...") whose
`affected[]` entries name a source package in an ecosystem such as "Ubuntu:22.04:LTS", with an
ECOSYSTEM range whose `fixed` event is the first fixed package version. Why this source and not
the Ubuntu CVE tracker's own files: see docs/false-positives.md.

A package listed without a `fixed` event is still vulnerable in that release ("open"). Ubuntu
leaves not-affected packages out, so absence means "no decision". Ubuntu Pro (ESM) entries are
kept only where the standard release has none. The import accepts the zip, a single record, or
a directory of records (`flan db import` hands over each file).
"""

from __future__ import annotations

import json
import re
import sqlite3
import zipfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flanscan._distro._releases import ubuntu_release_from_number
from flanscan._distro._tracker import DISTRO_DDL
from flanscan._errors import VulnDbError
from flanscan._vulndb._archive import MAX_MEMBER, read_member
from flanscan._vulndb._files import (
    READ_ERRORS,
    ContentProbe,
    LimitExceeded,
    feed_error,
    open_feed,
)
from flanscan._vulndb._progress import Progress
from flanscan._vulndb.sources import (
    Fetcher,
    ImportFile,
    RemoteFile,
    SourceState,
    record_feed_file,
    record_source,
)

NAME = "ubuntu"
FILE_NAME = "ubuntu-osv-all.zip"
DEFAULT_URL = "https://osv-vulnerabilities.storage.googleapis.com/Ubuntu/all.zip"
_ECOSYSTEM_RE = re.compile(r"^Ubuntu:(?:(Pro):)?(\d\d\.\d\d)(?::LTS)?$")
_CVE_RE = re.compile(r"^CVE-\d{4}-\d+$")
_ERRORS: tuple[type[BaseException], ...] = (*READ_ERRORS, zipfile.BadZipFile)

_PRO = " (Ubuntu Pro)"
# (release, package, cve, status, fixed_version, note); a Pro row's note ends with _PRO.
Row = tuple[str, str, str, str, str | None, str]

# Standard entries beat Ubuntu Pro (ESM) ones; a fixed entry beats an open one of the same kind.
_UPSERT = f"""
INSERT INTO distro_fix VALUES ('ubuntu', ?, ?, ?, ?, ?, NULL, ?)
ON CONFLICT(distribution, release, package, cve_id) DO UPDATE SET
    status = excluded.status, fixed_version = excluded.fixed_version, note = excluded.note
WHERE (distro_fix.note LIKE '%{_PRO}' AND excluded.note NOT LIKE '%{_PRO}')
   OR (distro_fix.status = 'open' AND excluded.status = 'resolved'
       AND (distro_fix.note LIKE '%{_PRO}') = (excluded.note LIKE '%{_PRO}'))
"""
_BATCH = 5000


def _cve_ids(record: dict[str, Any]) -> list[str]:
    ids = [record.get("id", "")]
    for key in ("upstream", "aliases", "related"):
        value = record.get(key)
        if isinstance(value, list):
            ids.extend(str(v) for v in value)
    found = []
    for item in ids:
        text = str(item).removeprefix("UBUNTU-")
        if _CVE_RE.match(text) and text not in found:
            found.append(text)
    return found


def _fixed_version(affected: dict[str, Any]) -> str | None:
    for rng in affected.get("ranges") or ():
        if isinstance(rng, dict) and rng.get("type") == "ECOSYSTEM":
            for event in rng.get("events") or ():
                if isinstance(event, dict) and event.get("fixed"):
                    return str(event["fixed"])
    return None


def record_rows(record: Any) -> list[Row]:
    """The Ubuntu release entries of one OSV record."""
    if not isinstance(record, dict):
        raise ValueError("an OSV record must be a JSON object")
    cves = _cve_ids(record)
    source_id = str(record.get("id", ""))
    rows: list[Row] = []
    for affected in record.get("affected") or ():
        package = affected.get("package") if isinstance(affected, dict) else None
        if not isinstance(package, dict):
            continue
        match = _ECOSYSTEM_RE.match(str(package.get("ecosystem", "")))
        release = ubuntu_release_from_number(match.group(2)) if match else None
        name = package.get("name")
        if match is None or release is None or not isinstance(name, str):
            continue
        fixed = _fixed_version(affected)
        note = source_id + (_PRO if match.group(1) else "")
        rows.extend(
            (release, name, cve, "resolved" if fixed else "open", fixed, note) for cve in cves
        )
    return rows


def _records(path: Path) -> Iterator[Any]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.endswith(".json"):
                    data = read_member(archive, info)
                    if data is None:
                        raise LimitExceeded(
                            f"{info.filename} inflates to more than {MAX_MEMBER >> 20} MiB: "
                            "no OSV record is that large; refused"
                        )
                    yield json.loads(data)
        return
    with open_feed(path) as stream:
        data = json.load(stream)
    yield from data if isinstance(data, list) else [data]


def import_osv(conn: sqlite3.Connection, paths: Sequence[Path]) -> int:
    """Stream the Ubuntu entries of OSV files (zip, record, or list of records) into
    `distro_fix`; the number of entries read. VulnDbError naming the file if one is bad."""
    count = 0
    batch: list[Row] = []
    for path in paths:
        try:
            for record in _records(path):
                batch.extend(record_rows(record))
                if len(batch) >= _BATCH:
                    conn.executemany(_UPSERT, batch)
                    count += len(batch)
                    batch.clear()
        except _ERRORS as exc:
            raise feed_error(path, exc, "expected Ubuntu OSV records (all.zip)") from exc
    conn.executemany(_UPSERT, batch)
    return count + len(batch)


def _looks_like_ubuntu_osv(probe: ContentProbe) -> bool:
    ident = str(probe.value_at("id") or "")
    return ident.startswith(("UBUNTU-", "USN-")) and "affected" in probe.keys_at("")


class UbuntuOsvSource:
    name = NAME
    title = "Ubuntu OSV export"
    ddl = DISTRO_DDL
    default_url = DEFAULT_URL
    url_env = "FLAN_UBUNTU_OSV_URL"

    def sniff(self, probe: ContentProbe) -> bool:
        if probe.is_json:
            return _looks_like_ubuntu_osv(probe)
        if not probe.text_head.startswith("PK"):
            return False
        try:
            with zipfile.ZipFile(probe.path) as archive:
                for info in archive.infolist()[:5]:
                    if info.filename.endswith(".json"):
                        with archive.open(info) as member:  # the head only, never all of it
                            head = member.read(4096).decode("utf-8", "replace")
                        return '"Ubuntu:' in head or '"UBUNTU-' in head or '"USN-' in head
        except (OSError, zipfile.BadZipFile):
            return False
        return False

    def plan(self, fetcher: Fetcher, base_url: str, state: SourceState) -> list[RemoteFile]:
        return [RemoteFile(source=NAME, name=FILE_NAME, url=base_url)]

    def import_files(
        self, conn: sqlite3.Connection, files: Sequence[ImportFile], progress: Progress
    ) -> None:
        # The zip is a complete snapshot; single records given by hand add to what is there.
        paths = [f.path for f in files]
        if any(zipfile.is_zipfile(p) for p in paths):
            conn.execute("DELETE FROM distro_fix WHERE distribution = 'ubuntu'")
        count = import_osv(conn, paths)
        if count == 0:
            raise VulnDbError(f"{paths[0]}: no Ubuntu release entries in these OSV records")
        last = files[-1]
        date = last.remote.last_modified if last.remote else None
        if date is None:
            date = datetime.fromtimestamp(last.path.stat().st_mtime, UTC).strftime("%Y-%m-%d")
        record_source(conn, NAME, date, f"{count} release entries")
        for file in files:
            if file.remote is not None:
                record_feed_file(conn, NAME, file.remote)
        progress.note(f"Ubuntu OSV: {count} release entries")


SOURCE = UbuntuOsvSource()
