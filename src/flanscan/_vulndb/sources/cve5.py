"""CVE JSON 5 records: the cvelistV5 release zip or repository archive, the cisagov/vulnrichment
archive, or any directory tree of records (`flan db import` walks trees file by file).

Kept per CVE (the copy with the newest `cveMetadata.dateUpdated` wins, whichever file it came
from): the CNA container's `affected` entries (vendor, product, packageName, versions,
defaultStatus, cpes) and `cpeApplicability`, the CISA ADP container's `affected` entries, and
SSVC's "Exploitation" and "Automatable" decision points. Versions are interpreted at match time,
per product (`flanscan._match.cve5`): here they are only checked for sanity (sizes, types).
A record that cannot be used is skipped and counted, the first few named; the import goes on.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from flanscan._errors import VulnDbError
from flanscan._match.aliases import spelling_key
from flanscan._vulndb._affected import (
    AFFECTED_DDL,
    AffectedRow,
    AffectedWriter,
    BadRecord,
    ImportTally,
)
from flanscan._vulndb._archive import (
    ArchiveError,
    archive_kind,
    first_record,
    is_record_name,
    json_members,
)
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
from flanscan._vulndb.sources.nvd import cpe_vendor_product

NAME = "cve5"
DEFAULT_URL = "https://github.com/CVEProject/cvelistV5/archive/refs/heads/main.zip"
VULNRICHMENT_URL = "https://github.com/cisagov/vulnrichment/archive/refs/heads/develop.zip"
VULNRICHMENT_ENV = "FLAN_VULNRICHMENT_URL"

_CVE_ID = re.compile(r"CVE-\d{4}-\d{4,}\Z")
_CPE22 = re.compile(r"cpe:/([aoh]):([^:]*):([^:]*)")
# Sanity limits: real records stay far below them; beyond, a record is hostile or broken.
MAX_TEXT = 256  # a version, vendor, product or CPE string
MAX_ENTRIES = 500  # affected entries per container
MAX_VERSIONS = 1000  # versions per entry
MAX_CHANGES = 100
_STATUSES = frozenset(("affected", "unaffected", "unknown"))


# --------------------------------------------------------------------------- one record


def _text(value: Any, what: str, cve_id: str, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise BadRecord(f"{what} missing")
        return None
    if not isinstance(value, str):
        raise BadRecord(f"{what} is not a string")
    if len(value) > MAX_TEXT:
        raise BadRecord(f"{what} is {len(value)} characters long")
    return value


def _status(value: Any, what: str) -> str:
    if value not in _STATUSES:
        raise BadRecord(f"{what} status {str(value)[:40]!r} is not affected/unaffected/unknown")
    return str(value)


def _version_entry(raw: Any, cve_id: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BadRecord("a versions item is not an object")
    out: dict[str, Any] = {"status": _status(raw.get("status"), "version")}
    for key in ("version", "lessThan", "lessThanOrEqual"):
        text = _text(raw.get(key), key, cve_id)
        if text is not None:
            out[key] = text
    if "version" not in out:
        raise BadRecord("a versions item has no version")
    changes = raw.get("changes")
    if changes is not None:
        if not isinstance(changes, list) or len(changes) > MAX_CHANGES:
            raise BadRecord("changes is not a short list")
        out["changes"] = [
            {
                "at": _text(c.get("at"), "changes.at", cve_id, True),
                "status": _status(c.get("status"), "change"),
            }
            for c in changes
            if isinstance(c, dict)
        ]
    return out


def _affected_entry(raw: Any, cve_id: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise BadRecord("an affected item is not an object")
    out: dict[str, Any] = {}
    for key in ("vendor", "product", "packageName"):
        text = _text(raw.get(key), key, cve_id)
        if text is not None:
            out[key] = text
    default = raw.get("defaultStatus")
    if default is not None:
        out["defaultStatus"] = _status(default, "defaultStatus")
    versions = raw.get("versions") or []
    if not isinstance(versions, list) or len(versions) > MAX_VERSIONS:
        raise BadRecord(f"versions is not a list of at most {MAX_VERSIONS}")
    out["versions"] = [_version_entry(v, cve_id) for v in versions]
    cpes = raw.get("cpes") or []
    if not isinstance(cpes, list) or len(cpes) > MAX_VERSIONS:
        raise BadRecord("cpes is not a list")
    out["cpes"] = [c for c in (_text(c, "cpe", cve_id) for c in cpes) if c]
    return out


def _entries(container: dict[str, Any], cve_id: str) -> list[dict[str, Any]]:
    affected = container.get("affected") or []
    if not isinstance(affected, list) or len(affected) > MAX_ENTRIES:
        raise BadRecord(f"affected is not a list of at most {MAX_ENTRIES}")
    return [_affected_entry(a, cve_id) for a in affected]


def _cpe_name(cpe: str) -> str | None:
    """`c:vendor:product` of an application CPE (2.2 URI or 2.3 string)."""
    if cpe.startswith("cpe:2.3:"):
        pair = cpe_vendor_product(cpe)
        part = cpe.split(":", 3)[2] if cpe.count(":") >= 3 else ""
        return f"c:{pair[0]}:{pair[1]}" if pair and part == "a" else None
    m = _CPE22.match(cpe)
    if m and m.group(1) == "a":
        return f"c:{m.group(2).lower()}:{m.group(3).lower()}"
    return None


def _names(entries: list[dict[str, Any]]) -> set[str]:
    names: set[str] = set()
    for e in entries:
        if e.get("vendor") or e.get("product"):
            names.add("s:" + spelling_key(e.get("vendor"), e.get("product")))
        if e.get("packageName"):
            names.add("p:" + " ".join(str(e["packageName"]).split()).lower())
        for cpe in e["cpes"]:
            name = _cpe_name(cpe)
            if name:
                names.add(name)
    return names


def _usable(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Entries that can say something: a real product name, or CPEs."""
    return [
        e
        for e in entries
        if e["cpes"]
        or e.get("packageName")
        or spelling_key(e.get("vendor"), e.get("product")) != "n/a / n/a"
    ]


