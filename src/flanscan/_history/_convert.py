"""The Python steps of migration 2: a store that kept one row per finding and location
(`run_findings`) gets finding groups and new run fingerprints (see `_groups`).

Each run's findings are read in location order as a stream; only the run's locations and its
distinct groups are held in memory, never its findings x locations.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from flanscan._history._db import Database
from flanscan._history._groups import (
    FindingGroup,
    GroupRow,
    RunHeader,
    fingerprint,
    group_row,
    make_group,
    save_groups,
)
from flanscan._history._rows import PortKey

_OLD_FINDING_COLUMNS = (
    "vuln_id, status, confidence, severity, cvss, kev, kev_date_added, suppression_source, "
    "suppression_reason, suppression_owner, suppression_expires"
)


def _locations(db: Database, run_id: str) -> Iterator[tuple[PortKey, list[GroupRow]]]:
    key: PortKey | None = None
    rows: list[GroupRow] = []
    for r in db.stream(
        f"SELECT address, port, protocol, {_OLD_FINDING_COLUMNS} FROM run_findings "
        "WHERE run_id = ? ORDER BY address, port, protocol",
        (run_id,),
    ):
        here = (str(r[0]), int(r[1]), str(r[2]))
        if here != key:
            if key is not None:
                yield key, rows
            key, rows = here, []
        rows.append(group_row(r[3:]))
    if key is not None:
        yield key, rows


def findings_to_groups(db: Database) -> None:
    """Fill finding_groups, group_findings and run_services.findings_group from run_findings."""
    db.execute(
        "CREATE TABLE migration_locations (run_id TEXT NOT NULL, address TEXT NOT NULL, "
        "port INTEGER NOT NULL, protocol TEXT NOT NULL, group_id INTEGER NOT NULL, "
        "PRIMARY KEY (run_id, address, port, protocol))"
    )
    for (run_id,) in db.query("SELECT id FROM runs ORDER BY seq"):
        groups: dict[str, FindingGroup] = {}
        located: list[tuple[PortKey, str]] = []
        for key, rows in _locations(db, str(run_id)):
            group = make_group(rows)
            groups.setdefault(group.hash, group)
            located.append((key, group.hash))
        distinct = list(groups.values())
        ids = dict(zip((g.hash for g in distinct), save_groups(db, distinct), strict=True))
        db.insert_many(
            "migration_locations",
            ("run_id", "address", "port", "protocol", "group_id"),
            ((run_id, *key, ids[h]) for key, h in located),
        )
    db.execute(
        "UPDATE run_services SET findings_group = (SELECT m.group_id FROM migration_locations m "
        "WHERE m.run_id = run_services.run_id AND m.address = run_services.address "
        "AND m.port = run_services.port AND m.protocol = run_services.protocol)"
    )
    db.execute("DROP TABLE migration_locations")


def refingerprint(db: Database) -> None:
    """Give every run the fingerprint `record` now computes (from hosts, services and groups),
    so that recording results already in the store still finds them."""
    runs = db.query(
        "SELECT id, targets, excluded, ports, started_at, ended_at, nmap_commands, "
        "incomplete_targets FROM runs"
    )
    for run_id, targets, excluded, ports, started, ended, commands, incomplete in runs:
        header = RunHeader(
            targets=tuple(json.loads(targets)),
            excluded=tuple(json.loads(excluded)),
            ports=ports,
            start=started,
            end=ended,
            nmap_commands=tuple(json.loads(commands)),
            incomplete_targets=tuple(json.loads(incomplete)),
        )
        hosts = [
            (str(a), str(s))
            for a, s in db.query(
                "SELECT address, status FROM run_hosts WHERE run_id = ?", (run_id,)
            )
        ]
        services = [
            ((str(r[0]), int(r[1]), str(r[2])), r[3], r[4], r[5], r[6])
            for r in db.query(
                "SELECT s.address, s.port, s.protocol, s.name, s.product, s.version, g.digest "
                "FROM run_services s LEFT JOIN finding_groups g ON g.id = s.findings_group "
                "WHERE s.run_id = ?",
                (run_id,),
            )
        ]
        db.execute(
            "UPDATE runs SET fingerprint = ? WHERE id = ?",
            (fingerprint(header, hosts, services), run_id),
        )
