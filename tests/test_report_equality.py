"""The fast report paths give exactly what the plain ones give, on the same input.

The report builder numbers locations and groups findings by identity, the distribution step is
memoised, and JSON and CSV are streamed with each location serialised once (issue 14). Each is
checked here against a plain reference written the straightforward way (the code they
replaced): every finding hashed as a dict key, every location list sorted by address, the
distribution decided per location, JSON built as one dict, CSV row by row with csv.writer.
The input is real: the captured lab scan, the real Nmap samples and a many-host scan with
Debian/Ubuntu builds, matched against a database built from the real NVD sample.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest

from flanscan._distro import DistributionMemo, apply_distribution, tracker_for
from flanscan._match import match_service
from flanscan._model import (
    Confidence,
    Finding,
    HostObservation,
    Location,
    Report,
    ScanSummary,
    ServiceFinding,
    ServiceObservation,
    ServiceReport,
    SourceConfidence,
)
from flanscan._parse import NmapXmlFile
from flanscan._pipeline import make_analyzer
from flanscan._render import _csv as csv_renderer
from flanscan._render import render, write_report
from flanscan._render._json import report_to_dict
from flanscan._report import (
    build_report,
    finding_sort_key,
    location_sort_key,
    merge_hosts,
    service_key,
    service_sort_key,
)
from flanscan._vulndb import VulnDb, import_paths
from flanscan._vulners import findings_from_vulners

LAB_XML = Path(__file__).parent / "data" / "lab" / "default.xml"

# Banners as Nmap reports them, several per product, Debian/Ubuntu builds among them.
BANNERS = [
    ("ssh", "OpenSSH", "9.2p1 Debian 2+deb12u3", "protocol 2.0", "cpe:/a:openbsd:openssh:9.2p1"),
    ("ssh", "OpenSSH", "8.9p1 Ubuntu 3ubuntu0.10", "Ubuntu Linux; protocol 2.0", None),
    ("ssh", "OpenSSH", "7.4", "protocol 2.0", "cpe:/a:openbsd:openssh:7.4"),
    ("ssh", "OpenSSH", None, None, "cpe:/a:openbsd:openssh"),
    ("http", "nginx", "1.18.0", "Ubuntu", "cpe:/a:igor_sysoev:nginx:1.18.0"),
    ("http", "nginx", "1.22.1", None, "cpe:/a:igor_sysoev:nginx:1.22.1"),
    ("http", "Apache httpd", "2.4.49", "(Debian)", "cpe:/a:apache:http_server:2.4.49"),
    ("http", "Apache httpd", "2.4.57", "(Debian)", "cpe:/a:apache:http_server:2.4.57"),
    ("redis", None, None, None, None),
]


def many_hosts(count: int) -> list[HostObservation]:
    """`count` hosts of 1-4 services each, deterministic, IPv4 and IPv6, some ports twice."""
    hosts = []
    for i in range(count):
        address = f"198.18.{i // 200}.{i % 200 + 1}" if i % 7 else f"fd00:f1a5::{i:x}"
        services = []
        for k in range(1 + i % 4):
            name, product, version, extra, cpe = BANNERS[(i * 3 + k * 5) % len(BANNERS)]
            services.append(
                ServiceObservation(
                    address=address,
                    port=[22, 80, 443, 8080][k] + (1000 if i % 5 == 0 else 0),
                    protocol="udp" if (i + k) % 11 == 0 else "tcp",
                    name=name,
                    product=product,
                    version=version,
                    extrainfo=extra,
                    method="probed",
                    conf=10,
                    cpes=(cpe,) if cpe else (),
                )
            )
        names = (f"h{i}.lab",) if i % 3 else ()
        hosts.append(HostObservation(address=address, hostnames=names, services=tuple(services)))
    return hosts[::-1]  # out of address order, as several workers' files would be


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, nvd_sample: Path) -> Iterable[VulnDb]:
    path = tmp_path_factory.mktemp("equality-db") / "vulndb.sqlite3"
    import_paths(
        path,
        [
            nvd_sample / "nvdcve-2.0-sample.json",
            nvd_sample / "known_exploited_vulnerabilities.json",
        ],
    )
    with VulnDb.open(path) as opened:
        yield opened


def inputs(nmap_samples: Path) -> list[tuple[str, list[HostObservation]]]:
    cases = [("lab", list(NmapXmlFile(LAB_XML).hosts())), ("many", many_hosts(600))]
    samples = []
    for path in sorted(nmap_samples.glob("*.xml")):
        try:
            samples.extend(NmapXmlFile(path).hosts())
        except Exception:  # the hostile and foreign samples are refused, as they must be
            continue
    cases.append(("samples", samples))
    return cases


# --------------------------------------------------------------------------- references


def reference_analyzer(db: VulnDb) -> object:
    """make_analyzer's steps, each done afresh for every location."""
    tracker = tracker_for(db)
    floor = SourceConfidence("medium").rank

    def analyze(host: HostObservation, service: ServiceObservation) -> Sequence[Finding]:
        found = [f for f in match_service(service, db) if f.source_confidence.rank >= floor]
        known = {f.id for f in found}
        found += [f for f in findings_from_vulners(service) if f.id not in known]
        return apply_distribution(host, service, found, tracker)

    return analyze


