"""Read access to the distribution trackers' data in the vulnerability database.

Both trackers (Debian's security tracker JSON, Ubuntu's OSV export) are imported into one table,
one row per (distribution, release, source package, CVE), keeping the tracker's own words:
`status` is the Debian tracker's ("resolved", "open", "undetermined"); `fixed_version` "0" means
the release was never affected. Interpretation happens in `apply_distribution`, in one place.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

DISTRO_DDL = """
CREATE TABLE IF NOT EXISTS distro_fix (
    distribution TEXT NOT NULL,
    release TEXT NOT NULL,
    package TEXT NOT NULL,
    cve_id TEXT NOT NULL,
    status TEXT NOT NULL,
    fixed_version TEXT,
    urgency TEXT,
    note TEXT,
    PRIMARY KEY (distribution, release, package, cve_id)
) WITHOUT ROWID;
"""

TRACKER_NAMES: dict[str, str] = {
    "debian": "Debian security tracker",
    "ubuntu": "Ubuntu security data (OSV export)",
}
TRACKER_URLS: dict[str, str] = {
    "debian": "https://security-tracker.debian.org/tracker/{cve}",
    "ubuntu": "https://ubuntu.com/security/{cve}",
}


@dataclass(frozen=True)
class TrackerEntry:
    """One tracker row: what a distribution says about a CVE in one release of one package."""

    distribution: str
    release: str
    package: str
    cve_id: str
    status: str  # "resolved" | "open" | "undetermined"
    fixed_version: str | None = None  # "0": never affected
    urgency: str | None = None
    note: str | None = None

    @property
    def tracker(self) -> str:
        return TRACKER_NAMES.get(self.distribution, f"{self.distribution} tracker")

    @property
    def url(self) -> str:
        return TRACKER_URLS.get(self.distribution, "{cve}").format(cve=self.cve_id)


class DistroTracker:
    """Looks up tracker rows in an open SQLite connection (the vulnerability database)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        rows = conn.execute("SELECT DISTINCT distribution, release FROM distro_fix").fetchall()
        self._releases: frozenset[tuple[str, str]] = frozenset((r[0], r[1]) for r in rows)

    @classmethod
    def from_connection(cls, conn: sqlite3.Connection) -> DistroTracker | None:
        """A tracker over `conn`, or None when the database holds no distribution data."""
        try:
            row = conn.execute("SELECT 1 FROM distro_fix LIMIT 1").fetchone()
        except sqlite3.OperationalError:  # table absent: a database built without trackers
            return None
        return cls(conn) if row is not None else None

    def covers(self, distribution: str, release: str | None = None) -> bool:
        """Whether tracker data for this distribution (and release) was imported."""
        if release is None:
            return any(d == distribution for d, _ in self._releases)
        return (distribution, release) in self._releases

    def entry(
        self, distribution: str, release: str, package: str, cve_id: str
    ) -> TrackerEntry | None:
        """The tracker's row for this CVE in this release of this package, if any."""
        row = self._conn.execute(
            "SELECT status, fixed_version, urgency, note FROM distro_fix"
            " WHERE distribution = ? AND release = ? AND package = ? AND cve_id = ?",
            (distribution, release, package, cve_id),
        ).fetchone()
        if row is None:
            return None
        return TrackerEntry(distribution, release, package, cve_id, *row)

    def count(self) -> int:
        """Number of tracker rows (for `flan db status`)."""
        return int(self._conn.execute("SELECT count(*) FROM distro_fix").fetchone()[0])


def tracker_for(db: object) -> DistroTracker | None:
    """The distribution tracker data of an open vulnerability database, or None if it has none."""
    conn = db if isinstance(db, sqlite3.Connection) else None
    for attr in ("connection", "conn", "_conn"):
        if conn is None:
            candidate = getattr(db, attr, None)
            if isinstance(candidate, sqlite3.Connection):
                conn = candidate
    if conn is None:
        return None
    return DistroTracker.from_connection(conn)
