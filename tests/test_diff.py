"""Diff semantics on synthetic reports: what is new, fixed, changed, and what was not checked."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

from flanscan._history import IN_KEV, diff_reports
from flanscan._history._scope import PortScope, _top_ports
from flanscan._model import ChangeItem, ChangeKind, Confidence, FindingStatus, Location, Severity
from testlab.synthetic import Port, Vuln, make_report

T0 = datetime(2026, 3, 1, tzinfo=UTC)
T1 = T0 + timedelta(days=7)
WEB = "198.18.0.20"
SSH = "198.18.0.21"

OPENSSH_CVE = Vuln("CVE-2023-38408", 9.8)
NGINX_CVE = Vuln("CVE-2023-44487", 7.5)


def base() -> list[Port]:
    return [
        Port(SSH, 22, "tcp", "ssh", "OpenSSH", "9.2p1", (OPENSSH_CVE,)),
        Port(WEB, 80, "tcp", "http", "nginx", "1.22.1", (NGINX_CVE,)),
        Port(WEB, 21, "tcp", "ftp", "vsftpd", "3.0.3"),
    ]


def kinds(items: tuple[ChangeItem, ...]) -> list[tuple[str, str | None]]:
    return sorted((i.kind.value, i.location.label if i.location else i.address) for i in items)


def test_identical_runs_have_no_changes() -> None:
    changes = diff_reports(make_report(base(), start=T0), make_report(base(), start=T1))
    assert changes.items == ()
    assert changes.since == T0


def test_version_upgrade_fixes_cve_once_not_noise() -> None:
    new = base()
    new[0] = Port(SSH, 22, "tcp", "ssh", "OpenSSH", "9.6p1")
    changes = diff_reports(make_report(base(), start=T0), make_report(new, start=T1))
    assert kinds(changes.items) == [
        ("fixed-finding", f"{SSH}:22/tcp"),
        ("version-changed", f"{SSH}:22/tcp"),
    ]
    fixed = next(i for i in changes.items if i.kind is ChangeKind.FIXED_FINDING)
    assert fixed.vuln_id == OPENSSH_CVE.cve and fixed.severity is Severity.CRITICAL
    assert "OpenSSH 9.6p1" in fixed.description
    version = next(i for i in changes.items if i.kind is ChangeKind.VERSION_CHANGED)
    assert (version.old, version.new) == ("OpenSSH 9.2p1", "OpenSSH 9.6p1")


def test_new_finding_and_new_port() -> None:
    new = [*base(), Port(WEB, 6379, "tcp", "redis", "Redis key-value store", "7.0.15",
                         (Vuln("CVE-2025-49844", 9.9, kev="2025-10-07"),))]  # fmt: skip
    changes = diff_reports(make_report(base(), start=T0), make_report(new, start=T1))
    assert kinds(changes.items) == [
        ("new-finding", f"{WEB}:6379/tcp"),
        ("new-port", f"{WEB}:6379/tcp"),
    ]
    finding = changes.items[0]  # new findings come before ports
    assert finding.kind is ChangeKind.NEW_FINDING and finding.vuln_id == "CVE-2025-49844"
    assert "in KEV" in finding.description and finding.severity is Severity.CRITICAL


def test_closed_port_fixes_its_findings() -> None:
    new = [p for p in base() if p.port != 80]
    changes = diff_reports(make_report(base(), start=T0), make_report(new, start=T1))
    assert kinds(changes.items) == [
        ("closed-port", f"{WEB}:80/tcp"),
        ("fixed-finding", f"{WEB}:80/tcp"),
    ]
    fixed = next(i for i in changes.items if i.kind is ChangeKind.FIXED_FINDING)
    assert "port closed" in fixed.description


def test_status_changes() -> None:
    old = [
        Port(SSH, 22, "tcp", "ssh", "OpenSSH", "9.2p1", (
            Vuln("CVE-A", 7.5),  # -> in KEV
            Vuln("CVE-B", 7.5),  # -> suppressed
            Vuln("CVE-C", 7.5, status=FindingStatus.SUPPRESSED, suppressed_until="2026-03-05"),
            Vuln("CVE-D", 7.5),  # -> fixed by distribution
            Vuln("CVE-E", 5.0),  # -> rescored
            Vuln("CVE-F", 7.5),  # unchanged
        )),
    ]  # fmt: skip
    new = [
        Port(SSH, 22, "tcp", "ssh", "OpenSSH", "9.2p1", (
            Vuln("CVE-A", 7.5, kev="2026-03-04"),
            Vuln("CVE-B", 7.5, status=FindingStatus.SUPPRESSED, suppressed_until="2027-01-01"),
            Vuln("CVE-C", 7.5),
            Vuln("CVE-D", 7.5, status=FindingStatus.FIXED_BY_DISTRIBUTION),
            Vuln("CVE-E", 9.1),
            Vuln("CVE-F", 7.5),
        )),
    ]  # fmt: skip
    changes = diff_reports(make_report(old, start=T0), make_report(new, start=T1))
    assert {i.kind for i in changes.items} == {ChangeKind.STATUS_CHANGED}
    by_id = {i.vuln_id: i for i in changes.items}
    assert sorted(by_id) == ["CVE-A", "CVE-B", "CVE-C", "CVE-D", "CVE-E"]
    assert by_id["CVE-A"].new == IN_KEV and "2026-03-04" in by_id["CVE-A"].description
    assert "newly suppressed" in by_id["CVE-B"].description
    assert "suppression expired (2026-03-05)" in by_id["CVE-C"].description
    assert by_id["CVE-D"].new == "fixed by distribution"
    assert (by_id["CVE-E"].old, by_id["CVE-E"].new) == ("medium", "critical")


def test_hosts_appear_and_disappear() -> None:
    old = make_report(base(), start=T0, extra_hosts=["198.18.0.30"])
    new_ports = [p for p in base() if p.address != WEB] + [
        Port("198.18.0.31", 443, "tcp", "https", "Apache httpd", "2.4.49",
             (Vuln("CVE-2021-41773", 7.5),))
    ]  # fmt: skip
    changes = diff_reports(old, make_report(new_ports, start=T1))
    assert kinds(changes.items) == [
        ("host-appeared", "198.18.0.31"),
        ("host-disappeared", WEB),
        ("host-disappeared", "198.18.0.30"),
        ("new-finding", "198.18.0.31:443/tcp"),
        ("new-port", "198.18.0.31:443/tcp"),
    ]
    gone = next(i for i in changes.items if i.address == WEB)
    assert "2 open ports, 1 open finding" in gone.description  # not listed as fixed


def test_host_outside_new_targets_is_not_checked() -> None:
    old = make_report(base(), start=T0, targets=("198.18.0.20-21",))
    new = make_report([p for p in base() if p.address == SSH], start=T1, targets=(SSH,))
    changes = diff_reports(old, new)
    assert [(i.kind, i.address) for i in changes.items] == [(ChangeKind.NOT_CHECKED, WEB)]
    assert "outside the new run's targets" in changes.items[0].description


def test_excluded_and_failed_worker_are_not_checked() -> None:
    old = make_report(base(), start=T0)
    new = make_report([], start=T1, excluded=(WEB,), incomplete=("198.18.0.21/32",))
    changes = diff_reports(old, new)
    reasons = {i.address: i.description for i in changes.items}
    assert {i.kind for i in changes.items} == {ChangeKind.NOT_CHECKED}
    assert "excluded from the new run" in reasons[WEB]
    assert "worker did not finish" in reasons[SSH]
    assert not any(i.kind is ChangeKind.FIXED_FINDING for i in changes.items)


def test_failed_worker_host_still_present_ports_not_fixed() -> None:
    # The host answered in part before its worker died: missing ports are "not checked".
    old = make_report(base(), start=T0)
    new = make_report([p for p in base() if p.port != 80], start=T1, incomplete=(WEB,))
    changes = diff_reports(old, new)
    assert kinds(changes.items) == [("not-checked", f"{WEB}:80/tcp")]
    assert "1 finding not rechecked" in changes.items[0].description


def test_port_outside_new_port_scope_is_not_checked() -> None:
    old = make_report(base(), start=T0, ports_scope="1-65535")
    new = make_report([p for p in base() if p.port != 21], start=T1, ports_scope="T:22,80")
    changes = diff_reports(old, new)
    assert kinds(changes.items) == [("not-checked", f"{WEB}:21/tcp")]
    assert "T:22,80" in changes.items[0].description


def test_top_ports_scope_from_nmap_services() -> None:
    top = _top_ports("tcp", 1000)
    if not top:
        import pytest

        pytest.skip("no /usr/share/nmap/nmap-services to rank ports")
    assert len(top) == 1000 and {22, 80, 443} <= top
    scope = PortScope.parse("top-1000")
    assert scope.covers(22, "tcp") is True
    assert scope.covers(22, "udp") is False  # no -sU in the (absent) command
    rare = min(p for p in range(1, 65536) if p not in top)
    old = make_report([Port(SSH, rare, "tcp", "x", "X", "1")], start=T0, ports_scope="1-65535")
    new = make_report([], start=T1, ports_scope="top-1000", extra_hosts=[SSH])
    changes = diff_reports(old, new)
    assert [i.kind for i in changes.items] == [ChangeKind.NOT_CHECKED]
    assert PortScope.parse("T:22,80,U:53", ["nmap -sS -sU"]).exact == {
        "tcp": {22, 80}, "udp": {53}, "sctp": set()
    }  # fmt: skip
    assert PortScope.parse("weird").covers(22, "tcp") is None


def test_target_forms() -> None:
    from flanscan._history._rows import RunScope
    from flanscan._history._scope import host_reason_not_checked

    def covered(target: str, address: str, names: tuple[str, ...] = ()) -> bool:
        return host_reason_not_checked(RunScope(targets=(target,)), address, names) is None

    assert covered("198.18.0.0/24", "198.18.0.7")
    assert not covered("198.18.0.0/25", "198.18.0.200")
    assert covered("198.18.0.1-20", "198.18.0.20")
    assert not covered("198.18.0.1-20", "198.18.0.21")
    assert covered("198.18.0.1,3,5", "198.18.0.3")
    assert covered("198.18.0-1.*", "198.18.1.9")
    assert covered("198.18.0.1-198.18.0.9", "198.18.0.9")
    assert covered("fd00:f1a5::/64", "fd00:f1a5::10")
    assert not covered("fd00:f1a5::/64", "198.18.0.1")
    assert covered("lab-web", "198.18.0.20", ("lab-web",))
    reason = host_reason_not_checked(RunScope(targets=("lab-web",)), "198.18.0.21", ())
    assert reason is not None and "cannot be compared" in reason


def test_product_only_findings_are_not_new_but_loss_of_version_is_a_status_change() -> None:
    po = dataclasses.replace(OPENSSH_CVE, confidence=Confidence.PRODUCT_ONLY)
    old = make_report(base(), start=T0)
    new_ports = base()
    new_ports[0] = Port(
        SSH,
        22,
        "tcp",
        "ssh",
        "OpenSSH",
        None,
        (po, Vuln("CVE-X", 9.0, confidence=Confidence.PRODUCT_ONLY)),
    )
    changes = diff_reports(old, make_report(new_ports, start=T1))
    assert kinds(changes.items) == [
        ("status-changed", f"{SSH}:22/tcp"),
        ("version-changed", f"{SSH}:22/tcp"),
    ]
    status = changes.items[0]
    assert status.vuln_id == OPENSSH_CVE.cve and "version no longer detected" in status.description


def test_not_affected_findings_are_quiet() -> None:
    new = base()
    new[0] = Port(SSH, 22, "tcp", "ssh", "OpenSSH", "9.2p1",
                  (OPENSSH_CVE, Vuln("CVE-Q", 9.0, status=FindingStatus.NOT_AFFECTED)))  # fmt: skip
    assert diff_reports(make_report(base(), start=T0), make_report(new, start=T1)).items == ()


def test_items_locations_are_real_locations() -> None:
    new = base()[:2]
    changes = diff_reports(make_report(base(), start=T0), make_report(new, start=T1))
    assert changes.items[0].location == Location(WEB, 21, "tcp")
