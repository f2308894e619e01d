"""The service-centred report model: grouping, merging of several XML files, ordering, hosts,
and the scan summary read from the XML itself."""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from flanscan._errors import ParseError
from flanscan._model import (
    Confidence,
    CvssScore,
    Finding,
    FindingStatus,
    HostObservation,
    KevEntry,
    Location,
    ScanSummary,
    ServiceObservation,
    Severity,
    Vulnerability,
)
from flanscan._nmapopts import parse_nmap_args
from flanscan._parse import NmapXmlFile
from flanscan._pipeline import report_from_files
from flanscan._report import build_report, finding_sort_key, merge_hosts
from flanscan._xmlset import find_xml_files, summarize_runs


def vuln(
    vid: str, score: float | None, *, kev: bool = False, epss: float | None = None
) -> Vulnerability:
    return Vulnerability(
        id=vid,
        cvss=CvssScore(score, "3.1") if score is not None else None,
        kev=KevEntry(date_added="2024-01-01") if kev else None,
        epss=epss,
    )


def finding(
    vid: str,
    score: float | None,
    *,
    kev: bool = False,
    epss: float | None = None,
    confidence: Confidence = Confidence.EXACT,
    status: FindingStatus = FindingStatus.CONFIRMED,
) -> Finding:
    return Finding(vuln(vid, score, kev=kev, epss=epss), confidence=confidence, status=status)


def host(
    address: str, *services: ServiceObservation, hostnames: Sequence[str] = ()
) -> HostObservation:
    return HostObservation(
        address=address,
        address_type="ipv6" if ":" in address else "ipv4",
        hostnames=tuple(hostnames),
        services=tuple(services),
    )


def svc(address: str, port: int, **kw: object) -> ServiceObservation:
    return ServiceObservation(
        address=address, port=port, protocol=str(kw.pop("protocol", "tcp")), **kw
    )  # type: ignore[arg-type]


SCAN = ScanSummary(targets=("127.0.0.0/29",))


# --------------------------------------------------------------------------- grouping


def test_one_service_on_two_hosts_collects_findings_of_every_location() -> None:
    ssh = {
        "name": "ssh",
        "product": "OpenSSH",
        "version": "9.2p1",
        "cpes": ("cpe:/a:openbsd:openssh:9.2p1",),
    }
    hosts = [
        host("127.0.0.2", svc("127.0.0.2", 22, **ssh), hostnames=["a.lab"]),
        host("::1", svc("::1", 2222, **ssh)),
        host("127.0.0.3", svc("127.0.0.3", 22, **ssh)),
    ]
    shared = finding("CVE-2023-0001", 7.5)

    def analyze(h: HostObservation, s: ServiceObservation) -> list[Finding]:
        # The original kept only the first host's findings: here the later hosts add their own.
        out = [shared]
        if h.address == "127.0.0.3":
            out.append(finding("CVE-2023-0002", 9.8))
        if h.address == "::1":
            out.append(finding("CVE-2023-0003", 5.0, confidence=Confidence.PRODUCT_ONLY))
        return out

    report = build_report(hosts, scan=SCAN, analyze=analyze, vulndb=None, vulndb_note="no db")
    (service,) = report.services
    assert (service.product, service.version, service.cpes) == ("OpenSSH", "9.2p1", ssh["cpes"])
    assert [loc.label for loc in service.locations] == [
        "127.0.0.2:22/tcp",
        "127.0.0.3:22/tcp",
        "[::1]:2222/tcp",
    ]
    assert service.locations[0].hostnames == ("a.lab",)
    assert [(sf.finding.id, len(sf.locations)) for sf in service.findings] == [
        ("CVE-2023-0002", 1),
        ("CVE-2023-0001", 3),
    ]
    assert service.findings[0].locations == (Location("127.0.0.3", 22, "tcp"),)
    assert [(sf.finding.id, sf.locations[0].address) for sf in service.product_only] == [
        ("CVE-2023-0003", "::1")
    ]
    assert report.summary()["critical"] == 1 and report.summary()["high"] == 3
    assert report.vulndb_note == "no db" and report.scan.targets == SCAN.targets
    assert report.scan.hosts_up == 3


def test_unidentified_ports_are_services_and_hosts_without_ports_are_listed() -> None:
    hosts = [
        host(
            "127.0.0.2",
            svc("127.0.0.2", 6379, name="redis", method="table"),
            svc("127.0.0.2", 40000),
        ),
        host("127.0.0.3", svc("127.0.0.3", 6379, name="redis", method="table")),
        host("127.0.0.4"),  # up, nothing open
        HostObservation(address="127.0.0.5", status="down"),
    ]
    report = build_report(hosts, scan=SCAN, analyze=None, vulndb=None, vulndb_note=None)
    assert [(s.name, s.product, len(s.locations)) for s in report.services] == [
        ("redis", None, 2),
        ("unknown", None, 1),
    ]
    assert [(h.address, h.open_ports) for h in report.hosts] == [
        ("127.0.0.2", 2),
        ("127.0.0.3", 1),
        ("127.0.0.4", 0),
    ]
    assert (report.scan.hosts_up, report.scan.hosts_down) == (3, 1)


