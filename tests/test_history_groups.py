# ruff: noqa: F811 - pytest fixtures imported from tests._pg_fixture are used as arguments
"""The history's compact layout (finding groups) and the migration of stores written with
one row per finding and location (schema 1): same content, same diffs, same identities."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _flat_rows import rows_from_report

from flanscan._history import SCHEMA_VERSION, diff_reports, open_history
from flanscan._history._compact_diff import diff_compact
from flanscan._history._db import Database, connect
from flanscan._history._diff import diff_rows
from flanscan._history._groups import CompactRun, compact_from_report, finding_rows
from flanscan._history._migrations import MIGRATIONS, current_version, migrate
from flanscan._history._rows import RunRows, utc
from flanscan._history._store import target_key
from flanscan._model import FindingStatus, Location, Report, ScanSummary
from flanscan._pipeline import make_analyzer
from flanscan._report import build_report
from flanscan._suppress import load_suppressions
from flanscan._vulndb import VulnDb, import_paths
from testlab.synthetic import Port, Vuln, fleet_ports, make_report
from tests._pg_fixture import history_url, pg_server, pg_url  # noqa: F401 - fixtures
from tests.test_history_store import _scenario_pairs
from tests.test_report_equality import many_hosts

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def real_reports(tmp_path_factory: pytest.TempPathFactory, nvd_sample: Path) -> list[Report]:
    """Reports the real builder makes (shared location tuples, distribution decisions,
    suppressions on some hosts) from the real NVD sample: two runs of 600 hosts."""
    path = tmp_path_factory.mktemp("groups-db") / "vulndb.sqlite3"
    import_paths(
        path,
        [
            nvd_sample / "nvdcve-2.0-sample.json",
            nvd_sample / "known_exploited_vulnerabilities.json",
        ],
    )
    rules = tmp_path_factory.mktemp("groups-rules") / "exceptions.txt"
    reports = []
    with VulnDb.open(path) as db:
        for day, hosts in enumerate((many_hosts(600), many_hosts(540)[::-1])):
            # A host-scoped exception: some locations of a service differ from the others.
            rules.write_text(
                "suppressions:\n  - product: nginx\n    address: 198.18.1.0/24\n"
                "    reason: accepted\n    owner: ops\n"
                if day
                else "suppressions: []\n",
                encoding="utf-8",
            )
            analyze = make_analyzer(db, load_suppressions(rules), "possible")
            start = T0 + timedelta(days=day)
            reports.append(
                build_report(
                    hosts,
                    scan=ScanSummary(targets=("198.18.0.0/16", "fd00:f1a5::/64"), start=start),
                    analyze=analyze,
                    vulndb=None,
                    vulndb_note=None,
                )
            )
    return reports


def _expanded(report: Report) -> RunRows:
    """The compact form of a report, expanded back into one row per finding and location."""
    run = compact_from_report(report)
    rows = RunRows(run.run_id, run.started, run.scope, dict(run.hosts), dict(run.services))
    for key, index in run.location_group.items():
        for f in finding_rows(key, run.groups[index]):
            rows.findings[f.key] = f
    return rows


def _all_reports(real_reports: list[Report]) -> Iterable[tuple[str, Report]]:
    for name, old, new in _scenario_pairs():
        assert isinstance(old, Report) and isinstance(new, Report)
        yield f"{name} old", old
        yield f"{name} new", new
    for n, report in enumerate(real_reports):
        yield f"real {n}", report


def test_compact_form_holds_every_finding_location(real_reports: list[Report]) -> None:
    for name, report in _all_reports(real_reports):
        flat, expanded = rows_from_report(report), _expanded(report)
        assert expanded.hosts == flat.hosts, name
        assert expanded.services == flat.services, name
        assert expanded.findings == flat.findings, name
        assert expanded.open_findings() == compact_from_report(report).open_findings(), name
    # The real builder's reports: far fewer group rows than finding-locations.
    run = compact_from_report(real_reports[0])
    group_rows = sum(g.size for g in run.groups)
    assert run.finding_count() == len(rows_from_report(real_reports[0]).findings)
    assert run.finding_count() > 20 * group_rows > 0


def test_store_diff_of_real_reports(history_url: str, real_reports: list[Report]) -> None:
    old, new = real_reports
    with open_history(history_url) as store:
        old_id, new_id = store.record(old), store.record(new)
        changes = store.diff(old_id, new_id)
        assert changes == diff_rows(store.load_rows(old_id), store.load_rows(new_id))
        assert store.load_rows(new_id).findings == rows_from_report(new).findings
    assert changes.items == diff_reports(old, new).items
    kinds = {i.kind.value for i in changes.items}
    assert {"status-changed", "host-disappeared"} <= kinds


def test_groups_are_shared_and_collected(history_url: str) -> None:
    scope = ("198.18.0.0/15",)
    first = make_report(fleet_ports(300, 1500, seed=1), targets=scope, start=T0)
    second = make_report(
        fleet_ports(300, 1500, seed=2, changed=0.2), targets=scope, start=T0 + timedelta(days=1)
    )
    with open_history(history_url) as store:
        one, two = store.record(first), store.record(second)

        def count(table: str) -> int:
            return int(store.db.query(f"SELECT COUNT(*) FROM {table}")[0][0])

        # 20 product versions, 5 findings each; the upgraded hosts of the second run add
        # at most 20 groups more. Never a row per finding and location (1,500 a run).
        assert 20 <= count("finding_groups") <= 40
        assert count("group_findings") == 5 * count("finding_groups")
        shared = count("finding_groups")
        store.delete_run(two)
        assert 20 <= count("finding_groups") <= shared
        assert store.load_rows(one).findings == rows_from_report(first).findings
        store.delete_run(one)
        for table in ("runs", "run_hosts", "run_services", "finding_groups", "group_findings"):
            assert count(table) == 0, table


# --------------------------------------------------------------------------- migration 2

# Schema 1 as the former `HistoryStore.record` wrote it: one row per finding and location,
# and the fingerprint over every finding-location.
_V1_RUN_COLS = (
    "id", "seq", "started_at", "ended_at", "recorded_at", "targets", "excluded", "target_key",
    "profile", "ports", "nmap_commands", "nmap_version", "incomplete_targets", "warnings",
    "xml_files", "hosts_up", "hosts_down", "run_dir", "source", "fingerprint", "host_count",
    "open_findings", "severity_counts",
)  # fmt: skip
_V1_FINDING_COLS = (
    "run_id", "vuln_id", "address", "port", "protocol", "status", "confidence", "severity",
    "cvss", "kev", "kev_date_added", "suppression_source", "suppression_reason",
    "suppression_owner", "suppression_expires",
)  # fmt: skip


def _ts(value: datetime | None) -> str | None:
    v = utc(value)
    return v.isoformat(timespec="microseconds") if v else None


def _v1_fingerprint(report: Report, rows: RunRows) -> str:
    h = hashlib.sha256()
    scan = report.scan
    h.update(
        json.dumps(
            [
                list(scan.targets), list(scan.excluded), scan.ports, _ts(scan.start),
                _ts(scan.end), list(scan.nmap_commands), list(scan.incomplete_targets),
            ]
        ).encode()
    )  # fmt: skip
    for host in sorted(rows.hosts.values(), key=lambda r: r.address):
        h.update(f"\0h{host.address}\0{host.status}".encode())
    for svc in sorted(rows.services.values(), key=lambda r: r.key):
        h.update(f"\0s{svc.key}\0{svc.name}\0{svc.product}\0{svc.version}".encode())
    for f in sorted(rows.findings.values(), key=lambda r: r.key):
        h.update(f"\0f{f.key}\0{f.status}\0{f.kev}\0{f.severity}".encode())
    return h.hexdigest()


def _v1_record(db: Database, report: Report, run_id: str, seq: int) -> str:
    rows = rows_from_report(report)
    scan = report.scan
    fingerprint = _v1_fingerprint(report, rows)
    with db.transaction():
        found = db.query("SELECT id FROM runs WHERE fingerprint = ?", (fingerprint,))
        if found:
            return str(found[0][0])
        db.insert_many(
            "runs",
            _V1_RUN_COLS,
            [
                (
                    run_id, seq, _ts(scan.start), _ts(scan.end), _ts(datetime.now(UTC)),
                    json.dumps(list(scan.targets)), json.dumps(list(scan.excluded)),
                    target_key(scan.targets), scan.profile, scan.ports,
                    json.dumps(list(scan.nmap_commands)), scan.nmap_version,
                    json.dumps(list(scan.incomplete_targets)), json.dumps(list(scan.warnings)),
                    json.dumps(list(scan.xml_files)), scan.hosts_up, scan.hosts_down, None,
                    "import", fingerprint,
                    sum(1 for h in rows.hosts.values() if h.status == "up"),
                    rows.open_findings(), json.dumps(report.summary()),
                )
            ],
        )  # fmt: skip
        db.insert_many(
            "run_hosts",
            ("run_id", "address", "hostnames", "status", "open_ports"),
            (
                (run_id, h.address, json.dumps(list(h.hostnames)), h.status, h.open_ports)
                for h in rows.hosts.values()
            ),
        )
        db.insert_many(
            "run_services",
            ("run_id", "address", "port", "protocol", "name", "product", "version", "extrainfo",
             "cpes"),
            (
                (run_id, s.address, s.port, s.protocol, s.name, s.product, s.version,
                 s.extrainfo, " ".join(s.cpes))
                for s in rows.services.values()
            ),
        )  # fmt: skip
        db.insert_many(
            "run_findings",
            _V1_FINDING_COLS,
            (
                (run_id, f.vuln_id, f.address, f.port, f.protocol, f.status, f.confidence,
                 f.severity, f.cvss, int(f.kev), f.kev_date_added, f.suppression_source,
                 f.suppression_reason, f.suppression_owner, f.suppression_expires)
                for f in rows.findings.values()
            ),
        )  # fmt: skip
    return run_id


def test_store_of_schema_1_migrates_and_diffs_the_same(
    history_url: str, real_reports: list[Report]
) -> None:
    pairs = [(old, new) for _name, old, new in _scenario_pairs()]
    pairs.append((real_reports[0], real_reports[1]))
    db = connect(history_url)
    try:
        assert migrate(db, MIGRATIONS[:1]) == 1
        ids: list[tuple[str, str]] = []
        for n, (old, new) in enumerate(pairs):
            assert isinstance(old, Report) and isinstance(new, Report)
            ids.append(
                (
                    _v1_record(db, old, f"old-{n}", 2 * n + 1),
                    _v1_record(db, new, f"new-{n}", 2 * n + 2),
                )
            )
        # A finding at a location with no service row (a hand-made v1 record): kept.
        db.execute(
            f"INSERT INTO run_findings ({', '.join(_V1_FINDING_COLS)}) VALUES "
            "('old-0', 'CVE-2020-0001', '198.18.0.10', 9999, 'tcp', 'confirmed', 'exact', 3, "
            "5.0, 0, NULL, NULL, NULL, NULL, NULL)"
        )
    finally:
        db.close()
    with open_history(history_url) as store:
        assert current_version(store.db) == SCHEMA_VERSION
        if store.db.dialect == "sqlite":  # the dropped table's pages went back to the disk
            assert store.db.query("PRAGMA freelist_count")[0][0] == 0
        tables = store.db.query(
            "SELECT COUNT(*) FROM run_services WHERE findings_group IS NOT NULL"
        )
        assert tables[0][0] > 0
        listed = {r.id: r for r in store.runs()}
        assert len(listed) == len({i for pair in ids for i in pair})
        for n, ((old, new), (old_id, new_id)) in enumerate(zip(pairs, ids, strict=True)):
            assert isinstance(old, Report) and isinstance(new, Report)
            expected_new = rows_from_report(new)
            assert store.load_rows(new_id).findings == expected_new.findings, n
            assert listed[new_id].open_findings == expected_new.open_findings()
            changes = store.diff(old_id, new_id)
            assert changes == diff_rows(store.load_rows(old_id), store.load_rows(new_id)), n
            if old_id != "old-0":  # the run given a finding without a service below
                assert changes.items == diff_reports(old, new).items, n
            # The run fingerprints were converted: recording the same results finds them.
            assert store.recorded_id(new) == new_id
            assert store.record(new) == new_id
            if old_id != "old-0":  # it got the finding without a service below: other content
                assert store.record(old) == old_id
        # The real pair's targets are theirs alone: the new run's previous run is the old one.
        previous = store.previous_run(real_reports[1])
        assert previous is not None and previous.id == ids[-1][0]
        # The finding without a service row survived, its location given a bare row.
        kept = store.load_rows("old-0").findings[("CVE-2020-0001", "198.18.0.10", 9999, "tcp")]
        assert kept.status == FindingStatus.CONFIRMED.value and kept.cvss == 5.0
        assert store.runs() == list(listed.values())
        later = dataclasses.replace(
            pairs[0][1], scan=dataclasses.replace(pairs[0][1].scan, start=T0 + timedelta(days=9))
        )
        assert store.record(later) not in listed
    with pytest.raises(Exception, match="run_findings"):
        check = connect(history_url)
        try:
            check.query("SELECT COUNT(*) FROM run_findings")
        finally:
            check.close()


def test_recorded_runs_keep_their_identity_across_versions(history_url: str) -> None:
    """A run whose findings differ only where the fingerprint looks (status) is another run."""
    ports = [Port("198.18.0.10", 22, "tcp", "ssh", "OpenSSH", "9.2p1", (Vuln("CVE-2023-38408"),))]
    changed = [
        dataclasses.replace(
            ports[0], vulns=(Vuln("CVE-2023-38408", status=FindingStatus.FIXED_BY_DISTRIBUTION),)
        )
    ]
    with open_history(history_url) as store:
        a = store.record(make_report(ports, start=T0, run_id="a"))
        b = store.record(make_report(changed, start=T0, run_id="b"))
        assert (a, b) == ("a", "b")
        assert store.record(make_report(ports, start=T0, run_id="c")) == "a"


def test_compact_diff_is_the_diff_of_every_row(real_reports: list[Report]) -> None:
    pairs = [(name, old, new) for name, old, new in _scenario_pairs()]
    pairs.append(("real", real_reports[0], real_reports[1]))
    pairs.append(("real, reversed", real_reports[1], real_reports[0]))
    for name, old, new in pairs:
        assert isinstance(old, Report) and isinstance(new, Report)
        everything = diff_rows(rows_from_report(old), rows_from_report(new), since_run="x")
        compact = diff_compact(compact_from_report(old), compact_from_report(new), since_run="x")
        assert compact == everything, name
        assert compact.items, name


def test_changes_before_compares_the_store_with_a_report(
    history_url: str, real_reports: list[Report]
) -> None:
    old, new = real_reports
    with open_history(history_url) as store:
        old_id = store.record(old)
        stored = store.load_compact(old_id)
        assert _expanded_stored(stored) == rows_from_report(old).findings
        changes = store.changes_before(new)
        assert changes is not None and changes.since_run == old_id
        assert changes == store.diff(old_id, store.record(new))
    assert changes.items == diff_reports(old, new).items


def _expanded_stored(run: CompactRun) -> dict[object, object]:
    return {
        f.key: f
        for key, index in run.location_group.items()
        for f in finding_rows(key, run.groups[index])
    }


def test_a_finding_outside_its_services_locations_is_kept(history_url: str) -> None:
    ports = [Port("198.18.0.10", 22, "tcp", "ssh", "OpenSSH", "9.2p1", (Vuln("CVE-2023-38408"),))]
    report = make_report(ports, start=T0)
    svc = report.services[0]
    stray = Location("198.18.0.10", 2222, "tcp")
    moved = dataclasses.replace(svc.findings[0], locations=(*svc.findings[0].locations, stray))
    report = dataclasses.replace(report, services=(dataclasses.replace(svc, findings=(moved,)),))
    with open_history(history_url) as store:
        rows = store.load_rows(store.record(report))
    assert set(rows.findings) == {
        ("CVE-2023-38408", "198.18.0.10", 22, "tcp"),
        ("CVE-2023-38408", "198.18.0.10", 2222, "tcp"),
    }
    assert rows.services[("198.18.0.10", 2222, "tcp")].banner == "unknown service"
