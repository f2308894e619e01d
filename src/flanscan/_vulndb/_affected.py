"""Storage shared by the sources that describe affected versions outside NVD configurations.

The CVE 5 source (cvelistV5, vulnrichment) and the anchore overrides keep, per CVE and source,
one compact record in the core `affected` table, plus:
- `affected_record(cve_id, source, date_updated, file, tiers, names)`: which copy is in (the
  newer `dateUpdated` wins), which matching tiers it can feed (`tiers`: letters c = CNA
  versions, a = CNA cpeApplicability, d = CISA ADP versions, o = override configurations), and
  its index names (newline-separated, to remove them when a newer copy replaces it);
- `affected_name(name, source, cve_id)`: the index the matcher reads: `s:vendor / product`
  (CVE 5 spelling, lower case), `p:packagename`, `c:vendor:product` (CPE names);
- `ssvc(cve_id, exploitation, automatable, date)`: CISA's SSVC decision points;
- `description_product(product, cve_id)`: CVEs without NVD configurations whose description
  names a registry product (its `words`), rebuilt after every import: the `possible` tier;
- `source_issue(source, seq, file, cve_id, reason)`: the first records not understood, and
  `source_count(source, key, value)`: how many (shown by `flan db status`).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from flanscan._vulndb.sources.nvd import pack_json

AFFECTED_DDL = """
CREATE TABLE IF NOT EXISTS affected_record (
    cve_id TEXT NOT NULL,
    source TEXT NOT NULL,
    date_updated TEXT,
    file TEXT,
    tiers TEXT NOT NULL,
    names TEXT NOT NULL,
    PRIMARY KEY (cve_id, source)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS affected_name (
    name TEXT NOT NULL,
    source TEXT NOT NULL,
    cve_id TEXT NOT NULL,
    PRIMARY KEY (name, source, cve_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ssvc (
    cve_id TEXT PRIMARY KEY,
    exploitation TEXT,
    automatable TEXT,
    date_updated TEXT
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS source_issue (
    source TEXT NOT NULL,
    seq INTEGER NOT NULL,
    file TEXT,
    cve_id TEXT,
    reason TEXT NOT NULL,
    PRIMARY KEY (source, seq)
);
CREATE TABLE IF NOT EXISTS description_product (
    product TEXT NOT NULL,
    cve_id TEXT NOT NULL,
    PRIMARY KEY (product, cve_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS source_count (
    source TEXT NOT NULL,
    key TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (source, key)
);
"""

SHOWN_ISSUES = 5
_WORDS_BATCH = 5000  # records not understood named in notes and status; the rest are counted
_BATCH = 1000


class BadRecord(ValueError):
    """A record that cannot be used (bad JSON, unknown schema, absurd values): skip and count."""


@dataclass
class ImportTally:
    """Per-source counts of one import, and the first records not understood."""

    source: str
    read: int = 0
    stored: int = 0
    older: int = 0  # an older copy of a CVE already stored: ignored
    rejected: int = 0
    unusable: int = 0  # understood, but says nothing a matcher can use ("n/a / n/a")
    bad: int = 0
    issues: list[tuple[str, str | None, str]] = field(default_factory=list)

    def skip(self, file: str, cve_id: str | None, reason: str) -> None:
        self.bad += 1
        if len(self.issues) < SHOWN_ISSUES:
            self.issues.append((file, cve_id, reason[:200]))

    def notes(self, title: str) -> list[str]:
        lines = [
            f"{title}: {self.read} records read, {self.stored} stored, {self.older} older copies"
            f" ignored, {self.unusable} without usable affected data, {self.bad} not understood"
        ]
        lines.extend(
            f"  skipped {file}{f' ({cve})' if cve else ''}: {reason}"
            for file, cve, reason in self.issues
        )
        if self.bad > len(self.issues):
            lines.append(f"  ... and {self.bad - len(self.issues)} more not understood")
        return lines

    def save(self, conn: sqlite3.Connection) -> None:
        """Record the counts and issues of this import (they replace the previous import's)."""
        conn.execute("DELETE FROM source_issue WHERE source = ?", (self.source,))
        conn.executemany(
            "INSERT INTO source_issue(source, seq, file, cve_id, reason) VALUES (?,?,?,?,?)",
            [(self.source, i, f, c, r) for i, (f, c, r) in enumerate(self.issues)],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO source_count(source, key, value) VALUES (?,?,?)",
            [(self.source, "not_understood", self.bad), (self.source, "unusable", self.unusable)],
        )


@dataclass(frozen=True)
class AffectedRow:
    """One source's data for one CVE, ready to store."""

    cve_id: str
    date: str | None
    file: str
    tiers: str
    data: object  # JSON-able
    names: frozenset[str]


class AffectedWriter:
    """Batches rows of one source; a newer copy of a CVE replaces an older one (by date)."""

    def __init__(self, conn: sqlite3.Connection, source: str, tally: ImportTally) -> None:
        self.conn = conn
        self.source = source
        self.tally = tally
        self._pending: dict[str, AffectedRow] = {}
        self._removed: set[str] = set()

    def add(self, row: AffectedRow) -> None:
        prev = self._pending.get(row.cve_id)
        if prev is not None and (prev.date or "") > (row.date or ""):
            self.tally.older += 1
            return
        if prev is not None:
            self.tally.older += 1
        self._pending[row.cve_id] = row
        if len(self._pending) >= _BATCH:
            self.flush()

    def remove(self, cve_id: str) -> None:
        """A rejected CVE: its data goes."""
        self._pending.pop(cve_id, None)
        self._removed.add(cve_id)
        self.tally.rejected += 1

    def flush(self) -> None:
        conn, source = self.conn, self.source
        if self._removed:
            gone = [(c, source) for c in sorted(self._removed)]
            _delete(conn, gone)
            self._removed.clear()
        rows = list(self._pending.values())
        self._pending.clear()
        if not rows:
            return
        marks = ",".join("?" * len(rows))
        existing = dict(
            conn.execute(
                "SELECT cve_id, date_updated FROM affected_record"
                f" WHERE source = ? AND cve_id IN ({marks})",
                [source, *(r.cve_id for r in rows)],
            )
        )
        fresh = []
        for row in rows:
            old = existing.get(row.cve_id)
            if old is not None and (old or "") > (row.date or ""):
                self.tally.older += 1
                continue
            fresh.append(row)
        _delete(conn, [(r.cve_id, source) for r in fresh if r.cve_id in existing])
        conn.executemany(
            "INSERT OR REPLACE INTO affected(cve_id, source, data) VALUES (?,?,?)",
            [(r.cve_id, source, pack_json(r.data)) for r in fresh],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO affected_record(cve_id, source, date_updated, file, tiers,"
            " names) VALUES (?,?,?,?,?,?)",
            [
                (r.cve_id, source, r.date, r.file, r.tiers, "\n".join(sorted(r.names)))
                for r in fresh
            ],
        )
        conn.executemany(
            "INSERT OR IGNORE INTO affected_name(name, source, cve_id) VALUES (?,?,?)",
            [(n, source, r.cve_id) for r in fresh for n in r.names],
        )
        self.tally.stored += len(fresh)


def refresh_description_index(conn: sqlite3.Connection) -> None:
    """Rebuild `description_product` from the descriptions of CVEs without NVD configurations
    (NVD summaries, else the CVE 5 record's), by the registry's product words."""
    from flanscan._match.aliases import ALIASES
    from flanscan._vulndb.sources.nvd import unpack_json

    words = [(a.key, a.words) for a in ALIASES if a.words]
    conn.execute("DELETE FROM description_product")

    # Read first, then write: the reading cursors must be finished before the inserts.
    texts: list[tuple[str, str]] = conn.execute(
        "SELECT id, summary FROM cve WHERE configurations IS NULL AND summary IS NOT NULL"
    ).fetchall()
    for cve_id, blob in conn.execute(
        "SELECT a.cve_id, a.data FROM affected a WHERE a.source = 'cve5'"
        " AND NOT EXISTS (SELECT 1 FROM cve c WHERE c.id = a.cve_id)"
    ).fetchall():
        summary = unpack_json(blob).get("summary")
        if isinstance(summary, str):
            texts.append((cve_id, summary))
    batch: list[tuple[str, str]] = []
    for cve_id, summary in texts:
        low = summary.lower()
        batch.extend((key, cve_id) for key, ws in words if any(w in low for w in ws))
        if len(batch) >= _WORDS_BATCH:
            conn.executemany("INSERT OR IGNORE INTO description_product VALUES (?,?)", batch)
            batch.clear()
    conn.executemany("INSERT OR IGNORE INTO description_product VALUES (?,?)", batch)


def _delete(conn: sqlite3.Connection, keys: list[tuple[str, str]]) -> None:
    """Remove the stored data of (cve_id, source) pairs, with their index names."""
    for cve_id, source in keys:
        row = conn.execute(
            "SELECT names FROM affected_record WHERE cve_id = ? AND source = ?", (cve_id, source)
        ).fetchone()
        if row is not None and row[0]:
            conn.executemany(
                "DELETE FROM affected_name WHERE name = ? AND source = ? AND cve_id = ?",
                [(name, source, cve_id) for name in row[0].split("\n")],
            )
        conn.execute("DELETE FROM affected WHERE cve_id = ? AND source = ?", (cve_id, source))
        conn.execute(
            "DELETE FROM affected_record WHERE cve_id = ? AND source = ?", (cve_id, source)
        )


# Per source: (tier, SQL counting the CVEs that tier can decide, beyond NVD configurations).
_NO_NVD = (
    " AND NOT EXISTS (SELECT 1 FROM cve c WHERE c.id = r.cve_id AND c.configurations IS NOT NULL)"
)
_TIER_SQL: dict[str, list[tuple[str, str]]] = {
    "overrides": [
        ("override", "SELECT count(*) FROM affected_record r WHERE source = 'overrides'")
    ],
    "cve5": [
        (
            "cna",
            "SELECT count(*) FROM affected_record r WHERE source = 'cve5'"
            " AND (tiers LIKE '%c%' OR tiers LIKE '%a%')",
        ),
        (
            "adp",
            "SELECT count(*) FROM affected_record r WHERE source = 'cve5' AND tiers LIKE '%d%'",
        ),
    ],
    "debian-list": [
        (
            "distribution",
            "SELECT count(DISTINCT cve_id) FROM distro_fix r WHERE distribution = 'debian'"
            " AND release = 'sid' AND fixed_version IS NOT NULL AND fixed_version != '0'",
        )
    ],
}
_RECORDS_SQL = {
    "overrides": "SELECT count(*) FROM affected_record WHERE source = 'overrides'",
    "cve5": "SELECT count(*) FROM affected_record WHERE source = 'cve5'",
    "debian-list": "SELECT count(DISTINCT cve_id) FROM distro_fix WHERE release = 'sid'",
}


@dataclass(frozen=True)
class SourceFigures:
    """What `flan db status` says of a source beyond its date."""

    records: int | None = None
    tiers: tuple[tuple[str, int, int], ...] = ()  # (tier, CVEs it covers, of which not in NVD)
    not_understood: int = 0
    unusable: int = 0
    issues: tuple[str, ...] = ()


def _table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def source_figures(conn: sqlite3.Connection, source: str) -> SourceFigures:
    """Records, per-tier CVE counts and records not understood, for one source."""
    if not _table(conn, "source_count") or source not in _RECORDS_SQL:
        if source == "nvd":
            total = conn.execute("SELECT count(*) FROM cve").fetchone()[0]
            analysed = conn.execute(
                "SELECT count(*) FROM cve WHERE configurations IS NOT NULL"
            ).fetchone()[0]
            return SourceFigures(records=int(total), tiers=(("nvd", int(analysed), 0),))
        return SourceFigures()
    counts = dict(conn.execute("SELECT key, value FROM source_count WHERE source = ?", (source,)))
    tiers = []
    for tier, sql in _TIER_SQL.get(source, []):
        covered = int(conn.execute(sql).fetchone()[0])
        beyond = int(conn.execute(sql + _NO_NVD).fetchone()[0])
        tiers.append((tier, covered, beyond))
    issues = tuple(
        f"{file}{f' ({cve})' if cve else ''}: {reason}"
        for file, cve, reason in conn.execute(
            "SELECT file, cve_id, reason FROM source_issue WHERE source = ? ORDER BY seq",
            (source,),
        )
    )
    return SourceFigures(
        records=int(conn.execute(_RECORDS_SQL[source]).fetchone()[0]),
        tiers=tuple(tiers),
        not_understood=int(counts.get("not_understood", 0)),
        unusable=int(counts.get("unusable", 0)),
        issues=issues,
    )
