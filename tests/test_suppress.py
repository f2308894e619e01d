"""Exception rules: every matcher, expiry, unused rules, and bad rules reported as file:line."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from flanscan._errors import UsageError
from flanscan._model import (
    Finding,
    FindingStatus,
    Location,
    MatchEvidence,
    ServiceObservation,
    Vulnerability,
)
from flanscan._suppress import default_suppressions_path, load_suppressions

TODAY = date(2026, 11, 22)
SSH = ServiceObservation(
    "127.0.0.5",
    22,
    "tcp",
    product="OpenSSH",
    version="9.2p1",
    cpes=("cpe:/a:openbsd:openssh:9.2p1",),
)
WEB = ServiceObservation(
    "127.0.0.9",
    8080,
    "tcp",
    product="nginx",
    version="1.22.1",
    cpes=("cpe:/a:igor_sysoev:nginx:1.22.1",),
)


def loc(service: ServiceObservation) -> Location:
    return Location(service.address, service.port, service.protocol)


def f(cve: str, status: FindingStatus = FindingStatus.CONFIRMED) -> Finding:
    return Finding(Vulnerability(cve), status=status)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def statuses(findings: list[Finding]) -> dict[str, FindingStatus]:
    return {x.id: x.status for x in findings}


def test_each_matcher_kind(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
suppressions:
  - cve: CVE-2023-48795
    reason: Terrapin mitigated in sshd_config
    owner: infra
    allow_all: true
  - cpe: cpe:/a:igor_sysoev:nginx
    reason: internal only
    owner: web
    allow_all: true
  - product: openssh
    port: 22
    cve: [CVE-2024-6387, CVE-2025-26465]
    reason: patched by hand
    owner: infra
    allow_all: true
  - address: 127.0.0.8/30
    port: 8080
    protocol: tcp
    reason: test host
    owner: qa
""",
    )
    rules = load_suppressions(path, today=TODAY)
    out = rules.apply(loc(SSH), SSH, [f("CVE-2023-48795"), f("CVE-2024-6387"), f("CVE-2020-0001")])
    assert statuses(out) == {
        "CVE-2023-48795": FindingStatus.SUPPRESSED,
        "CVE-2024-6387": FindingStatus.SUPPRESSED,
        "CVE-2020-0001": FindingStatus.CONFIRMED,
    }
    ref = out[0].suppression
    assert ref is not None
    assert (ref.source, ref.reason, ref.owner, ref.expires) == (
        f"{path}:2",
        "Terrapin mitigated in sshd_config",
        "infra",
        None,
    )
    assert out[1].suppression is not None and out[1].suppression.source == f"{path}:10"
    web = rules.apply(loc(WEB), WEB, [f("CVE-2021-23017")])
    # the CPE rule (line 6) comes first in the file and wins over the address rule (line 16)
    assert web[0].suppression is not None and web[0].suppression.source == f"{path}:6"
    assert rules.notes() == [
        f"suppression rule {path}:16 (address 127.0.0.8/30; port 8080; owner qa) "
        "matched no finding (unused)"
    ]


def test_address_and_port_must_all_match(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
- address: [127.0.0.9, "::1"]
  port: 8080
  reason: r
  owner: o
""",
    )
    rules = load_suppressions(path, today=TODAY)
    assert rules.apply(loc(WEB), WEB, [f("CVE-2024-0001")])[0].status is FindingStatus.SUPPRESSED
    other_port = Location("127.0.0.9", 80, "tcp")
    assert rules.apply(other_port, WEB, [f("CVE-2024-0001")])[0].status is FindingStatus.CONFIRMED
    assert rules.apply(loc(SSH), SSH, [f("CVE-2024-0001")])[0].status is FindingStatus.CONFIRMED
    v6 = Location("::1", 8080, "tcp")
    assert rules.apply(v6, WEB, [f("CVE-2024-0001")])[0].status is FindingStatus.SUPPRESSED


def test_cpe_rule_matches_matcher_evidence_and_23_form(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
- cpe: "cpe:2.3:a:f5:nginx:1.22.1:*:*:*:*:*:*:*"
  reason: r
  owner: o
  allow_all: true
""",
    )
    rules = load_suppressions(path, today=TODAY)
    ev = MatchEvidence(
        "cpe:2.3:a:f5:nginx:*:*:*:*:*:*:*:*",
        "< 1.23",
        "1.22.1",
        detected_cpe="cpe:2.3:a:f5:nginx:1.22.1:*:*:*:*:*:*:*",
    )
    bare = ServiceObservation("127.0.0.9", 80, "tcp", product="nginx", version="1.22.1")
    out = rules.apply(loc(bare), bare, [Finding(Vulnerability("CVE-2024-0001"), evidence=(ev,))])
    assert out[0].status is FindingStatus.SUPPRESSED
    other = rules.apply(loc(bare), bare, [f("CVE-2024-0001")])  # no CPE anywhere: no match
    assert other[0].status is FindingStatus.CONFIRMED