def reference_build(hosts: list[HostObservation], analyze: object) -> tuple[ServiceReport, ...]:
    """Grouping as it was written before: findings and locations as hashed values."""
    assert callable(analyze)
    groups: dict[object, dict[str, object]] = {}
    for host in merge_hosts(hosts):
        if host.status != "up":
            continue
        for svc in host.services:
            acc = groups.setdefault(
                service_key(svc),
                {"svc": svc, "locations": [], "extra": set(), "findings": {}, "product_only": {}},
            )
            location = Location(svc.address, svc.port, svc.protocol, host.hostnames)
            acc["locations"].append(location)  # type: ignore[attr-defined]
            acc["extra"].add(svc.extrainfo)  # type: ignore[attr-defined]
            for finding in analyze(host, svc):
                kind = (
                    "product_only" if finding.confidence == Confidence.PRODUCT_ONLY else "findings"
                )
                acc[kind].setdefault(finding, []).append(location)  # type: ignore[attr-defined]

    def group(items: dict[Finding, list[Location]]) -> tuple[ServiceFinding, ...]:
        return tuple(
            ServiceFinding(f, tuple(sorted(set(locs), key=location_sort_key)))
            for f, locs in sorted(items.items(), key=lambda kv: finding_sort_key(kv[0]))
        )

    services = []
    for acc in groups.values():
        svc = acc["svc"]
        assert isinstance(svc, ServiceObservation)
        extra = acc["extra"]
        assert isinstance(extra, set)
        services.append(
            ServiceReport(
                name=svc.name or "unknown",
                product=svc.product,
                version=svc.version,
                cpes=svc.cpes,
                locations=tuple(sorted(set(acc["locations"]), key=location_sort_key)),  # type: ignore[call-overload]
                findings=group(acc["findings"]),  # type: ignore[arg-type]
                product_only=group(acc["product_only"]),  # type: ignore[arg-type]
                extrainfo=next(iter(extra)) if len(extra) == 1 else None,
            )
        )
    return tuple(sorted(services, key=service_sort_key))


def reference_json(report: Report) -> bytes:
    def dumps(value: object) -> str:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)

    parts = ["{"]
    items = list(report_to_dict(report).items())
    for i, (key, value) in enumerate(items):
        comma = "," if i < len(items) - 1 else ""
        if isinstance(value, list) and value:
            rows = ",\n  ".join(dumps(v) for v in value)
            parts.append(f" {dumps(key)}: [\n  {rows}\n ]{comma}")
        else:
            parts.append(f" {dumps(key)}: {dumps(value)}{comma}")
    parts.append("}\n")
    return "\n".join(parts).encode("utf-8")


def reference_csv(report: Report) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(csv_renderer.COLUMNS)
    writer.writerows(csv_renderer.rows(report))
    return buffer.getvalue().encode("utf-8")


# --------------------------------------------------------------------------- checks


def test_distribution_memo_decides_as_apply_distribution(db: VulnDb, nmap_samples: Path) -> None:
    tracker = tracker_for(db)
    memo = DistributionMemo(tracker)
    checked = 0
    for _name, hosts in inputs(nmap_samples):
        for host in hosts:
            for svc in host.services:
                findings = list(match_service(svc, db))
                expected = apply_distribution(host, svc, findings, tracker)
                got = memo(host, svc, findings)
                assert got == expected
                again = memo(host, svc, findings)
                assert all(a is b for a, b in zip(again, got, strict=True))  # the same objects
                checked += len(findings)
    assert checked > 1000


@pytest.mark.parametrize("case", ["lab", "many", "samples"])
def test_report_built_as_the_plain_grouping_builds_it(
    case: str, db: VulnDb, nmap_samples: Path
) -> None:
    hosts = dict(inputs(nmap_samples))[case]
    analyze = make_analyzer(db, None)  # what `flan report` uses: memoised steps
    report = build_report(hosts, scan=ScanSummary(), analyze=analyze, vulndb=None, vulndb_note=None)
    expected = reference_build(hosts, reference_analyzer(db))
    assert report.services == expected
    pairs = sum(len(sf.locations) for s in expected for sf in s.findings)
    assert pairs > (1000 if case == "many" else 0)


@pytest.mark.parametrize("case", ["lab", "many", "samples"])
def test_streamed_json_and_csv_are_the_plain_ones(
    case: str, db: VulnDb, nmap_samples: Path
) -> None:
    hosts = dict(inputs(nmap_samples))[case]
    analyze = reference_analyzer(db)
    report = build_report(
        hosts,
        scan=ScanSummary(),
        analyze=analyze,  # type: ignore[arg-type]
        vulndb=None,
        vulndb_note=None,
    )
    for listed in (False, True):
        report = dataclasses.replace(report, list_product_only=listed)
        for fmt, reference in (("json", reference_json), ("csv", reference_csv)):
            stream = io.BytesIO()
            write_report(report, fmt, stream)
            assert stream.getvalue() == reference(report), (case, fmt, listed)
            assert render(report, fmt) == stream.getvalue()