# --------------------------------------------------------------------------- ordering


def test_findings_ordered_kev_then_cvss_then_epss() -> None:
    items = [
        finding("CVE-A", 9.8, epss=0.1),
        finding("CVE-B", 7.5, kev=True, epss=0.2),
        finding("CVE-C", 9.8, epss=0.9),
        finding("CVE-D", 5.0, kev=True, epss=0.9),
        finding("CVE-E", None),
        finding("CVE-F", 10.0, status=FindingStatus.FIXED_BY_DISTRIBUTION),
        finding("CVE-G", 9.8, epss=None),
    ]
    ordered = [f.id for f in sorted(items, key=finding_sort_key)]
    assert ordered == ["CVE-B", "CVE-D", "CVE-C", "CVE-A", "CVE-G", "CVE-E", "CVE-F"]


def test_services_ordered_vulnerable_first_by_worst_severity_then_locations() -> None:
    def s(addr: str, port: int, product: str) -> ServiceObservation:
        return svc(addr, port, name="x", product=product, version="1")

    hosts = [
        host(
            "127.0.0.2",
            s("127.0.0.2", 1, "Medium"),
            s("127.0.0.2", 2, "Zeta clean"),
            s("127.0.0.2", 3, "Critical"),
        ),
        host(
            "127.0.0.3",
            s("127.0.0.3", 1, "Medium"),
            s("127.0.0.3", 4, "High one"),
            s("127.0.0.3", 5, "alpha clean"),
        ),
        host(
            "127.0.0.4",
            s("127.0.0.4", 6, "High many"),
            s("127.0.0.4", 7, "High many"),
            s("127.0.0.4", 8, "Suppressed"),
        ),
    ]
    sev = {"Medium": 5.0, "Critical": 9.1, "High one": 7.0, "High many": 8.0}

    def analyze(h: HostObservation, o: ServiceObservation) -> list[Finding]:
        if o.product == "Suppressed":
            return [finding("CVE-S", 9.9, status=FindingStatus.SUPPRESSED)]
        if o.product in sev:
            return [finding(f"CVE-{o.product}", sev[o.product])]
        return []

    report = build_report(hosts, scan=SCAN, analyze=analyze, vulndb=None, vulndb_note=None)
    assert [x.product for x in report.services] == [
        "Critical",
        "High many",  # same severity as "High one", more locations
        "High one",
        "Medium",
        "alpha clean",
        "Suppressed",  # no open finding: with the services without known vulnerabilities
        "Zeta clean",
    ]
    assert [x.worst_severity for x in report.services][:4] == [
        Severity.CRITICAL,
        Severity.HIGH,
        Severity.HIGH,
        Severity.MEDIUM,
    ]


# --------------------------------------------------------------------------- merging files


def test_discovery_pass_and_version_pass_are_merged(nmap_samples: Path) -> None:
    # The same /24 scanned twice: -O only (os_scan6) and -A (full_sudo6).
    first = list(NmapXmlFile(nmap_samples / "os_scan6.xml").hosts())
    second = list(NmapXmlFile(nmap_samples / "full_sudo6.xml").hosts())
    merged = {h.address: h for h in merge_hosts(first + second)}
    up = {h.address for h in first + second if h.status == "up"}
    assert {a for a, h in merged.items() if h.status == "up"} == up
    for addr in up:
        ports: dict[tuple[int, str], list[ServiceObservation]] = {}
        for h in first + second:
            if h.address == addr:
                for o in h.services:
                    ports.setdefault((o.port, o.protocol), []).append(o)
        got = {(o.port, o.protocol): o for o in merged[addr].services}
        assert set(got) == set(ports)
        for key, seen in ports.items():
            with_product = [o for o in seen if o.product]
            if with_product:  # the -sV observation wins over the table guess
                assert got[key].product == with_product[0].product
    report = build_report(first + second, scan=SCAN, analyze=None, vulndb=None, vulndb_note=None)
    assert report.scan.hosts_up == len(up)
    assert sum(len(s.locations) for s in report.services) == sum(
        len(h.services) for h in merged.values()
    )
    telnet = [s for s in report.services if s.product == "Sagem router telnetd"]
    assert len(telnet) == 1 and len(telnet[0].locations) == 2  # ports 23 and 992 of one host


# --------------------------------------------------------------------------- runs


