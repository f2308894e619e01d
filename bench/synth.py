"""Synthetic but realistic scans for the benchmarks: Nmap XML of N hosts, and a Report with
findings built from it by the real parser and report builder.

Hosts get 1-7 open ports from a catalogue of common network services with the versions seen in
the field (mostly current ones, a tail of old vulnerable ones, Debian/Ubuntu builds, unknown
versions). A deterministic stand-in for the matcher gives each old version a stable set of CVEs
with scores, KEV entries, EPSS, CWEs, summaries and evidence, and marks the ones a Debian build
fixed, so every report section is exercised. Addresses are in 198.18.0.0/15 (RFC 2544
benchmarking range): data only, never scanned.

    python bench/synth.py 10000 out.xml     # write the Nmap XML of 10,000 hosts
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.sax.saxutils import quoteattr

from flanscan._model import (
    ChangeItem,
    ChangeKind,
    ChangeSummary,
    Confidence,
    CvssScore,
    DistributionEvidence,
    Finding,
    FindingStatus,
    HostObservation,
    KevEntry,
    Location,
    MatchEvidence,
    Report,
    ServiceObservation,
    Severity,
    SuppressionRef,
    VulnDbSummary,
    Vulnerability,
)

START = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Product:
    name: str  # Nmap service name
    product: str
    vendor_product: str  # for the CPE
    port: int
    versions: tuple[str | None, ...]  # newest first (None: Nmap found no version)
    extrainfo: tuple[str | None, ...] = (None,)
    weight: float = 1.0


CATALOGUE: tuple[Product, ...] = (
    Product(
        "ssh",
        "OpenSSH",
        "openbsd:openssh",
        22,
        ("9.6p1", "9.2p1", "8.9p1", "8.4p1", "7.9p1", "7.4"),
        ("protocol 2.0", "Debian 2+deb12u3; protocol 2.0", "Ubuntu Linux; protocol 2.0"),
        6,
    ),
    Product(
        "http",
        "nginx",
        "igor_sysoev:nginx",
        80,
        ("1.26.0", "1.24.0", "1.22.1", "1.18.0", "1.14.2", None),
        weight=4,
    ),
    Product(
        "http",
        "Apache httpd",
        "apache:http_server",
        80,
        ("2.4.62", "2.4.59", "2.4.57", "2.4.54", "2.4.49", "2.4.38"),
        ("(Debian)", "(Ubuntu)", "(Red Hat Enterprise Linux)", None),
        3,
    ),
    Product(
        "https",
        "nginx",
        "igor_sysoev:nginx",
        443,
        ("1.26.0", "1.24.0", "1.22.1", "1.18.0"),
        weight=3,
    ),
    Product(
        "postgresql",
        "PostgreSQL DB",
        "postgresql:postgresql",
        5432,
        ("16.4", "15.8", "13.16", "11.22", "9.6.0 - 9.6.24"),
        weight=1,
    ),
    Product("mysql", "MySQL", "mysql:mysql", 3306, ("8.0.39", "5.7.44", "5.5.62"), weight=1),
    Product(
        "redis", "Redis key-value store", "redislabs:redis", 6379, ("7.2.5", "6.0.16", "5.0.7")
    ),
    Product("ftp", "vsftpd", "beasts:vsftpd", 21, ("3.0.5", "3.0.3", "2.3.4"), weight=0.6),
    Product(
        "domain",
        "ISC BIND",
        "isc:bind",
        53,
        ("9.18.28-1~deb12u2", "9.16.50", "9.11.5-P4"),
        weight=0.8,
    ),
    Product("smtp", "Postfix smtpd", "postfix:postfix", 25, (None,), weight=1),
    Product(
        "memcached", "Memcached", "memcached:memcached", 11211, ("1.6.21", "1.5.6"), weight=0.4
    ),
    Product(
        "ms-wbt-server",
        "Microsoft Terminal Services",
        "microsoft:terminal_services",
        3389,
        (None,),
        weight=0.8,
    ),
    Product("snmp", "net-snmp", "net-snmp:net-snmp", 161, ("5.9.3", "5.7.2"), weight=0.5),
    Product(
        "http-proxy",
        "Squid http proxy",
        "squid-cache:squid",
        3128,
        ("6.6", "5.7", "4.13"),
        weight=0.4,
    ),
)

_WEIGHTS = [p.weight for p in CATALOGUE]
_CWES = ("CWE-79", "CWE-787", "CWE-20", "CWE-125", "CWE-416", "CWE-22", "CWE-400", "CWE-190")
_WORDS = (
    "allows remote attackers to cause a denial of service via crafted requests",
    "may lead to arbitrary code execution when a specially crafted packet is processed",
    "results in an out-of-bounds read of heap memory in the protocol parser",
    "permits authentication bypass under certain configurations",
    "discloses sensitive information through an error message",
    "a use-after-free in the connection handling code can be triggered by a remote client",
)


def _address(i: int) -> str:
    return f"198.{18 + ((i >> 16) & 1)}.{(i >> 8) & 255}.{i & 255}"


def synth_hosts(n_hosts: int, seed: int = 2026) -> Iterator[HostObservation]:
    """`n_hosts` hosts up, each with 1-7 open ports from the catalogue, deterministically."""
    rng = random.Random(seed)
    for i in range(1, n_hosts + 1):
        address = _address(i)
        names = (f"host{i}.dc{i % 7}.example.lab",) if rng.random() < 0.7 else ()
        count = min(7, max(1, round(rng.gauss(4, 1.5))))
        chosen = {}
        for product in rng.choices(CATALOGUE, weights=_WEIGHTS, k=count):
            port = product.port
            while port in chosen:
                port += 1000
            chosen[port] = product
        services = []
        for port, product in sorted(chosen.items()):
            # Mostly current versions, a long tail of older ones.
            idx = min(len(product.versions) - 1, int(rng.expovariate(1.6)))
            version = product.versions[idx]
            extrainfo = rng.choice(product.extrainfo)
            cpe = f"cpe:/a:{product.vendor_product}" + (f":{version}" if version else "")
            services.append(
                ServiceObservation(
                    address=address,
                    port=port,
                    protocol="udp" if product.name == "snmp" else "tcp",
                    name=product.name,
                    product=product.product,
                    version=version,
                    extrainfo=extrainfo,
                    method="probed",
                    conf=10,
                    cpes=(cpe,),
                )
            )
        yield HostObservation(address=address, hostnames=names, services=tuple(services))


def write_nmap_xml(hosts: Iterator[HostObservation], path: Path, args: str) -> None:
    """Write hosts as Nmap XML (the subset of elements `nmap -sV -oX` writes for them)."""
    t0 = int(START.timestamp())
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="UTF-8"?>\n')
        out.write(
            f'<nmaprun scanner="nmap" args={quoteattr(args)} start="{t0}" version="7.93" '
            'xmloutputversion="1.05">\n'
        )
        up = 0
        for n, host in enumerate(hosts):
            up += 1
            out.write(f'<host starttime="{t0 + n // 50}" endtime="{t0 + n // 50 + 30}">')
            out.write('<status state="up" reason="syn-ack" reason_ttl="63"/>')
            out.write(f'<address addr="{host.address}" addrtype="ipv4"/><hostnames>')
            for name in host.hostnames:
                out.write(f'<hostname name={quoteattr(name)} type="PTR"/>')
            out.write("</hostnames><ports>")
            for svc in host.services:
                attrs = f"name={quoteattr(svc.name or '')}"
                if svc.product:
                    attrs += f" product={quoteattr(svc.product)}"
                if svc.version:
                    attrs += f" version={quoteattr(svc.version)}"
                if svc.extrainfo:
                    attrs += f" extrainfo={quoteattr(svc.extrainfo)}"
                out.write(
                    f'<port protocol="{svc.protocol}" portid="{svc.port}">'
                    '<state state="open" reason="syn-ack" reason_ttl="63"/>'
                    f'<service {attrs} method="probed" conf="10">'
                )
                for cpe in svc.cpes:
                    out.write(f"<cpe>{cpe}</cpe>")
                out.write("</service></port>")
            out.write("</ports></host>\n")
        end = t0 + 3600
        out.write(
            f'<runstats><finished time="{end}" timestr="" elapsed="3600" exit="success"/>'
            f'<hosts up="{up}" down="{up // 3}" total="{up + up // 3}"/></runstats></nmaprun>\n'
        )


class SynthAnalyzer:
    """A deterministic stand-in for the matcher: old versions get stable, realistic CVEs."""

    def __init__(self, seed: int = 7) -> None:
        self.seed = seed
        self._cache: dict[tuple[str, str | None, str | None], list[Finding]] = {}

    def _vulns(self, product: Product, version: str | None) -> list[Vulnerability]:
        rng = random.Random(f"{self.seed}:{product.product}:{version}")
        idx = product.versions.index(version) if version in product.versions else 0
        count = 0 if idx == 0 else rng.randint(2 * idx, 7 * idx)
        vulns = []
        for k in range(count):
            year = 2016 + rng.randint(0, 9)
            cve = f"CVE-{year}-{rng.randint(1000, 49999)}"
            score = round(
                rng.choice((rng.uniform(3, 6.9), rng.uniform(7, 8.9), rng.uniform(9, 10))), 1
            )
            kev = (
                KevEntry(
                    f"{year + 1}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}", rng.random() < 0.3
                )
                if rng.random() < 0.06
                else None
            )
            fixed_in = product.versions[max(0, idx - 1)] or "the fix"
            vulns.append(
                Vulnerability(
                    id=cve,
                    summary=f"{product.product} before {fixed_in} "
                    f"{rng.choice(_WORDS)}; {rng.choice(_WORDS)}.",
                    published=f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T10:15:00",
                    cvss=CvssScore(score, rng.choice(("3.1", "3.1", "3.0", "2.0", "4.0"))),
                    cwes=(rng.choice(_CWES),),
                    kev=kev,
                    epss=round(rng.random() ** 4, 5),
                    epss_percentile=round(rng.random(), 5),
                )
                if k % 17
                else Vulnerability(id=cve, summary="Awaiting analysis.", published=f"{year}-01-01")
            )
        return vulns

    def __call__(self, host: HostObservation, svc: ServiceObservation) -> Sequence[Finding]:
        key = (svc.product, svc.version, svc.extrainfo)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        product = next((p for p in CATALOGUE if p.product == svc.product), None)
        findings: list[Finding] = []
        if product is not None:
            debian_build = bool(svc.extrainfo and "deb12" in svc.extrainfo)
            distro_only = bool(svc.extrainfo and svc.extrainfo.startswith("("))
            for n, vuln in enumerate(self._vulns(product, svc.version)):
                evidence = (
                    MatchEvidence(
                        criteria=f"cpe:2.3:a:{product.vendor_product}:*:*:*:*:*:*:*:*",
                        version_range=f"< {product.versions[0]}",
                        detected_version=svc.version,
                        detected_cpe=svc.cpes[0] if svc.cpes else None,
                        banner=f"{svc.product} {svc.version or ''}".strip(),
                    ),
                )
                status = FindingStatus.CONFIRMED
                dist = None
                rule = None
                if debian_build and n % 2 == 0:
                    status = FindingStatus.FIXED_BY_DISTRIBUTION
                    dist = DistributionEvidence(
                        "debian",
                        "bookworm",
                        "openssh",
                        f"1:{svc.version}-2+deb12u3",
                        "Debian security tracker",
                        "resolved",
                        f"1:{svc.version}-2+deb12u2",
                    )
                elif distro_only:
                    status = FindingStatus.UNCONFIRMED_DISTRIBUTION
                    dist = DistributionEvidence("debian", note="banner carries no package revision")
                elif n % 23 == 5:
                    status = FindingStatus.SUPPRESSED
                    rule = SuppressionRef("suppressions.yml:12", "accepted risk", "secops")
                findings.append(Finding(vuln, Confidence.EXACT, status, evidence, dist, rule))
            if svc.version is None:
                for vuln in self._vulns(product, product.versions[-1])[:40]:
                    findings.append(Finding(vuln, Confidence.PRODUCT_ONLY))
        self._cache[key] = findings
        return findings


def synth_changes(report: Report) -> ChangeSummary:
    """A "Changes since" section with a few hundred items drawn from the report."""
    items = []
    for svc in report.services[:40]:
        for sf in svc.open_findings[:3]:
            for loc in sf.locations[:3]:
                items.append(
                    ChangeItem(
                        ChangeKind.NEW_FINDING,
                        f"{sf.finding.id} is new on {loc.label}",
                        location=loc,
                        vuln_id=sf.finding.id,
                        severity=sf.finding.severity,
                    )
                )
    items.append(
        ChangeItem(ChangeKind.HOST_DISAPPEARED, "host no longer answers", address=_address(70000))
    )
    items.append(
        ChangeItem(
            ChangeKind.VERSION_CHANGED,
            "OpenSSH upgraded",
            location=Location(_address(3), 22, "tcp"),
            old="8.9p1",
            new="9.6p1",
            severity=Severity.HIGH,
        )
    )
    return ChangeSummary("run-previous", START - timedelta(days=7), tuple(items))


def synth_report(n_hosts: int, workdir: Path) -> Report:
    """A Report of `n_hosts` hosts built from synthetic Nmap XML by the real parser and builder."""
    from dataclasses import replace

    from flanscan._pipeline import report_from_files

    workdir.mkdir(parents=True, exist_ok=True)
    xml = workdir / f"synth-{n_hosts}.xml"
    if not xml.exists():
        write_nmap_xml(synth_hosts(n_hosts), xml, "nmap -sS -sV --top-ports 1000 198.18.0.0/15")
    report = report_from_files(
        [xml],
        analyze=SynthAnalyzer(),
        vulndb=VulnDbSummary(
            "/var/cache/flanscan/vulndb.sqlite",
            302_114,
            (
                ("NVD CVE 2.0", "2026-11-21"),
                ("CISA KEV", "2026-11-21"),
                ("FIRST EPSS", "2026-11-21"),
            ),
            "2026-11-21T06:00:00+00:00",
        ),
        vulndb_note=None,
        notes=("suppression rule suppressions.yml:30 matched nothing (unused)",),
    )
    return replace(report, changes=synth_changes(report))


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    target = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(f"synth-{n}.xml")
    write_nmap_xml(synth_hosts(n), target, "nmap -sS -sV --top-ports 1000 198.18.0.0/15")
    print(target)
