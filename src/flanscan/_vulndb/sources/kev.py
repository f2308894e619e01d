"""The CISA Known Exploited Vulnerabilities catalogue (JSON, one complete snapshot per file)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

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

NAME = "kev"
FILE_NAME = "known_exploited_vulnerabilities.json"
DEFAULT_URL = "https://www.cisa.gov/sites/default/files/feeds/known_exploited_vulnerabilities.json"

DDL = """
CREATE TABLE IF NOT EXISTS kev (
    cve_id TEXT PRIMARY KEY,
    vendor_project TEXT,
    product TEXT,
    vulnerability_name TEXT,
    date_added TEXT NOT NULL,
    short_description TEXT,
    required_action TEXT,
    due_date TEXT,
    known_ransomware_use TEXT,
    notes TEXT
) WITHOUT ROWID;
"""


def _load(path: Any) -> dict[str, Any]:
    try:
        with open_feed(path) as stream:
            data = json.load(stream)
    except READ_ERRORS as exc:
        raise feed_error(path, exc) from exc
    if not isinstance(data, dict) or not isinstance(data.get("vulnerabilities"), list):
        raise VulnDbError(f"{path}: not a CISA KEV catalogue (no `vulnerabilities` list)")
    return data


class KevSource:
    name = NAME
    title = "CISA Known Exploited Vulnerabilities"
    ddl = DDL
    default_url = DEFAULT_URL
    url_env = "FLAN_KEV_URL"

    def sniff(self, probe: ContentProbe) -> bool:
        top = probe.keys_at("")
        return "catalogVersion" in top or "cveID" in probe.keys_at("vulnerabilities.item")

    def plan(self, fetcher: Fetcher, base_url: str, state: SourceState) -> list[RemoteFile]:
        # One small file with no .meta: always fetched; skipped at import when its sha256 is
        # the one already in the database.
        return [RemoteFile(source=NAME, name=FILE_NAME, url=base_url)]

    def import_files(
        self, conn: sqlite3.Connection, files: Sequence[ImportFile], progress: Progress
    ) -> None:
        # Each catalogue is a complete snapshot: the newest given one replaces the table.
        loaded = [(f, _load(f.path)) for f in files]
        file, data = max(loaded, key=lambda fd: str(fd[1].get("dateReleased") or ""))
        rows = []
        for entry in data["vulnerabilities"]:
            cve_id, added = entry.get("cveID"), entry.get("dateAdded")
            if not cve_id or not added:
                raise VulnDbError(f"{file.path}: KEV entry without cveID/dateAdded: {entry!r:.80}")
            rows.append(
                (
                    cve_id,
                    entry.get("vendorProject"),
                    entry.get("product"),
                    entry.get("vulnerabilityName"),
                    added,
                    entry.get("shortDescription"),
                    entry.get("requiredAction"),
                    entry.get("dueDate"),
                    entry.get("knownRansomwareCampaignUse"),
                    entry.get("notes"),
                )
            )
        conn.execute("DELETE FROM kev")
        conn.executemany("INSERT OR REPLACE INTO kev VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
        released = data.get("dateReleased")
        record_source(conn, NAME, str(released) if released else None, data.get("catalogVersion"))
        if file.remote is not None:
            record_feed_file(conn, NAME, file.remote)
        progress.note(f"KEV: {len(rows)} entries (catalogue {data.get('catalogVersion')})")


SOURCE = KevSource()