def test_expiry(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
suppressions:
  - cve: CVE-2023-48795
    reason: until the upgrade
    owner: infra
    allow_all: true
    expires: 2026-11-21
  - cve: CVE-2024-6387
    reason: until the upgrade
    owner: infra
    allow_all: true
    expires: 2026-11-22
""",
    )
    rules = load_suppressions(path, today=TODAY)
    out = rules.apply(loc(SSH), SSH, [f("CVE-2023-48795"), f("CVE-2024-6387")])
    assert statuses(out) == {
        "CVE-2023-48795": FindingStatus.CONFIRMED,  # expired yesterday: reported again
        "CVE-2024-6387": FindingStatus.SUPPRESSED,  # the expiry day itself still applies
    }
    assert out[1].suppression is not None and out[1].suppression.expires == "2026-11-22"
    notes = rules.notes()
    assert len(notes) == 1
    assert notes[0].startswith(f"suppression rule {path}:2 (CVE-2023-48795; owner infra) expired")
    assert "2026-11-21" in notes[0] and "1 finding(s) it matches are reported again" in notes[0]
    later = load_suppressions(path, today=date(2027, 1, 1))
    assert later.apply(loc(SSH), SSH, [f("CVE-2024-6387")])[0].status is FindingStatus.CONFIRMED
    assert len(later.notes()) == 2


def test_closed_findings_are_not_suppressed(tmp_path: Path) -> None:
    path = write(tmp_path, "- cve: CVE-2024-0001\n  reason: r\n  owner: o\n  allow_all: true\n")
    rules = load_suppressions(path, today=TODAY)
    fixed = f("CVE-2024-0001", FindingStatus.FIXED_BY_DISTRIBUTION)
    unconfirmed = f("CVE-2024-0001", FindingStatus.UNCONFIRMED_DISTRIBUTION)
    out = rules.apply(loc(SSH), SSH, [fixed, unconfirmed])
    assert out[0] is fixed
    assert out[1].status is FindingStatus.SUPPRESSED
    assert rules.notes() == []


def test_empty_file_is_no_rules(tmp_path: Path) -> None:
    rules = load_suppressions(write(tmp_path, "# nothing yet\n"), today=TODAY)
    assert rules.rules == () and rules.notes() == []


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("- cve: CVE-2024-0001\n  reason: r\n  owner: o\n  team: x\n", 4, "unknown field 'team'"),
        ("- cve: CVE-2024-0001\n  reason: r\n  owner: o\n  expires: 2026-13-01\n", 4, "not a date"),
        ("- cve: CVE-2024-0001\n  reason: r\n  owner: o\n  expires: tomorrow\n", 4, "not a date"),
        ("- address: 198.18.0.300/24\n  reason: r\n  owner: o\n", 1, "not an IP address or CIDR"),
        ("- address: 127.0.0.1/24\n  reason: r\n  owner: o\n", 1, "host bits set"),
        ("- cve: CVE-2024-0001\n  owner: o\n", 1, "no 'reason'"),
        ("- cve: CVE-2024-0001\n  reason: r\n", 1, "no 'owner'"),
        ("- cve: CVE-2024-0001\n  reason: r\n  owner: ''\n", 3, "owner: expected a non-empty"),
        ("- reason: r\n  owner: o\n", 1, "rule matches nothing"),
        (
            "- cve: CVE-2024-0001\n  reason: r\n  owner: o\n  allow_all: true\n"
            "- port: 70000\n  reason: r\n  owner: o\n",
            5,
            "not a port number",
        ),
        ("- protocol: icmp\n  reason: r\n  owner: o\n", 1, "not tcp, udp or sctp"),
        ("- cve: CVE-20x1-1\n  reason: r\n  owner: o\n", 1, "not a CVE id"),
        ("- cpe: openssh\n  reason: r\n  owner: o\n", 1, "not a CPE"),
        ("- cve: CVE-2024-0001\n  cve: CVE-2024-0002\n  reason: r\n  owner: o\n", 2, "given twice"),
        ("rules:\n  - cve: CVE-2024-0001\n", 1, "unknown top-level key 'rules'"),
        ("- cve: CVE-2024-0001\n  reason: [r\n", 3, "not valid YAML"),
        ("- just a string\n", 1, "a rule must be a mapping"),
    ],
)
def test_bad_rules_name_file_and_line(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(UsageError) as err:
        load_suppressions(path, today=TODAY)
    assert str(err.value).startswith(f"{path}:{line}: ")
    assert message in str(err.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read suppression file"):
        load_suppressions(tmp_path / "missing.yaml")


def test_default_location_beside_targets(tmp_path: Path) -> None:
    targets = tmp_path / "ips.txt"
    targets.write_text("127.0.0.1\n")
    assert default_suppressions_path(targets) is None
    (tmp_path / "flan-suppressions.yaml").write_text("[]\n")
    assert default_suppressions_path(targets) == tmp_path / "flan-suppressions.yaml"
    assert default_suppressions_path(None) is None