def test_parse_nmap_args() -> None:
    parsed = parse_nmap_args(
        "nmap -sV -p 22,80 --script vulners -oX out.xml -iL ips.txt --exclude 127.0.0.5,127.0.0.6 "
        "--stats-every=5s -T4 127.0.0.1 ::1"
    )
    assert parsed.targets == ("127.0.0.1", "::1")
    assert parsed.excluded == ("127.0.0.5", "127.0.0.6")
    assert parsed.input_lists == ("ips.txt",)
    assert parsed.ports == "22,80"
    assert parse_nmap_args("nmap -sn 127.0.0.1").ports is None
    assert parse_nmap_args("nmap --top-ports 100 127.0.0.1").ports == "top-100"
    assert parse_nmap_args("nmap -p- -oX - 127.0.0.1") == parse_nmap_args("nmap -p - 127.0.0.1")
    assert parse_nmap_args("nmap -p- -oX - 127.0.0.1").ports == "1-65535"
    assert parse_nmap_args("nmap -p22 -F 127.0.0.1").ports == "22"
    assert parse_nmap_args("nmap -F 127.0.0.1").ports == "top-100"
    assert parse_nmap_args("nmap -sV -- 127.0.0.1").targets == ("127.0.0.1",)


def test_summarize_runs_from_real_files(nmap_samples: Path) -> None:
    names = ["2_hosts.xml", "2_tcp_hosts.xml", "full_sudo6.xml"]
    infos = []
    for name in names:
        reader = NmapXmlFile(nmap_samples / name)
        list(reader.hosts())
        infos.append(reader.info)
    summary = summarize_runs(infos)
    texts = [(nmap_samples / n).read_text() for n in names]
    args = [re.search(r'<nmaprun [^>]*args="([^"]*)"', t).group(1) for t in texts]  # type: ignore[union-attr]
    # Targets: the words after the output file in these command lines, without duplicates.
    expected = list(dict.fromkeys(w for a in args for w in a.split()[a.split().index("-oX") + 2 :]))
    assert list(summary.targets) == expected
    assert summary.nmap_commands == tuple(dict.fromkeys(args))
    starts = [int(re.search(r' start="(\d+)"', t).group(1)) for t in texts]  # type: ignore[union-attr]
    ends = [int(re.search(r'<finished time="(\d+)"', t).group(1)) for t in texts]  # type: ignore[union-attr]
    assert summary.start == datetime.fromtimestamp(min(starts), tz=UTC)
    assert summary.end == datetime.fromtimestamp(max(ends), tz=UTC)
    assert summary.nmap_version == ", ".join(
        dict.fromkeys(re.search(r'<nmaprun [^>]*\sversion="([^"]*)"', t).group(1) for t in texts)  # type: ignore[union-attr]
    )
    assert summary.xml_files == tuple(str(nmap_samples / n) for n in names)
    assert summary.warnings == ()


def test_report_from_files_reads_directories_and_warns_on_cut_files(
    nmap_samples: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    (run / "xml").mkdir(parents=True)
    shutil.copy(nmap_samples / "fullscan.xml", run / "xml" / "worker-0.xml")  # tmp only
    text = (nmap_samples / "full_sudo6.xml").read_text()
    (run / "xml" / "worker-1.xml").write_text(text[: len(text) // 2])
    report = report_from_files([run], analyze=None, vulndb_note="no db")
    assert report.scan.xml_files == (
        str(run / "xml" / "worker-0.xml"),
        str(run / "xml" / "worker-1.xml"),
    )
    (warning,) = report.scan.warnings
    assert "worker-1.xml" in warning and "cut short" in warning
    half = text[: len(text) // 2]
    complete = half[: half.rfind("</host>")]
    up_in_half = set(re.findall(r'<status state="up"[^>]*/>\s*<address addr="([^"]+)"', complete))
    up_full = set(
        re.findall(
            r'<status state="up"[^>]*/>\s*<address addr="([^"]+)"',
            (nmap_samples / "fullscan.xml").read_text(),
        )
    )
    assert {h.address for h in report.hosts} == up_in_half | up_full
    assert report.scan.hosts_up == len(up_in_half | up_full)
    # With a given summary (from run.json), the XML's warnings are added to it.
    given = ScanSummary(targets=("127.0.0.1",), warnings=("worker 3 failed",))
    report = report_from_files([run / "xml" / "worker-1.xml"], scan=given)
    assert report.scan.targets == ("127.0.0.1",)
    assert report.scan.warnings[0] == "worker 3 failed" and "cut short" in report.scan.warnings[1]


def test_find_xml_files_errors(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="no Nmap XML"):
        find_xml_files([tmp_path])
    with pytest.raises(ParseError, match="no such file"):
        find_xml_files([tmp_path / "nope.xml"])
