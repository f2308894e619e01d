# ruff: noqa: F811 - pytest fixtures imported from tests._pg_fixture are used as arguments
"""Diff semantics on real scans of the lab, made before and after changing it: a daemon
stopped, another started, a version string upgraded. The diff must say exactly that."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from flanscan._history import diff_reports, diff_runs, open_history
from flanscan._model import (
    ChangeKind,
    CvssScore,
    Finding,
    HostObservation,
    Report,
    ServiceObservation,
    Vulnerability,
)
from flanscan._pipeline import report_from_files
from testlab import Lab
from tests._pg_fixture import pg_server, pg_url  # noqa: F401 - fixtures

OLD_BANNER = "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.1\r\n"
NEW_BANNER = "SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n"
BANNER_PORT = 2222


def lab_vuln_id(service: ServiceObservation) -> str:
    """A stand-in vulnerability per detected product+version (real matching is tested
    elsewhere): a version change must make the old one fixed and the new one new."""
    digest = hashlib.sha256(f"{service.product}|{service.version}".encode()).hexdigest()[:8]
    return f"LAB-{digest}"


def analyze(host: HostObservation, service: ServiceObservation) -> Sequence[Finding]:
    if not service.product:
        return []
    vuln = Vulnerability(id=lab_vuln_id(service), cvss=CvssScore(8.1, "3.1"))
    return [Finding(vuln)]


def scan(lab: Lab, out: Path, targets: Sequence[str], ports: Sequence[int]) -> Report:
    argv = ["nmap", "-sS", "-sV", "-n", "-p", ",".join(map(str, ports)), "-oX", str(out), *targets]
    result = lab.exec(argv, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return report_from_files([out], analyze=analyze)


def _service(report: Report, address: str, port: int) -> str:
    for svc in report.services:
        if any((loc.address, loc.port) == (address, port) for loc in svc.locations):
            return " ".join(p for p in (svc.product, svc.version) if p)
    raise AssertionError(f"{address}:{port} not in report")


def _vuln_at(report: Report, address: str, port: int) -> str:
    ids = {
        sf.finding.id
        for svc in report.services
        for sf in svc.findings
        for loc in sf.locations
        if (loc.address, loc.port) == (address, port)
    }
    assert len(ids) == 1, ids
    return ids.pop()


@dataclass(frozen=True)
class LabRuns:
    before: Report
    after: Report
    narrow: Report
    db: str
    files: str
    banner: str
    ssh1: str
    tmp: Path


@pytest.fixture(scope="module", name="runs")
def lab_runs(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> LabRuns:
    """Three real scans: before, after (redis stopped, memcached started, banner upgraded),
    and a narrower one (fewer hosts and ports). The lab is restored afterwards."""
    tmp = tmp_path_factory.mktemp("lab-diff")
    db, files = lab.host("db"), lab.host("files")
    ssh1 = lab.host("ssh1")
    try:
        lab.stop_service("files", "memcached")
        banner = lab.set_banner_host(OLD_BANNER, port=BANNER_PORT)
        targets = [*lab.targets, banner.ipv4]
        ports = sorted({s.port for h in lab.hosts for s in h.services} | {BANNER_PORT})
        before = scan(lab, tmp / "before.xml", targets, ports)

        lab.stop_service("db", "redis")
        lab.start_service("files", "memcached")
        lab.set_banner_host(NEW_BANNER, port=BANNER_PORT)
        after = scan(lab, tmp / "after.xml", targets, ports)

        narrow_ports = [21, 22, BANNER_PORT, 11211]
        narrow = scan(lab, tmp / "narrow.xml", [ssh1.ipv4, files.ipv4, banner.ipv4], narrow_ports)
    finally:
        lab.start_service("db", "redis")
        lab.start_service("files", "memcached")
        lab.clear_banner_host()
    return LabRuns(before, after, narrow, db.ipv4, files.ipv4, banner.ipv4, ssh1.ipv4, tmp)


def test_lab_diff_says_exactly_what_changed(runs: LabRuns) -> None:
    before, after = runs.before, runs.after
    db, files, banner = runs.db, runs.files, runs.banner
    # What the scans saw (derived from the real scans, checked against the lab change).
    assert "8.9p1" in _service(before, banner, BANNER_PORT)
    assert "9.6p1" in _service(after, banner, BANNER_PORT)
    redis_vuln = _vuln_at(before, db, 6379)
    memcached_vuln = _vuln_at(after, files, 11211)
    old_ssh, new_ssh = _vuln_at(before, banner, BANNER_PORT), _vuln_at(after, banner, BANNER_PORT)

    changes = diff_reports(before, after)
    got = sorted(
        (i.kind.value, i.location.address if i.location else i.address,
         i.location.port if i.location else None, i.vuln_id)
        for i in changes.items
    )  # fmt: skip
    assert got == sorted(
        [
            ("closed-port", db, 6379, None),
            ("fixed-finding", db, 6379, redis_vuln),
            ("new-port", files, 11211, None),
            ("new-finding", files, 11211, memcached_vuln),
            ("version-changed", banner, BANNER_PORT, None),
            ("fixed-finding", banner, BANNER_PORT, old_ssh),
            ("new-finding", banner, BANNER_PORT, new_ssh),
        ]
    )
    version = next(i for i in changes.items if i.kind is ChangeKind.VERSION_CHANGED)
    assert version.old == _service(before, banner, BANNER_PORT)
    assert version.new == _service(after, banner, BANNER_PORT)


def test_lab_diff_through_both_stores(runs: LabRuns, tmp_path: Path, pg_url: str) -> None:
    before, after = runs.before, runs.after
    expected = diff_reports(before, after).items
    for url in (str(tmp_path / "history.sqlite3"), pg_url):
        with open_history(url) as store:
            old_id = store.record(before)
            assert store.previous_run(after) is not None
            new_id = store.record(after)
            prev = store.previous_run(after)
            assert prev is not None and prev.id == old_id
            assert diff_runs(store, old_id, new_id).items == expected


def test_lab_narrower_scan_is_not_checked_not_fixed(runs: LabRuns) -> None:
    after, narrow = runs.after, runs.narrow
    changes = diff_reports(after, narrow)
    kinds = {i.kind for i in changes.items}
    assert kinds == {ChangeKind.NOT_CHECKED}, [i.description for i in changes.items]
    scanned = {runs.ssh1, runs.files, runs.banner}
    unscanned_hosts = {h.address for h in after.hosts if h.status == "up"} - scanned
    host_items = {i.address for i in changes.items if i.location is None}
    assert host_items == unscanned_hosts and runs.db in host_items
    port_items = {(i.location.address, i.location.port) for i in changes.items if i.location}
    assert port_items == {(runs.ssh1, 80)}  # outside the narrower port list


def test_lab_flan_diff_command(runs: LabRuns) -> None:
    import json

    from click.testing import CliRunner

    from flanscan._cli import cli

    tmp = runs.tmp
    result = CliRunner().invoke(
        cli,
        ["diff", str(tmp / "before.xml"), str(tmp / "after.xml"), "--no-db", "--format", "json"],
    )
    assert result.exit_code == 0, result.output
    kinds = sorted(i["kind"] for i in json.loads(result.stdout)["items"])
    # Without the stand-in analyzer (no database): only the port and version changes remain.
    assert kinds == ["closed-port", "new-port", "version-changed"]


def test_lab_changes_alert_once(runs: LabRuns) -> None:
    """The lab's new findings go out as one webhook message listing both, not the fixed ones."""
    from flanscan._notify import RetryPolicy, send_alerts
    from tests.test_notify import Receiver

    changes = diff_reports(runs.before, runs.after)
    receiver = Receiver()
    try:
        failures = send_alerts(
            [receiver.base + "/hook"], runs.after, changes, retry=RetryPolicy(2, (0.01,), 5)
        )
    finally:
        receiver.close()
    assert failures == []
    assert len(receiver.requests) == 1
    body = receiver.requests[0][1]
    new_ids = {i.vuln_id for i in changes.items if i.kind is ChangeKind.NEW_FINDING}
    assert {f["id"] for f in body["findings"]} == new_ids and len(new_ids) == 2
    located = {loc for f in body["findings"] for loc in f["locations"]}
    assert located == {f"{runs.files}:11211/tcp", f"{runs.banner}:{BANNER_PORT}/tcp"}
