"""FIRST EPSS scores: a CSV (usually gzip) with a `#model_version:...,score_date:...` line."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Sequence

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

NAME = "epss"
FILE_NAME = "epss_scores-current.csv.gz"
DEFAULT_URL = "https://epss.empiricalsecurity.com/epss_scores-current.csv.gz"

DDL = """
CREATE TABLE IF NOT EXISTS epss (
    cve_id TEXT PRIMARY KEY,
    score REAL NOT NULL,
    percentile REAL NOT NULL
) WITHOUT ROWID;
"""


def parse_header_comment(line: str) -> dict[str, str]:
    """`#model_version:v2025.03.14,score_date:2025-08-25T12:55:00Z` -> dict."""
    out: dict[str, str] = {}
    for part in line.lstrip("#").strip().split(","):
        key, sep, value = part.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


def read_epss(file: ImportFile) -> tuple[dict[str, str], list[tuple[str, float, float]]]:
    """The header fields and (cve, score, percentile) rows of one EPSS CSV."""
    path = file.path
    header: dict[str, str] = {}
    rows: list[tuple[str, float, float]] = []
    try:
        with open_feed(path) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            first = text.readline()
            if first.startswith("#"):
                header = parse_header_comment(first)
                first = text.readline()
            columns = [c.strip() for c in first.strip().split(",")]
            if columns[:3] != ["cve", "epss", "percentile"]:
                raise VulnDbError(
                    f"{path}: not an EPSS CSV (columns {columns[:3]}, expected cve,epss,percentile)"
                )
            for lineno, rec in enumerate(csv.reader(text), start=3 if header else 2):
                if not rec:
                    continue
                try:
                    rows.append((rec[0], float(rec[1]), float(rec[2])))
                except (IndexError, ValueError) as exc:
                    raise VulnDbError(f"{path}:{lineno}: bad EPSS row {rec!r:.80}") from exc
    except VulnDbError:
        raise
    except READ_ERRORS as exc:
        raise feed_error(path, exc) from exc
    return header, rows


class EpssSource:
    name = NAME
    title = "FIRST EPSS scores"
    ddl = DDL
    default_url = DEFAULT_URL
    url_env = "FLAN_EPSS_URL"

    def sniff(self, probe: ContentProbe) -> bool:
        head = probe.text_head.lstrip()
        if head.startswith("#model_version"):
            return True
        return head.startswith("cve,epss,percentile")

    def plan(self, fetcher: Fetcher, base_url: str, state: SourceState) -> list[RemoteFile]:
        return [RemoteFile(source=NAME, name=FILE_NAME, url=base_url)]

    def import_files(
        self, conn: sqlite3.Connection, files: Sequence[ImportFile], progress: Progress
    ) -> None:
        # Each file is a complete daily snapshot: the newest given one replaces the table.
        loaded = [(f, *read_epss(f)) for f in files]
        file, header, rows = max(loaded, key=lambda x: x[1].get("score_date", ""))
        conn.execute("DELETE FROM epss")
        conn.executemany("INSERT OR REPLACE INTO epss VALUES (?,?,?)", rows)
        record_source(conn, NAME, header.get("score_date"), header.get("model_version"))
        if file.remote is not None:
            record_feed_file(conn, NAME, file.remote)
        progress.note(f"EPSS: {len(rows)} scores ({header.get('score_date', 'no date')})")


SOURCE = EpssSource()
