"""The store's core tables. Each source adds its own tables through its `ddl`.

Layout (SCHEMA_VERSION 1):
- `meta(key, value)`: schema_version, built_at, last_check.
- `sources(name, data_date, imported_at, detail)`: one row per source that has data.
- `feed_files(source, name, sha256, last_modified, imported_at)`: which remote files are in,
  so `flan db update` skips unchanged ones.
- `cve`: one row per non-rejected CVE: the fields reports need, plus `configurations` (the NVD
  array exactly as published, compact JSON compressed with zlib; NULL when the NVD has none,
  i.e. the record is awaiting analysis and is never a match candidate).
- `cve_product(vendor, product, cve_id)`: every vendor:product named by any cpeMatch of a CVE's
  configurations; the index behind `candidates()`.
- `cve_rejected(id, last_modified)`: tombstones, so an older copy never resurrects a rejected CVE.
- `affected(cve_id, source, data)`: affected-version data from sources other than the NVD
  configurations, one row per CVE and source: `cve5` (CNA and CISA ADP containers of the CVE
  JSON 5 record), `overrides` (anchore nvd-data-overrides configurations), `nvd` (an
  `affected` list some NVD records carry). Their index tables are in `_affected.py`.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 1

CORE_DDL = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sources (
    name TEXT PRIMARY KEY,
    data_date TEXT,
    imported_at TEXT NOT NULL,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS feed_files (
    source TEXT NOT NULL,
    name TEXT NOT NULL,
    sha256 TEXT,
    last_modified TEXT,
    imported_at TEXT NOT NULL,
    PRIMARY KEY (source, name)
);
CREATE TABLE IF NOT EXISTS cve (
    id TEXT PRIMARY KEY,
    published TEXT,
    last_modified TEXT NOT NULL,
    status TEXT,
    summary TEXT,
    cvss_score REAL,
    cvss_version TEXT,
    cvss_vector TEXT,
    cvss_source TEXT,
    cwes TEXT,
    configurations BLOB
);
CREATE TABLE IF NOT EXISTS cve_product (
    vendor TEXT NOT NULL,
    product TEXT NOT NULL,
    cve_id TEXT NOT NULL,
    PRIMARY KEY (vendor, product, cve_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS cve_rejected (id TEXT PRIMARY KEY, last_modified TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS affected (
    cve_id TEXT NOT NULL,
    source TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (cve_id, source)
);
"""


def create_schema(conn: sqlite3.Connection, source_ddls: list[str]) -> None:
    """Create the core tables and every source's tables (idempotent)."""
    conn.executescript(CORE_DDL)
    for ddl in source_ddls:
        conn.executescript(ddl)
    conn.execute(
        "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )


def schema_version(conn: sqlite3.Connection) -> int | None:
    """The schema version recorded in the file, or None when it is not a Flan Scan database."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError:
        return None
    if row is None:
        return None
    try:
        return int(row[0])
    except ValueError:
        return None
