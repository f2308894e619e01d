"""The history store: record runs, list them, find the previous run of the same targets, and
load a run back as rows for the diff."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from sys import intern
from typing import Any

from flanscan._errors import UsageError
from flanscan._gcpause import gc_paused
from flanscan._history._compact_diff import diff_compact
from flanscan._history._db import Database, connect, is_postgres_url
from flanscan._history._diff import OldFindingCounts, diff_rows
from flanscan._history._groups import (
    CompactRun,
    FindingGroup,
    GroupRow,
    RunHeader,
    compact_from_report,
    group_row,
    run_fingerprint,
    save_groups,
)
from flanscan._history._migrations import migrate
from flanscan._history._rows import (
    FindingRow,
    HostRow,
    RunRows,
    RunScope,
    ServiceRow,
    utc,
)
from flanscan._model import ChangeSummary, Report, Severity

HISTORY_FILE_NAME = "history.sqlite3"

_HOST_COLS = ("run_id", "address", "hostnames", "status", "open_ports")
_SERVICE_COLS = (
    "run_id", "address", "port", "protocol", "name", "product", "version", "extrainfo", "cpes",
    "findings_group",
)  # fmt: skip
# A finding as FindingRow orders its fields; `g` is group_findings, `s` the location's row.
_FINDING_SELECT = (
    "g.vuln_id, s.address, s.port, s.protocol, g.status, g.confidence, g.severity, g.cvss, "
    "g.kev, g.kev_date_added, g.suppression_source, g.suppression_reason, "
    "g.suppression_owner, g.suppression_expires"
)
# A group's finding in GroupRow order (`_groups.group_row`).
_GROUP_ROW_SELECT = (
    "g.vuln_id, g.status, g.confidence, g.severity, g.cvss, g.kev, g.kev_date_added, "
    "g.suppression_source, g.suppression_reason, g.suppression_owner, g.suppression_expires"
)
_RUN_COLS = (
    "id", "seq", "started_at", "ended_at", "recorded_at", "targets", "excluded", "target_key",
    "profile", "ports", "nmap_commands", "nmap_version", "incomplete_targets", "warnings",
    "xml_files", "hosts_up", "hosts_down", "vulndb_path", "vulndb_cve_count", "vulndb_sources",
    "vulndb_built_at", "vulndb_note", "run_dir", "source", "fingerprint", "host_count",
    "open_findings", "severity_counts",
)  # fmt: skip
_REF_COLS = (
    "id", "started_at", "ended_at", "recorded_at", "targets", "excluded", "profile", "ports",
    "host_count", "open_findings", "severity_counts", "run_dir", "source",
    "incomplete_targets", "nmap_commands",
)  # fmt: skip

# Findings of run A (parameters: run B, run A) that run B lacks or holds with another status,
# KEV flag, severity or confidence: the only findings that can make a change item. A location
# whose group is the same in both runs cannot differ and is never expanded; the others are
# joined finding by finding. IS DISTINCT FROM is null-safe in SQLite (3.39+) and PostgreSQL.
_CHANGED_FINDINGS = (
    f"SELECT {_FINDING_SELECT} FROM run_services s "
    "LEFT JOIN run_services b ON b.run_id = ? AND b.address = s.address "
    "AND b.port = s.port AND b.protocol = s.protocol "
    "JOIN group_findings g ON g.group_id = s.findings_group "
    "LEFT JOIN group_findings h ON h.group_id = b.findings_group AND h.vuln_id = g.vuln_id "
    "WHERE s.run_id = ? AND s.findings_group IS NOT NULL "
    "AND (b.findings_group IS NULL OR b.findings_group <> s.findings_group) "
    "AND (h.group_id IS NULL OR g.status IS DISTINCT FROM h.status "
    "OR g.kev IS DISTINCT FROM h.kev OR g.severity IS DISTINCT FROM h.severity "
    "OR g.confidence IS DISTINCT FROM h.confidence)"
)
# The same for the old run, without the locations of hosts that went away (up in the old run,
# not up in the new one, the location not in it): the host's item sums them up (`diff_rows`),
# and a fleet's hosts that went away hold many findings. Parameters: new run, old run, new run.
_CHANGED_OLD_FINDINGS = (
    f"{_CHANGED_FINDINGS} AND NOT (b.run_id IS NULL "
    "AND EXISTS (SELECT 1 FROM run_hosts o WHERE o.run_id = s.run_id "
    "AND o.address = s.address AND o.status = 'up') "
    "AND NOT EXISTS (SELECT 1 FROM run_hosts n WHERE n.run_id = ? "
    "AND n.address = s.address AND n.status = 'up'))"
)
# Old findings per port, for the ports the new run does not list (closed or not checked).
_OLD_FINDINGS_ON_GONE_PORTS = (
    "SELECT s.address, s.port, s.protocol, g.findings FROM run_services s "
    "JOIN finding_groups g ON g.id = s.findings_group WHERE s.run_id = ? "
    "AND NOT EXISTS (SELECT 1 FROM run_services n WHERE n.run_id = ? AND n.address = s.address "
    "AND n.port = s.port AND n.protocol = s.protocol)"
)
# Old open exact findings per host, for the hosts not up in the new run (gone or not checked).
_OLD_OPEN_ON_HOSTS_NOT_UP = (
    "SELECT s.address, SUM(g.open_exact) FROM run_services s "
    "JOIN finding_groups g ON g.id = s.findings_group WHERE s.run_id = ? AND g.open_exact > 0 "
    "AND NOT EXISTS (SELECT 1 FROM run_hosts h WHERE h.run_id = ? AND h.address = s.address "
    "AND h.status = 'up') GROUP BY s.address"
)
# Groups no run points at any more (after a run is deleted).
_UNUSED_GROUPS = (
    "SELECT id FROM finding_groups WHERE id NOT IN "
    "(SELECT findings_group FROM run_services WHERE findings_group IS NOT NULL)"
)


ENV_HISTORY = "FLAN_HISTORY"


def default_history_path() -> Path:
    """The default SQLite history: `history.sqlite3` in the user's data directory (XDG:
    `$XDG_DATA_HOME/flanscan/`, else `~/.local/share/flanscan/`), whatever the working
    directory or --output-dir: every command finds the same runs."""
    import platformdirs

    return Path(platformdirs.user_data_dir("flanscan")) / HISTORY_FILE_NAME


def default_history() -> str:
    """The history every command uses without --history: `$FLAN_HISTORY` (a path or a
    postgresql:// URL) if set, else `default_history_path()`."""
    return os.environ.get(ENV_HISTORY) or str(default_history_path())


@dataclass(frozen=True)
class RunRef:
    """One recorded run, as `flan history` lists it."""

    id: str
    started: datetime | None
    ended: datetime | None
    recorded: datetime
    targets: tuple[str, ...]
    excluded: tuple[str, ...]
    profile: str | None
    ports: str | None
    host_count: int
    open_findings: int
    severity_counts: dict[str, int]
    run_dir: str | None
    source: str  # "scan" | "import"
    incomplete_targets: tuple[str, ...] = ()
    nmap_commands: tuple[str, ...] = ()


def _ts(value: datetime | None) -> str | None:
    v = utc(value)
    return v.isoformat(timespec="microseconds") if v else None


def _parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def target_key(targets: Iterable[str]) -> str:
    """Order-insensitive identity of a target list ("the same targets")."""
    return json.dumps(sorted({t.strip() for t in targets if t.strip()}))


def _header(report: Report) -> RunHeader:
    scan = report.scan
    return RunHeader(
        targets=tuple(scan.targets),
        excluded=tuple(scan.excluded),
        ports=scan.ports,
        start=_ts(scan.start),
        end=_ts(scan.end),
        nmap_commands=tuple(scan.nmap_commands),
        incomplete_targets=tuple(scan.incomplete_targets),
    )


def _fingerprint(report: Report, run: CompactRun) -> str:
    """Identity of a scan's content: recording the same results twice gives the same run."""
    return run_fingerprint(_header(report), run)


def _run_id_base(report: Report, run_dir: str | None, now: datetime) -> str:
    if report.scan.run_id:
        return report.scan.run_id
    if run_dir and Path(run_dir).name:
        return Path(run_dir).name  # the result directory's timestamp name
    start = utc(report.scan.start) or now
    return start.strftime("%Y%m%dT%H%M%SZ")


class HistoryStore:
    """Every recorded run with its hosts, services and findings, in SQLite or PostgreSQL."""

    def __init__(self, db: Database) -> None:
        self.db = db
        migrate(db)

    @property
    def location(self) -> str:
        return self.db.location

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writing

    def record(
        self,
        report: Report,
        *,
        run_dir: str | None = None,
        source: str = "scan",
        compact: CompactRun | None = None,
    ) -> str:
        """Record a run and return its id (the report's run id, else the name of `run_dir`, else
        the start time); the same results recorded again return the first id. `compact`: the
        report already in store form (`compact_from_report`), to convert a large report once.

        Rows go in as streams (executemany / COPY): one per host and per location, and the
        findings of each finding group the store does not hold yet."""
        # A fleet's report is millions of objects in memory: no collection walks them for the
        # rows made here.
        with gc_paused():
            return self._record(report, run_dir, source, compact)

    def _record(
        self, report: Report, run_dir: str | None, source: str, compact: CompactRun | None
    ) -> str:
        run = compact if compact is not None else compact_from_report(report)
        fingerprint = _fingerprint(report, run)
        now = datetime.now(UTC)
        scan = report.scan
        counts = report.summary()
        with self.db.transaction():
            existing = self.db.query("SELECT id FROM runs WHERE fingerprint = ?", (fingerprint,))
            if existing:
                return str(existing[0][0])
            base = _run_id_base(report, run_dir, now)
            taken = {
                r[0]
                for r in self.db.query(
                    "SELECT id FROM runs WHERE id = ? OR id LIKE ?", (base, base + "-%")
                )
            }
            run_id, n = base, 1
            while run_id in taken:
                n += 1
                run_id = f"{base}-{n}"
            seq = int(self.db.query("SELECT COALESCE(MAX(seq), 0) FROM runs")[0][0]) + 1
            vdb = report.vulndb
            up = [h for h in run.hosts.values() if h.status == "up"]
            self.db.insert_many(
                "runs",
                _RUN_COLS,
                [
                    (
                        run_id, seq, _ts(scan.start), _ts(scan.end), _ts(now),
                        json.dumps(list(scan.targets)), json.dumps(list(scan.excluded)),
                        target_key(scan.targets), scan.profile, scan.ports,
                        json.dumps(list(scan.nmap_commands)), scan.nmap_version,
                        json.dumps(list(scan.incomplete_targets)),
                        json.dumps(list(scan.warnings)), json.dumps(list(scan.xml_files)),
                        scan.hosts_up, scan.hosts_down,
                        vdb.path if vdb else None, vdb.cve_count if vdb else None,
                        json.dumps([list(s) for s in vdb.sources]) if vdb else None,
                        vdb.built_at if vdb else None, report.vulndb_note,
                        run_dir, source, fingerprint, len(up), run.open_findings(),
                        json.dumps(counts),
                    )
                ],
            )  # fmt: skip
            self.db.insert_many(
                "run_hosts",
                _HOST_COLS,
                (
                    (run_id, h.address, json.dumps(list(h.hostnames)), h.status, h.open_ports)
                    for h in run.hosts.values()
                ),
            )
            group_ids = save_groups(self.db, run.groups)
            located = run.location_group
            self.db.insert_many(
                "run_services",
                _SERVICE_COLS,
                (
                    (
                        run_id, s.address, s.port, s.protocol, s.name, s.product, s.version,
                        s.extrainfo, " ".join(s.cpes),
                        group_ids[located[key]] if key in located else None,
                    )
                    for key, s in run.services.items()
                ),
            )  # fmt: skip
        return run_id

    def recorded_id(self, report: Report, *, compact: CompactRun | None = None) -> str | None:
        """The id under which these exact results were already recorded, if any; `compact` as
        for `record`."""
        fingerprint = _fingerprint(report, compact or compact_from_report(report))
        found = self.db.query("SELECT id FROM runs WHERE fingerprint = ?", (fingerprint,))
        return str(found[0][0]) if found else None

    def delete_run(self, run_id: str) -> None:
        """Forget a run and everything recorded with it."""
        self.get_run(run_id)
        with self.db.transaction():
            for table in ("run_services", "run_hosts"):
                self.db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            self.db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            # Groups are shared between runs: those no other run uses go too.
            for table, column in (("group_findings", "group_id"), ("finding_groups", "id")):
                self.db.execute(f"DELETE FROM {table} WHERE {column} IN ({_UNUSED_GROUPS})")

    # ------------------------------------------------------------------ reading

    def _refs(
        self, where: str = "", params: Sequence[Any] = (), limit: int | None = None
    ) -> list[RunRef]:
        sql = f"SELECT {', '.join(_REF_COLS)} FROM runs {where} "
        sql += "ORDER BY COALESCE(started_at, recorded_at) DESC, seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_ref_from_row(r) for r in self.db.query(sql, params)]

    def runs(self, limit: int | None = None) -> list[RunRef]:
        """Recorded runs, newest first."""
        return self._refs(limit=limit)

    def has_run(self, run_id: str) -> bool:
        return bool(self.db.query("SELECT 1 FROM runs WHERE id = ?", (run_id,)))

    def get_run(self, run_id: str) -> RunRef:
        """The run with this id; UsageError naming the store when there is none."""
        refs = self._refs("WHERE id = ?", (run_id,))
        if not refs:
            raise UsageError(
                f"no run {run_id!r} in history {self.location}: `flan history` lists the runs"
            )
        return refs[0]

    def previous_run(
        self, report_or_targets: Report | Sequence[str], *, compact: CompactRun | None = None
    ) -> RunRef | None:
        """The latest run of the same targets recorded before this report (or, for a target
        list, the latest run of those targets); `compact` as for `record`."""
        if isinstance(report_or_targets, Report):
            report = report_or_targets
            params: list[Any] = [target_key(report.scan.targets)]
            where = "WHERE target_key = ? AND fingerprint <> ?"
            params.append(_fingerprint(report, compact or compact_from_report(report)))
            if report.scan.start is not None:
                # Same start (e.g. shards of one scan) counts as earlier: the fingerprint
                # already excludes the report itself.
                where += " AND started_at <= ?"
                params.append(_ts(report.scan.start))
            refs = self._refs(where, params, limit=1)
        else:
            refs = self._refs("WHERE target_key = ?", (target_key(report_or_targets),), limit=1)
        return refs[0] if refs else None

    def changes_before(self, report: Report) -> ChangeSummary | None:
        """What changed since the latest run of the same targets that started before this
        report's scan (a rebuilt report: the run itself may be recorded, and is not compared
        with itself); None when there is none. Nothing is recorded."""
        if report.scan.start is None:
            return None
        refs = self._refs(
            "WHERE target_key = ? AND started_at < ?",
            (target_key(report.scan.targets), _ts(report.scan.start)),
            limit=1,
        )
        if not refs:
            return None
        return diff_compact(
            self.load_compact(refs[0].id), compact_from_report(report), since_run=refs[0].id
        )

    def diff(self, old_id: str, new_id: str) -> ChangeSummary:
        """What changed from recorded run `old_id` to recorded run `new_id`, the database
        comparing the findings: only those that differ, and the counts the diff needs, are
        read back (a fleet's runs hold millions of findings, nearly all unchanged)."""
        old = self.load_rows(old_id, with_findings=False)
        new = self.load_rows(new_id, with_findings=False)
        with gc_paused():  # a fleet's changes are a million small acyclic objects
            for sql, params, rows in (
                (_CHANGED_OLD_FINDINGS, (new_id, old_id, new_id), old),
                (_CHANGED_FINDINGS, (old_id, new_id), new),
            ):
                findings = rows.findings
                for r in self.db.stream(sql, params):
                    f = _finding_row(r)
                    findings.setdefault(f.key, f)
        by_port = {
            (r[0], int(r[1]), r[2]): int(r[3])
            for r in self.db.query(_OLD_FINDINGS_ON_GONE_PORTS, (old_id, new_id))
        }
        open_by_host = {
            r[0]: int(r[1]) for r in self.db.query(_OLD_OPEN_ON_HOSTS_NOT_UP, (old_id, new_id))
        }
        with gc_paused():
            return diff_rows(old, new, old_counts=OldFindingCounts(by_port, open_by_host))

    def load_compact(self, run_id: str) -> CompactRun:
        """A recorded run in its compact form: hosts, services, and each distinct finding group
        once (what `diff_compact` compares with a report without expanding equal groups)."""
        rows = self.load_rows(run_id, with_findings=False)
        run = CompactRun(rows.run_id, rows.started, rows.scope, rows.hosts, rows.services)
        located = self.db.query(
            "SELECT address, port, protocol, findings_group FROM run_services "
            "WHERE run_id = ? AND findings_group IS NOT NULL",
            (run_id,),
        )
        heads = {
            int(r[0]): r[1:]
            for r in self.db.query(
                "SELECT g.id, g.hash, g.digest, g.open_exact FROM finding_groups g WHERE g.id IN "
                "(SELECT findings_group FROM run_services WHERE run_id = ?)",
                (run_id,),
            )
        }
        members: dict[int, list[GroupRow]] = {gid: [] for gid in heads}
        for r in self.db.query(
            f"SELECT g.group_id, {_GROUP_ROW_SELECT} FROM group_findings g WHERE g.group_id IN "
            "(SELECT findings_group FROM run_services WHERE run_id = ?)",
            (run_id,),
        ):
            members[int(r[0])].append(group_row(r[1:]))
        index: dict[int, int] = {}
        for gid, (content_hash, digest, open_exact) in heads.items():
            index[gid] = len(run.groups)
            ordered = tuple(sorted(members[gid], key=lambda g: g[0]))  # as make_group orders
            run.groups.append(
                FindingGroup(ordered, str(content_hash), str(digest), int(open_exact))
            )
        for address, port, protocol, gid in located:
            run.location_group[(address, int(port), protocol)] = index[int(gid)]
        return run

    def load_rows(self, run_id: str, *, with_findings: bool = True) -> RunRows:
        """A recorded run flattened for the diff (its findings too unless told not to)."""
        ref = self.get_run(run_id)
        rows = RunRows(
            run_id=ref.id,
            started=ref.started,
            scope=RunScope(
                targets=ref.targets,
                excluded=ref.excluded,
                ports=ref.ports,
                incomplete_targets=ref.incomplete_targets,
                nmap_commands=ref.nmap_commands,
            ),
        )
        # A fleet's hosts and services repeat a few texts (status, names, banners, CPEs) a
        # hundred thousand times: each distinct one is held once.
        names_of: dict[str, tuple[str, ...]] = {}
        for addr, names, status, open_ports in self.db.stream(
            "SELECT address, hostnames, status, open_ports FROM run_hosts WHERE run_id = ?",
            (run_id,),
        ):
            hostnames = names_of.get(names)
            if hostnames is None:
                hostnames = names_of[names] = tuple(json.loads(names)) if names != "[]" else ()
            rows.hosts[addr] = HostRow(addr, hostnames, intern(status), int(open_ports))
        cpes_of: dict[str, tuple[str, ...]] = {}
        for r in self.db.stream(
            f"SELECT {', '.join(_SERVICE_COLS[1:-1])} FROM run_services WHERE run_id = ?",
            (run_id,),
        ):
            cpes = cpes_of.get(r[7])
            if cpes is None:
                cpes = cpes_of[r[7]] = tuple(r[7].split())
            address = rows.hosts[r[0]].address if r[0] in rows.hosts else r[0]
            svc = ServiceRow(
                address, int(r[1]), intern(r[2]), _interned(r[3]), _interned(r[4]),
                _interned(r[5]), _interned(r[6]), cpes,
            )  # fmt: skip
            rows.services[svc.key] = svc
        if not with_findings:
            return rows
        for r in self.db.query(
            f"SELECT {_FINDING_SELECT} FROM run_services s "
            "JOIN group_findings g ON g.group_id = s.findings_group WHERE s.run_id = ?",
            (run_id,),
        ):
            f = _finding_row(r)
            rows.findings[f.key] = f
        return rows


def _finding_row(r: Sequence[Any]) -> FindingRow:
    """A FindingRow from the columns of _FINDING_SELECT in order. The texts repeated across
    rows are interned: a fleet's diff holds a million rows of a few thousand CVEs and hosts."""
    return FindingRow(
        intern(r[0]), intern(r[1]), int(r[2]), intern(r[3]), intern(r[4]), intern(r[5]),
        int(r[6]), float(r[7]) if r[7] is not None else None, bool(r[8]), *r[9:],
    )  # fmt: skip


def _interned(text: str | None) -> str | None:
    return None if text is None else intern(text)


def _ref_from_row(r: Sequence[Any]) -> RunRef:
    started = _parse_ts(r[1])
    recorded = _parse_ts(r[3])
    assert recorded is not None
    return RunRef(
        id=r[0],
        started=started,
        ended=_parse_ts(r[2]),
        recorded=recorded,
        targets=tuple(json.loads(r[4])),
        excluded=tuple(json.loads(r[5])),
        profile=r[6],
        ports=r[7],
        host_count=int(r[8]),
        open_findings=int(r[9]),
        severity_counts=dict(json.loads(r[10])),
        run_dir=r[11],
        source=r[12],
        incomplete_targets=tuple(json.loads(r[13])),
        nmap_commands=tuple(json.loads(r[14])),
    )


def open_history(url_or_path: str | Path, *, create: bool = True) -> HistoryStore:
    """Open (and create or migrate) the history at a file path or a `postgresql://` URL."""
    text = str(url_or_path)
    if not create and not is_postgres_url(text):
        path = Path(text[len("sqlite://") :] if text.startswith("sqlite:///") else text)
        if not path.exists():
            raise UsageError(
                f"no history at {path}: run `flan scan` first, or pass --history with the "
                "file or postgresql:// URL of an existing history"
            )
    return HistoryStore(connect(text))


def diff_runs(store: HistoryStore, old_id: str, new_id: str) -> ChangeSummary:
    """What changed from recorded run `old_id` to recorded run `new_id` (`HistoryStore.diff`)."""
    return store.diff(old_id, new_id)


def run_open_severities(ref: RunRef) -> str:
    """ "2 critical, 5 high" style summary of a run's open findings."""
    parts = [
        f"{ref.severity_counts.get(s.label, 0)} {s.label}"
        for s in sorted(Severity, reverse=True)
        if ref.severity_counts.get(s.label, 0)
    ]
    return ", ".join(parts) or "none"