def _applicability(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list) or len(raw) > MAX_ENTRIES:
        raise BadRecord("cpeApplicability is not a list")
    for config in raw:
        nodes = config.get("nodes") if isinstance(config, dict) else None
        if not isinstance(nodes, list):
            raise BadRecord("cpeApplicability without nodes")
        for node in nodes:
            matches = node.get("cpeMatch") if isinstance(node, dict) else None
            if not isinstance(matches, list) or len(matches) > MAX_VERSIONS:
                raise BadRecord("cpeApplicability node without cpeMatch")
            for m in matches:
                if not isinstance(m, dict) or not isinstance(m.get("criteria"), str):
                    raise BadRecord("cpeApplicability cpeMatch without criteria")
                for key, value in m.items():
                    if isinstance(value, str) and len(value) > MAX_TEXT:
                        raise BadRecord(f"cpeApplicability {key} is {len(value)} characters")
    return raw


def _ssvc(adp: dict[str, Any]) -> tuple[str | None, str | None]:
    exploitation = automatable = None
    for metric in adp.get("metrics") or ():
        other = metric.get("other") if isinstance(metric, dict) else None
        if not isinstance(other, dict) or other.get("type") != "ssvc":
            continue
        content = other.get("content")
        for option in (content.get("options") if isinstance(content, dict) else None) or ():
            if not isinstance(option, dict):
                continue
            for key, value in option.items():
                if key == "Exploitation" and isinstance(value, str):
                    exploitation = value[:20]
                elif key == "Automatable" and isinstance(value, str):
                    automatable = value[:20]
    return exploitation, automatable


def _summary(cna: dict[str, Any]) -> str | None:
    for desc in cna.get("descriptions") or ():
        if isinstance(desc, dict) and str(desc.get("lang", "")).startswith("en"):
            value = desc.get("value")
            return value[:4000] if isinstance(value, str) else None
    return None


Parsed = tuple[str, str, str | None, AffectedRow | None, tuple[str | None, str | None] | None]


