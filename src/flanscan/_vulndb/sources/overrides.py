"""anchore/nvd-data-overrides: curated NVD-shaped `configurations` for CVEs the NVD has not
analysed (`data/<year>/CVE-....json`: `{"_annotation": {...}, "cve": {"configurations": [...]}}`).

Accepted as the repository tarball (or zip) or any tree of its files. At match time an override
replaces the NVD's configurations for its CVE, as Grype does (`flanscan._match.tiers`).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flanscan._errors import VulnDbError
from flanscan._vulndb._affected import (
    AFFECTED_DDL,
    AffectedRow,
    AffectedWriter,
    BadRecord,
    ImportTally,
)
from flanscan._vulndb._archive import ArchiveError, archive_kind, first_record, json_members
from flanscan._vulndb._files import ContentProbe, probe_file
from flanscan._vulndb._progress import Progress
from flanscan._vulndb.sources import (
    Fetcher,
    ImportFile,
    RemoteFile,
    SourceState,
    record_feed_file,
    record_source,
)
from flanscan._vulndb.sources.nvd import configuration_products

NAME = "overrides"
DEFAULT_URL = "https://github.com/anchore/nvd-data-overrides/archive/refs/heads/main.tar.gz"
_CVE_ID = re.compile(r"CVE-\d{4}-\d{4,}")
_MEMBER = re.compile(r"(?:^|/)data/\d{4}/(CVE-\d{4}-\d{4,})\.json$")
MAX_TEXT = 300
MAX_MATCHES = 5000


def _check_configurations(configs: Any) -> list[dict[str, Any]]:
    if not isinstance(configs, list) or not configs:
        raise BadRecord("no configurations")
    count = 0
    for config in configs:
        nodes = config.get("nodes") if isinstance(config, dict) else None
        if not isinstance(nodes, list) or not nodes:
            raise BadRecord("a configuration without nodes")
        for node in nodes:
            matches = node.get("cpeMatch") if isinstance(node, dict) else None
            if not isinstance(matches, list):
                raise BadRecord("a node without cpeMatch")
            for m in matches:
                count += 1
                if not isinstance(m, dict) or not isinstance(m.get("criteria"), str):
                    raise BadRecord("a cpeMatch without criteria")
                if not m["criteria"].startswith("cpe:2.3:"):
                    raise BadRecord(f"criteria {m['criteria'][:60]!r} is not a CPE 2.3 name")
                for key, value in m.items():
                    if isinstance(value, str) and len(value) > MAX_TEXT:
                        raise BadRecord(f"{key} is {len(value)} characters long")
    if count > MAX_MATCHES:
        raise BadRecord(f"{count} cpeMatch entries")
    return configs


def parse_override(record: Any, member: str) -> AffectedRow:
    """The stored row of one override file; BadRecord if it is not one."""
    if not isinstance(record, dict) or not isinstance(record.get("cve"), dict):
        raise BadRecord("not an nvd-data-overrides record (no `cve` object)")
    raw_note = record.get("_annotation")
    note: dict[str, Any] = raw_note if isinstance(raw_note, dict) else {}
    found = _CVE_ID.search(str(note.get("cve_id") or "")) or _CVE_ID.search(member)
    if found is None:
        raise BadRecord("no CVE id in `_annotation.cve_id` or the file name")
    cve_id = found.group(0)
    try:
        configs = _check_configurations(record["cve"].get("configurations"))
    except BadRecord as exc:
        raise BadRecord(f"{cve_id}: {exc}") from exc
    date = note.get("modified") or note.get("published")
    date = str(date)[:40] if date else None
    names = frozenset(f"c:{v}:{p}" for v, p in configuration_products(configs))
    reason = note.get("reason")
    data = {
        "date": date,
        "file": member,
        "configurations": configs,
        "reason": str(reason)[:300] if reason else None,
    }
    return AffectedRow(cve_id, date, member, "o", data, names)


class OverridesSource:
    name = NAME
    title = "anchore nvd-data-overrides"
    ddl = AFFECTED_DDL
    default_url = DEFAULT_URL
    url_env = "FLAN_OVERRIDES_URL"

    def sniff(self, probe: ContentProbe) -> bool:
        if probe.is_json:
            return "_annotation" in probe.keys_at("") or (
                "cve" in probe.keys_at("")
                and "configurations" in probe.keys_at("cve")
                and "id" not in probe.keys_at("cve")
            )
        kind = archive_kind(probe)
        if kind is None:
            return False
        head = first_record(probe.path, kind)
        try:
            data = json.loads(head) if head and head != b"cves.zip" else None
        except ValueError:
            return False
        return isinstance(data, dict) and "_annotation" in data and "cve" in data

    def plan(self, fetcher: Fetcher, base_url: str, state: SourceState) -> list[RemoteFile]:
        return [RemoteFile(source=NAME, name="nvd-data-overrides.tar.gz", url=base_url)]

    def import_files(
        self, conn: sqlite3.Connection, files: Sequence[ImportFile], progress: Progress
    ) -> None:
        tally = ImportTally(NAME)
        writer = AffectedWriter(conn, NAME, tally)
        newest: str | None = None
        for file in files:
            kind = archive_kind(probe_file(file.path))
            try:
                members = (
                    ((n, d) for n, d in json_members(file.path, kind) if _MEMBER.search(n))
                    if kind is not None
                    else iter([(file.path.name, file.path.read_bytes())])
                )
                for member, raw in members:
                    tally.read += 1
                    label = member if kind is not None else str(file.path)
                    where = _MEMBER.search(str(file.path) if kind is None else member)
                    short = where.group(0).lstrip("/") if where else member
                    try:
                        if raw is None:
                            raise BadRecord("file larger than 16 MiB")
                        row = parse_override(json.loads(raw), short)
                    except (BadRecord, ValueError, RecursionError) as exc:
                        cve = _CVE_ID.search(member)
                        tally.skip(label, cve.group(0) if cve else None, str(exc).split("\n")[0])
                        continue
                    if row.date and (newest is None or row.date > newest):
                        newest = row.date
                    writer.add(row)
            except ArchiveError as exc:
                raise VulnDbError(
                    f"{file.path}: {exc}; nothing was imported, the previous database stays in use"
                ) from exc
        writer.flush()
        if tally.stored == 0 and tally.bad and tally.bad == tally.read:
            raise VulnDbError(f"{files[0].path}: no usable override record ({tally.issues[0][2]})")
        tally.save(conn)
        for line in tally.notes("nvd-data-overrides"):
            progress.note(line)
        if newest is None:
            newest = datetime.fromtimestamp(files[-1].path.stat().st_mtime, UTC).strftime(
                "%Y-%m-%d"
            )
        record_source(conn, NAME, newest, f"{tally.stored} records stored in the last import")
        for file in files:
            if file.remote is not None:
                record_feed_file(conn, NAME, file.remote)


SOURCE = OverridesSource()
