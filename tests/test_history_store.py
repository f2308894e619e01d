# ruff: noqa: F811 - pytest fixtures imported from tests._pg_fixture are used as arguments
"""The history store against both backends: a SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from flanscan._errors import EnvironmentProblem, UsageError
from flanscan._history import (
    SCHEMA_VERSION,
    default_history_path,
    diff_reports,
    diff_runs,
    open_history,
)
from flanscan._history._db import connect
from flanscan._history._diff import diff_rows
from flanscan._history._migrations import MIGRATIONS, current_version, migrate
from flanscan._model import ChangeKind, Confidence, FindingStatus, Report
from testlab.synthetic import Port, Vuln, fleet_ports, make_report
from tests._pg_fixture import history_url, pg_server, pg_url  # noqa: F401 - fixtures

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _ports(version: str = "9.2p1") -> list[Port]:
    return [
        Port("198.18.0.10", 22, "tcp", "ssh", "OpenSSH", version,
             (Vuln("CVE-2023-38408", 9.8, kev="2024-01-02"), Vuln("CVE-2023-51385", 6.5))),
        Port("198.18.0.11", 22, "tcp", "ssh", "OpenSSH", version, (Vuln("CVE-2023-38408", 9.8),)),
        Port("198.18.0.11", 80, "tcp", "http", "nginx", "1.22.1",
             (Vuln("CVE-2023-44487", 7.5, status=FindingStatus.SUPPRESSED,
                   suppressed_until="2026-12-31"),)),
    ]  # fmt: skip


def test_record_and_read_back(history_url: str) -> None:
    report = make_report(_ports(), start=T0, run_id="20260301T120000Z")
    with open_history(history_url) as store:
        run_id = store.record(report, run_dir="/results/20260301T120000Z")
        assert run_id == "20260301T120000Z"
        ref = store.get_run(run_id)
        assert ref.started == T0
        assert ref.targets == report.scan.targets
        assert ref.ports == report.scan.ports
        assert ref.host_count == len(report.hosts)
        # Open findings per location, as the report counts them (suppressed is not open).
        assert ref.open_findings == sum(report.summary().values()) == 3
        assert ref.severity_counts == report.summary()
        assert ref.run_dir == "/results/20260301T120000Z"
        rows = store.load_rows(run_id)
    assert set(rows.services) == {(p.address, p.port, p.protocol) for p in _ports()}
    expected = {(v.cve, p.address, p.port, p.protocol) for p in _ports() for v in p.vulns}
    assert set(rows.findings) == expected
    kev = rows.findings[("CVE-2023-38408", "198.18.0.10", 22, "tcp")]
    assert kev.kev and kev.kev_date_added == "2024-01-02" and kev.cvss == 9.8
    sup = rows.findings[("CVE-2023-44487", "198.18.0.11", 80, "tcp")]
    assert sup.status == "suppressed" and sup.suppression_expires == "2026-12-31"


def test_same_results_recorded_once_and_ids_unique(history_url: str) -> None:
    report = make_report(_ports(), start=T0, run_id="r1")
    other = make_report(_ports("9.6p1"), start=T0 + timedelta(days=1), run_id="r1")
    with open_history(history_url) as store:
        first = store.record(report)
        assert store.record(report) == first  # e.g. `flan history import` of a recorded run
        second = store.record(other)
        assert second == "r1-2"
        assert [r.id for r in store.runs()] == [second, first]
        assert len(store.runs(limit=1)) == 1


def test_run_id_from_run_dir_else_start_time(history_url: str) -> None:
    with open_history(history_url) as store:
        assert store.record(make_report(_ports(), start=T0)) == "20260301T120000Z"
        later = make_report(_ports("9.6p1"), start=T0 + timedelta(hours=1))
        assert store.record(later, run_dir="/x/flan-results/20260301T130002Z") == "20260301T130002Z"


def test_previous_run_same_targets_earlier(history_url: str) -> None:
    a1 = make_report(_ports(), start=T0, targets=("198.18.0.0/24",))
    b = make_report(_ports()[:1], start=T0 + timedelta(hours=1), targets=("198.18.0.10",))
    a2 = make_report(_ports("9.3p1"), start=T0 + timedelta(hours=2), targets=("198.18.0.0/24",))
    a3 = make_report(_ports("9.6p1"), start=T0 + timedelta(hours=3), targets=("198.18.0.0/24",))
    with open_history(history_url) as store:
        assert store.previous_run(a1) is None
        id_a1, _id_b, id_a2 = store.record(a1), store.record(b), store.record(a2)
        prev = store.previous_run(a3)
        assert prev is not None and prev.id == id_a2
        # Recorded already (the pipeline may ask after recording): still the earlier one.
        id_a3 = store.record(a3)
        prev = store.previous_run(a3)
        assert prev is not None and prev.id == id_a2
        prev = store.previous_run(a2)
        assert prev is not None and prev.id == id_a1
        latest = store.previous_run(["198.18.0.0/24"])
        assert latest is not None and latest.id == id_a3
        assert store.previous_run(["198.18.0.99"]) is None


def test_diff_runs_matches_diff_reports(history_url: str) -> None:
    old = make_report(_ports(), start=T0)
    new_ports = _ports("9.6p1")
    new_ports[0] = dataclasses.replace(new_ports[0], vulns=())
    new_ports[1] = dataclasses.replace(new_ports[1], vulns=())
    new = make_report(new_ports, start=T0 + timedelta(days=7))
    with open_history(history_url) as store:
        old_id, new_id = store.record(old), store.record(new)
        from_store = diff_runs(store, old_id, new_id)
    direct = diff_reports(old, new)
    assert from_store.items == direct.items
    assert from_store.since == T0 and from_store.since_run == old_id
    kinds = sorted(i.kind.value for i in from_store.items)
    assert kinds == sorted(["fixed-finding"] * 3 + ["version-changed"] * 2)


def test_unknown_run_is_a_usage_error(history_url: str) -> None:
    with open_history(history_url) as store, pytest.raises(UsageError, match="flan history"):
        store.get_run("nope")


def test_delete_run(history_url: str) -> None:
    with open_history(history_url) as store:
        run_id = store.record(make_report(_ports(), start=T0))
        store.delete_run(run_id)
        assert store.runs() == []
        for table in ("run_services", "finding_groups", "group_findings"):
            assert store.db.query(f"SELECT COUNT(*) FROM {table}")[0][0] == 0


def test_schema_created_and_migrated_in_order(history_url: str) -> None:
    db = connect(history_url)
    try:
        assert migrate(db) == SCHEMA_VERSION
        assert current_version(db) == SCHEMA_VERSION
        assert migrate(db) == SCHEMA_VERSION  # idempotent
        extra = [*MIGRATIONS, ["CREATE TABLE later_table (x INTEGER)"], ["DROP TABLE later_table"]]
        assert migrate(db, extra) == SCHEMA_VERSION + 2
        assert current_version(db) == SCHEMA_VERSION + 2
        assert db.query("SELECT COUNT(*) FROM schema_version")[0][0] == 1
    finally:
        db.close()
    with pytest.raises(EnvironmentProblem, match="newer than this flan"):
        open_history(history_url)


def test_missing_history_is_reported_not_created(tmp_path: Path) -> None:
    path = tmp_path / "flan-results" / "history.sqlite3"
    with pytest.raises(UsageError, match="no history at"):
        open_history(path, create=False)
    assert not path.exists()
    assert default_history_path().parent.parent == Path(os.environ["XDG_DATA_HOME"])


def test_sqlite_file_is_a_plain_sqlite_database(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite3"
    with open_history(f"sqlite:///{path}") as store:
        store.record(make_report(_ports(), start=T0))
    conn = sqlite3.connect(path)
    targets = conn.execute("SELECT targets FROM runs").fetchone()[0]
    assert json.loads(targets) == ["198.18.0.0/24"]


def test_unreachable_postgres_names_url_without_password(pg_server: object) -> None:
    from tests._pg_fixture import _free_port

    url = f"postgresql://flan:s3cret-pw@127.0.0.1:{_free_port()}/flan"
    with pytest.raises(EnvironmentProblem) as info:
        open_history(url)
    assert "s3cret-pw" not in str(info.value)
    assert "flan:***@127.0.0.1" in str(info.value)


def test_unsupported_scheme(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentProblem, match="postgresql://"):
        open_history("mysql://localhost/flan")


def test_change_kinds_cover_store_items(history_url: str) -> None:
    """A port closed and a host gone, through the store: nothing is lost in the round trip."""
    old = make_report(_ports(), start=T0, extra_hosts=["198.18.0.12"])
    new = make_report(_ports()[:2], start=T0 + timedelta(days=1))
    with open_history(history_url) as store:
        changes = diff_runs(store, store.record(old), store.record(new))
    kinds = {i.kind for i in changes.items}
    assert kinds == {ChangeKind.CLOSED_PORT, ChangeKind.FIXED_FINDING, ChangeKind.HOST_DISAPPEARED}


def _scenario_pairs() -> list[tuple[str, object, object]]:
    """Old/new report pairs covering every kind of change and of "not checked"."""
    web, ssh, gone, down = "198.18.0.10", "198.18.0.11", "198.18.0.12", "198.18.0.13"
    cve_a, cve_b = Vuln("CVE-2023-38408", 9.8), Vuln("CVE-2023-51385", 6.5)
    old_ports = [
        Port(ssh, 22, "tcp", "ssh", "OpenSSH", "9.2p1", (cve_a, cve_b)),
        Port(web, 80, "tcp", "http", "nginx", "1.22.1", (Vuln("CVE-2023-44487", 7.5),)),
        Port(web, 8080, "tcp", "http", "nginx", "1.22.1", (Vuln("CVE-2023-44487", 7.5),)),
        Port(gone, 22, "tcp", "ssh", "OpenSSH", "8.4p1", (cve_a,)),
        Port(down, 21, "tcp", "ftp", "vsftpd", "3.0.3", (Vuln("CVE-2021-3618", 7.4),)),
        Port(web, 3306, "tcp", "mysql", None, None,
             (Vuln("CVE-2012-2122", 5.1, confidence=Confidence.PRODUCT_ONLY),)),
    ]  # fmt: skip
    new_ports = [
        Port(ssh, 22, "tcp", "ssh", "OpenSSH", "9.2p1",
             (Vuln("CVE-2023-38408", 9.8, kev="2024-01-02"),
              Vuln("CVE-2023-51385", 6.5, status=FindingStatus.SUPPRESSED,
                   suppressed_until="2027-01-01"))),
        Port(web, 80, "tcp", "http", "nginx", "1.26.0", (Vuln("CVE-2024-7347", 4.7),)),
        Port(web, 443, "tcp", "https", "nginx", "1.26.0", (Vuln("CVE-2024-7347", 4.7),)),
        Port(down, 21, "tcp", "ftp", "vsftpd", "3.0.3",
             (Vuln("CVE-2021-3618", 8.1, status=FindingStatus.FIXED_BY_DISTRIBUTION),)),
    ]  # fmt: skip
    scope = ("198.18.0.0/24",)
    pairs: list[tuple[str, object, object]] = [
        (
            "changes",
            make_report(old_ports, targets=scope, start=T0),
            make_report(
                new_ports,
                targets=scope,
                start=T0 + timedelta(days=1),
                down_hosts=[gone],
                extra_hosts=["198.18.0.14"],
            ),
        ),
        (
            "not checked",
            make_report(old_ports, targets=scope, start=T0),
            make_report(
                new_ports,
                targets=("198.18.0.10", "198.18.0.11", "198.18.0.13"),
                ports_scope="1-1000",
                incomplete=("198.18.0.13",),
                start=T0 + timedelta(days=1),
            ),
        ),
        (
            "fleet",
            make_report(fleet_ports(400, 2000, seed=1), targets=scope, start=T0),
            make_report(
                fleet_ports(400, 2000, seed=2, changed=0.3),
                targets=scope,
                start=T0 + timedelta(days=1),
            ),
        ),
    ]
    return pairs


def test_database_diff_equals_the_diff_of_every_row(history_url: str) -> None:
    # The store compares findings in SQL and reads back only those that differ: the result
    # must be what the diff of every recorded row gives.
    seen_kinds: set[ChangeKind] = set()
    with open_history(history_url) as store:
        for name, old, new in _scenario_pairs():
            assert isinstance(old, Report) and isinstance(new, Report)
            old_id, new_id = store.record(old), store.record(new)
            everything = diff_rows(store.load_rows(old_id), store.load_rows(new_id))
            changes = store.diff(old_id, new_id)
            assert changes == everything, name
            assert changes.items == diff_reports(old, new).items, name
            seen_kinds.update(i.kind for i in changes.items)
    assert seen_kinds == set(ChangeKind)