def parse_record(record: Any, file: str) -> Parsed:
    """(kind, cve id, date, row or None, ssvc or None); kind "R" for a rejected CVE.

    BadRecord when the record is not a usable CVE JSON 5 record.
    """
    if not isinstance(record, dict):
        raise BadRecord("not a JSON object")
    if record.get("dataType") != "CVE_RECORD":
        raise BadRecord(f"dataType {str(record.get('dataType'))[:40]!r}, not CVE_RECORD")
    version = str(record.get("dataVersion", ""))
    if not re.fullmatch(r"5\.\d+(?:\.\d+)?", version):
        raise BadRecord(f"unknown schema version {version[:20]!r} (this reads CVE JSON 5.x)")
    meta = record.get("cveMetadata")
    if not isinstance(meta, dict):
        raise BadRecord("no cveMetadata")
    cve_id = meta.get("cveId")
    if not isinstance(cve_id, str) or not _CVE_ID.match(cve_id):
        raise BadRecord(f"cveId {str(cve_id)[:40]!r} is not a CVE id")
    date = meta.get("dateUpdated") or meta.get("datePublished")
    date = str(date)[:40] if date else None
    if meta.get("state") == "REJECTED":
        return ("R", cve_id, date, None, None)
    containers = record.get("containers")
    if not isinstance(containers, dict) or not isinstance(containers.get("cna"), dict):
        raise BadRecord("no CNA container")
    cna = containers["cna"]
    try:
        cna_entries = _usable(_entries(cna, cve_id))
        applicability = _applicability(cna.get("cpeApplicability"))
        adp_entries: list[dict[str, Any]] = []
        ssvc: tuple[str | None, str | None] | None = None
        for adp in containers.get("adp") or ():
            if not isinstance(adp, dict):
                continue
            provider = (adp.get("providerMetadata") or {}).get("shortName")
            if provider != "CISA-ADP":
                continue  # the CVE Program container holds references only
            adp_entries.extend(_usable(_entries(adp, cve_id)))
            found = _ssvc(adp)
            if found != (None, None):
                ssvc = found
    except BadRecord as exc:
        raise BadRecord(f"{cve_id}: {exc}") from exc
    except (AttributeError, TypeError) as exc:  # a field of the wrong JSON type
        raise BadRecord(f"{cve_id}: malformed ({exc})") from exc
    tiers = ("c" if cna_entries else "") + ("a" if applicability else "")
    tiers += "d" if adp_entries else ""
    if not tiers:
        return ("C", cve_id, date, None, ssvc)
    names = _names(cna_entries) | _names(adp_entries)
    for config in applicability:
        for node in config["nodes"]:
            for m in node["cpeMatch"]:
                name = _cpe_name(m["criteria"])
                if name:
                    names.add(name)
    data = {
        "date": date,
        "file": file,
        "assigner": str(meta.get("assignerShortName") or "")[:40] or None,
        "cna": cna_entries,
        "applicability": applicability,
        "adp": adp_entries,
        "summary": _summary(cna),
    }
    row = AffectedRow(cve_id, date, file, tiers, data, frozenset(names))
    return ("C", cve_id, date, row, ssvc)


# --------------------------------------------------------------------------- files


def _is_cve5(data: Any) -> bool:
    return isinstance(data, dict) and data.get("dataType") == "CVE_RECORD"


def _probe_is_cve5(probe: ContentProbe) -> bool:
    return probe.value_at("dataType") == "CVE_RECORD" or (
        "cveMetadata" in probe.keys_at("") and "containers" in probe.keys_at("")
    )


def iter_records(path: Path) -> Iterator[tuple[str, bytes | None]]:
    """(name, JSON bytes) of each record in an archive or a single file; ArchiveError if damaged."""
    probe = probe_file(path)
    kind = archive_kind(probe)
    if kind is None:
        yield path.name, path.read_bytes()
        return
    for name, data in json_members(path, kind):
        if is_record_name(name):
            yield name, data


