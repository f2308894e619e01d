"""Build Reports from a flat list of ports and findings: for the history tests and benchmark.

Groups entries into service-centred `ServiceReport`s the way the report builder does, so the
store and the diff see the same shapes as with real scans.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flanscan._model import (
    Confidence,
    CvssScore,
    Finding,
    FindingStatus,
    HostSummary,
    KevEntry,
    Location,
    Report,
    ScanSummary,
    ServiceFinding,
    ServiceReport,
    SuppressionRef,
    Vulnerability,
)


@dataclass(frozen=True)
class Vuln:
    """A finding to put on a port."""

    cve: str
    cvss: float | None = 7.5
    status: FindingStatus = FindingStatus.CONFIRMED
    kev: str | None = None  # date added to KEV
    suppressed_until: str | None = None
    confidence: Confidence = Confidence.EXACT


@dataclass(frozen=True)
class Port:
    """An open port with its service and findings."""

    address: str
    port: int
    protocol: str = "tcp"
    name: str | None = None
    product: str | None = None
    version: str | None = None
    vulns: tuple[Vuln, ...] = ()


def make_report(
    ports: Iterable[Port],
    *,
    targets: tuple[str, ...] = ("198.18.0.0/24",),
    excluded: tuple[str, ...] = (),
    ports_scope: str | None = "1-65535",
    incomplete: tuple[str, ...] = (),
    start: datetime | None = None,
    run_id: str | None = None,
    down_hosts: Iterable[str] = (),
    extra_hosts: Iterable[str] = (),
) -> Report:
    """A Report of the given ports; hosts are those with ports plus `extra_hosts` (up, no ports)."""
    start = start or datetime(2026, 1, 1, tzinfo=UTC)
    groups: dict[tuple[str | None, str | None, str | None], list[Port]] = {}
    for p in ports:
        groups.setdefault((p.name, p.product, p.version), []).append(p)
    services: list[ServiceReport] = []
    host_ports: dict[str, int] = {}
    for (name, product, version), members in groups.items():
        locations = tuple(Location(p.address, p.port, p.protocol) for p in members)
        by_vuln: dict[Vuln, list[Location]] = {}
        for p in members:
            host_ports[p.address] = host_ports.get(p.address, 0) + 1
            for v in p.vulns:
                by_vuln.setdefault(v, []).append(Location(p.address, p.port, p.protocol))
        exact: list[ServiceFinding] = []
        product_only: list[ServiceFinding] = []
        for v, locs in by_vuln.items():
            vuln = Vulnerability(
                id=v.cve,
                cvss=CvssScore(v.cvss, "3.1") if v.cvss is not None else None,
                kev=KevEntry(date_added=v.kev) if v.kev else None,
                url=f"https://nvd.nist.gov/vuln/detail/{v.cve}",
                summary=f"Synthetic {v.cve} in {product}",
            )
            sup = (
                SuppressionRef("exceptions.txt:1", "accepted risk", "ops", v.suppressed_until)
                if v.status is FindingStatus.SUPPRESSED
                else None
            )
            sf = ServiceFinding(
                Finding(vuln, confidence=v.confidence, status=v.status, suppression=sup),
                tuple(locs),
            )
            (exact if v.confidence is Confidence.EXACT else product_only).append(sf)
        services.append(
            ServiceReport(
                name=name, product=product, version=version, cpes=(), locations=locations,
                findings=tuple(exact), product_only=tuple(product_only),
            )
        )  # fmt: skip
    hosts = [HostSummary(a, (), "up", n) for a, n in host_ports.items()]
    hosts += [HostSummary(a, (), "up", 0) for a in extra_hosts if a not in host_ports]
    hosts += [HostSummary(a, (), "down", 0) for a in down_hosts]
    return Report(
        scan=ScanSummary(
            targets=targets,
            excluded=excluded,
            ports=ports_scope,
            incomplete_targets=incomplete,
            start=start,
            end=start + timedelta(minutes=5),
            nmap_commands=(f"nmap -sV -p {ports_scope} {' '.join(targets)}",),
            hosts_up=sum(1 for h in hosts if h.status == "up"),
            run_id=run_id,
        ),
        services=tuple(services),
        hosts=tuple(hosts),
    )


def fleet_ports(
    hosts: int = 10_000, findings: int = 50_000, *, seed: int = 0, changed: float = 0.0
) -> list[Port]:
    """A large network: `hosts` hosts with two ports each and `findings` findings in total.
    `changed` is the fraction of hosts whose web server was upgraded (for a second run)."""
    rng = random.Random(seed)
    kinds = 20  # distinct product versions
    per_finding_kind = max(1, findings // hosts)  # findings per host, on its web port
    result: list[Port] = []
    for i in range(hosts):
        # RFC 2544 benchmarking addresses (198.18.0.0/15): never scanned, never anyone's.
        addr = f"198.{18 + ((i >> 16) & 1)}.{(i >> 8) & 255}.{i & 255}"
        kind = i % kinds
        upgraded = rng.random() < changed
        version = f"2.4.{kind + (100 if upgraded else 0)}"
        vulns = tuple(
            Vuln(f"CVE-2024-{kind * 100 + j + (5000 if upgraded else 0):05d}", 5.0 + (j % 5))
            for j in range(per_finding_kind)
        )
        result.append(Port(addr, 443, "tcp", "https", "Apache httpd", version, vulns))
        result.append(Port(addr, 22, "tcp", "ssh", "OpenSSH", f"9.{kind % 3}p1"))
    return result
