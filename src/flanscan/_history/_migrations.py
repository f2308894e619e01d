"""Schema of the history store, as ordered migrations shared by SQLite and PostgreSQL.

Each migration is a list of steps: statements in the common subset of both dialects, or a
function of the database for what SQL alone cannot compute (hashes). A store records the last
applied migration in `schema_version`; opening it applies the missing ones in order, in one
transaction. Never edit a released migration: append a new one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from flanscan._errors import EnvironmentProblem
from flanscan._history._convert import findings_to_groups, refingerprint
from flanscan._history._db import Database

Step = str | Callable[[Database], None]

MIGRATIONS: list[list[Step]] = [
    # 1: runs and what each found, per location.
    [
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            seq INTEGER NOT NULL,
            started_at TEXT,
            ended_at TEXT,
            recorded_at TEXT NOT NULL,
            targets TEXT NOT NULL,
            excluded TEXT NOT NULL,
            target_key TEXT NOT NULL,
            profile TEXT,
            ports TEXT,
            nmap_commands TEXT NOT NULL,
            nmap_version TEXT,
            incomplete_targets TEXT NOT NULL,
            warnings TEXT NOT NULL,
            xml_files TEXT NOT NULL,
            hosts_up INTEGER NOT NULL,
            hosts_down INTEGER NOT NULL,
            vulndb_path TEXT,
            vulndb_cve_count INTEGER,
            vulndb_sources TEXT,
            vulndb_built_at TEXT,
            vulndb_note TEXT,
            run_dir TEXT,
            source TEXT NOT NULL,
            fingerprint TEXT NOT NULL,
            host_count INTEGER NOT NULL,
            open_findings INTEGER NOT NULL,
            severity_counts TEXT NOT NULL
        )""",
        "CREATE INDEX runs_by_targets ON runs (target_key, started_at)",
        "CREATE UNIQUE INDEX runs_by_fingerprint ON runs (fingerprint)",
        """CREATE TABLE run_hosts (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            address TEXT NOT NULL,
            hostnames TEXT NOT NULL,
            status TEXT NOT NULL,
            open_ports INTEGER NOT NULL,
            PRIMARY KEY (run_id, address)
        )""",
        """CREATE TABLE run_services (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            address TEXT NOT NULL,
            port INTEGER NOT NULL,
            protocol TEXT NOT NULL,
            name TEXT,
            product TEXT,
            version TEXT,
            extrainfo TEXT,
            cpes TEXT NOT NULL,
            PRIMARY KEY (run_id, address, port, protocol)
        )""",
        """CREATE TABLE run_findings (
            run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
            vuln_id TEXT NOT NULL,
            address TEXT NOT NULL,
            port INTEGER NOT NULL,
            protocol TEXT NOT NULL,
            status TEXT NOT NULL,
            confidence TEXT NOT NULL,
            severity INTEGER NOT NULL,
            cvss DOUBLE PRECISION,
            kev INTEGER NOT NULL,
            kev_date_added TEXT,
            suppression_source TEXT,
            suppression_reason TEXT,
            suppression_owner TEXT,
            suppression_expires TEXT,
            PRIMARY KEY (run_id, vuln_id, address, port, protocol)
        )""",
    ],
    # 2: findings stored once per distinct list of findings (a "finding group", named by a hash
    # of its content), each location pointing at its group: rows grow with locations, not with
    # findings x locations (docs/history.md, "Storage").
    [
        """CREATE TABLE finding_groups (
            id INTEGER PRIMARY KEY,
            hash TEXT NOT NULL,
            digest TEXT NOT NULL,
            findings INTEGER NOT NULL,
            open_exact INTEGER NOT NULL
        )""",
        "CREATE UNIQUE INDEX finding_groups_by_hash ON finding_groups (hash)",
        """CREATE TABLE group_findings (
            group_id INTEGER NOT NULL REFERENCES finding_groups (id) ON DELETE CASCADE,
            vuln_id TEXT NOT NULL,
            status TEXT NOT NULL,
            confidence TEXT NOT NULL,
            severity INTEGER NOT NULL,
            cvss DOUBLE PRECISION,
            kev INTEGER NOT NULL,
            kev_date_added TEXT,
            suppression_source TEXT,
            suppression_reason TEXT,
            suppression_owner TEXT,
            suppression_expires TEXT,
            PRIMARY KEY (group_id, vuln_id)
        )""",
        "ALTER TABLE run_services ADD COLUMN findings_group INTEGER REFERENCES finding_groups (id)",
        # Findings at a location without a service row (flan's report builder never writes
        # them; a hand-made report could have): the location gets a bare row, nothing is lost.
        """INSERT INTO run_services (run_id, address, port, protocol, cpes)
            SELECT DISTINCT f.run_id, f.address, f.port, f.protocol, '' FROM run_findings f
            WHERE NOT EXISTS (SELECT 1 FROM run_services s WHERE s.run_id = f.run_id
                AND s.address = f.address AND s.port = f.port AND s.protocol = f.protocol)""",
        findings_to_groups,
        "DROP TABLE run_findings",
        refingerprint,
    ],
]

SCHEMA_VERSION = len(MIGRATIONS)


def current_version(db: Database) -> int:
    rows = db.query("SELECT version FROM schema_version")
    return int(rows[0][0]) if rows else 0


def migrate(db: Database, migrations: Sequence[Sequence[Step]] | None = None) -> int:
    """Create or upgrade the schema in one transaction; return the resulting version."""
    steps = MIGRATIONS if migrations is None else migrations
    with db.transaction():
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        version = current_version(db)
        if version > len(steps):
            raise EnvironmentProblem(
                f"history database {db.location} has schema version {version}, newer than this "
                f"flan knows ({len(steps)}): upgrade flan or use another --history"
            )
        for migration in steps[version:]:
            for step in migration:
                if isinstance(step, str):
                    db.execute(step)
                else:
                    step(db)
        if version == 0:
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (len(steps),))
        elif version < len(steps):
            db.execute("UPDATE schema_version SET version = ?", (len(steps),))
    if 0 < version < len(steps):
        db.reclaim_space()  # e.g. migration 2 drops a table of a row per finding and location
    return len(steps)