def import_records(
    conn: sqlite3.Connection,
    files: Sequence[ImportFile],
    tally: ImportTally,
    progress: Progress,
) -> str | None:
    """Merge every record of `files`; the newest `dateUpdated` seen. VulnDbError if an archive
    is damaged (the import stops; the previous database stays)."""
    writer = AffectedWriter(conn, NAME, tally)
    newest: str | None = None
    ssvc_rows: dict[str, tuple[str | None, str | None, str | None]] = {}
    task = progress.task("CVE 5 records", total=None)
    for file in files:
        try:
            for name, raw in iter_records(file.path):
                tally.read += 1
                task.advance(1)
                label = name if name != file.path.name else str(file.path)
                if raw is None:
                    tally.skip(label, None, "record larger than 16 MiB")
                    continue
                try:
                    kind, cve_id, date, row, ssvc = parse_record(json.loads(raw), name)
                except (BadRecord, ValueError, RecursionError) as exc:
                    reason = _reason(exc)
                    head = re.match(r"(CVE-\d{4}-\d{4,}): (.*)", reason)
                    found = re.search(r"CVE-\d{4}-\d{4,}", name)
                    bad_id = found.group(0) if found else None
                    if head is not None:
                        bad_id, reason = head.group(1), head.group(2)
                    tally.skip(label, bad_id, reason)
                    continue
                if date and (newest is None or date > newest):
                    newest = date
                if kind == "R":
                    writer.remove(cve_id)
                    ssvc_rows.pop(cve_id, None)
                    continue
                if ssvc is not None:
                    prev = ssvc_rows.get(cve_id)
                    if prev is None or (prev[2] or "") <= (date or ""):
                        ssvc_rows[cve_id] = (*ssvc, date)
                if row is None:
                    tally.unusable += 1
                    continue
                writer.add(row)
        except ArchiveError as exc:
            raise VulnDbError(
                f"{file.path}: {exc}; nothing was imported, the previous database stays in use"
            ) from exc
        except OSError as exc:
            raise VulnDbError(f"{file.path}: cannot read ({exc.strerror or exc})") from exc
    writer.flush()
    task.finish()
    _save_ssvc(conn, ssvc_rows)
    return newest


def _reason(exc: BaseException) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"bad JSON ({exc.msg} at line {exc.lineno})"
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply"
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _save_ssvc(
    conn: sqlite3.Connection, rows: dict[str, tuple[str | None, str | None, str | None]]
) -> None:
    conn.executemany(
        "INSERT INTO ssvc(cve_id, exploitation, automatable, date_updated) VALUES (?,?,?,?)"
        " ON CONFLICT(cve_id) DO UPDATE SET exploitation = excluded.exploitation,"
        " automatable = excluded.automatable, date_updated = excluded.date_updated"
        " WHERE coalesce(excluded.date_updated, '') >= coalesce(ssvc.date_updated, '')",
        [(cve, e, a, d) for cve, (e, a, d) in rows.items()],
    )


class Cve5Source:
    name = NAME
    title = "CVE JSON 5 (cvelistV5, vulnrichment)"
    ddl = AFFECTED_DDL
    default_url = DEFAULT_URL
    url_env = "FLAN_CVE5_URL"

    def sniff(self, probe: ContentProbe) -> bool:
        if probe.is_json and _probe_is_cve5(probe):
            return True
        if is_record_name(probe.path.name) and probe.text_head.lstrip().startswith(("{", "[")):
            # Named like a record, JSON-like, and claimed by no source asked before (NVD,
            # overrides): a damaged CVE 5 record in a tree, to be skipped and named.
            return not {"cve", "vulnerabilities", "_annotation"} & set(probe.keys_at(""))
        kind = archive_kind(probe)
        if kind is None:
            return False
        head = first_record(probe.path, kind)
        if head == b"cves.zip":
            return True
        try:
            return head is not None and _is_cve5(json.loads(head))
        except ValueError:
            return False

    def plan(self, fetcher: Fetcher, base_url: str, state: SourceState) -> list[RemoteFile]:
        # Two archives without checksums: always fetched, imported only when their content
        # changed (the sha256 of what was imported is recorded).
        vulnrichment = os.environ.get(VULNRICHMENT_ENV) or VULNRICHMENT_URL
        return [
            RemoteFile(source=NAME, name="cvelistV5.zip", url=base_url),
            RemoteFile(source=NAME, name="vulnrichment.zip", url=vulnrichment),
        ]

    def import_files(
        self, conn: sqlite3.Connection, files: Sequence[ImportFile], progress: Progress
    ) -> None:
        tally = ImportTally(NAME)
        newest = import_records(conn, files, tally, progress)
        if tally.stored == 0 and tally.read == tally.bad and tally.bad:
            raise VulnDbError(
                f"{files[0].path}: none of its {tally.read} records is a usable CVE JSON 5 record"
                f" ({tally.issues[0][2]})"
            )
        tally.save(conn)
        for line in tally.notes("CVE 5 records"):
            progress.note(line)
        record_source(conn, NAME, newest, f"{tally.stored} records stored in the last import")
        for file in files:
            if file.remote is not None:
                record_feed_file(conn, NAME, file.remote)


SOURCE = Cve5Source()
