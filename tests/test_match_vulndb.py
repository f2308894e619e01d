"""The matcher through the real SQLite database, built from the NVD sample and the KEV catalogue."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_match_support import SAMPLE_NAME, SampleLookup, load_records

from flanscan._match import Matcher, match_service
from flanscan._model import Confidence, MatchSource, ServiceObservation
from flanscan._vulndb import VulnDb, import_paths


@pytest.fixture(scope="module")
def vulndb(nvd_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VulnDb]:
    path = tmp_path_factory.mktemp("matchdb") / "vulndb.sqlite"
    import_paths(
        path,
        [
            nvd_sample / "nvdcve-2.0-sample.json.gz",
            nvd_sample / "known_exploited_vulnerabilities.json",
        ],
    )
    db = VulnDb.open(path)
    yield db
    db.close()


def svc(product: str | None, version: str | None, *cpes: str) -> ServiceObservation:
    return ServiceObservation(
        address="127.0.0.1", port=1, protocol="tcp", product=product, version=version, cpes=cpes
    )


SERVICES = [
    svc("OpenSSH", "9.2p1 Debian 2+deb12u7", "cpe:/a:openbsd:openssh:9.2p1"),
    svc("OpenSSH", "9.8p1", "cpe:/a:openbsd:openssh:9.8p1"),
    svc("OpenSSH", "5.3"),
    svc("nginx", "1.20.0", "cpe:/a:igor_sysoev:nginx:1.20.0"),
    svc("nginx", None, "cpe:/a:igor_sysoev:nginx"),
    svc(
        "Apache httpd",
        "2.4.49",
        "cpe:/a:apache:http_server:2.4.49",
        "cpe:/a:openssl:openssl:1.0.2k",
    ),
    svc("vsftpd", "2.3.4", "cpe:/a:vsftpd:vsftpd:2.3.4"),
    svc(
        "MySQL",
        "5.5.5-10.5.8-MariaDB-1:10.5.8+maria~focal",
        "cpe:/a:mariadb:mariadb:5.5.5-10.5.8-MariaDB-1:10.5.8+maria~focal",
    ),
    svc("MySQL", "5.1.61", "cpe:/a:mysql:mysql:5.1.61"),
    svc(
        "Microsoft IIS httpd",
        "6.0",
        "cpe:/a:microsoft:internet_information_services:6.0",
        "cpe:/o:microsoft:windows",
    ),
    svc("Redis key-value store", None, "cpe:/a:redislabs:redis"),
    svc("PostgreSQL DB", "9.6.0 or later", "cpe:/a:postgresql:postgresql"),
    svc("ISC BIND", "9.18.19-1~deb12u1-Debian", "cpe:/a:isc:bind:9.18.19-1~deb12u1-Debian"),
    svc("Apache Tomcat", "9.0.30", "cpe:/a:apache:tomcat:9.0.30"),
    svc("Jenkins httpd", "2.426.2", "cpe:/a:jenkins:jenkins:2.426.2"),
]


def _shape(findings: list[Any]) -> list[tuple[str, str, tuple[Any, ...]]]:
    return sorted((f.id, f.confidence.value, f.evidence) for f in findings)


@pytest.mark.parametrize("service", SERVICES, ids=[s.banner or s.cpes[0] for s in SERVICES])
def test_same_matches_through_the_database_as_through_the_records(
    vulndb: VulnDb, nvd_sample: Path, service: ServiceObservation
) -> None:
    records = SampleLookup(load_records(nvd_sample / SAMPLE_NAME))
    # Other tiers (tests/test_cve_sources.py) are left out: this compares NVD matching.
    through_db = [f for f in Matcher(vulndb).match(service) if f.match_source is MatchSource.NVD]
    assert _shape(through_db) == _shape(Matcher(records).match(service))


def test_database_findings_carry_scores_and_kev(vulndb: VulnDb, nvd_sample: Path) -> None:
    kev = json.loads((nvd_sample / "known_exploited_vulnerabilities.json").read_text())
    kev_by_id = {v["cveID"]: v for v in kev["vulnerabilities"]}
    found = {
        f.id: f
        for f in match_service(
            svc("Apache httpd", "2.4.49", "cpe:/a:apache:http_server:2.4.49"), vulndb
        )
    }
    finding = found["CVE-2021-41773"]
    assert finding.confidence is Confidence.EXACT
    assert finding.vulnerability.kev is not None
    assert finding.vulnerability.kev.date_added == kev_by_id["CVE-2021-41773"]["dateAdded"]
    assert finding.vulnerability.cvss is not None and finding.vulnerability.summary
    assert "CVE-2023-25690" in found and found["CVE-2023-25690"].vulnerability.kev is None


def test_rejected_and_unanalysed_records_never_match_through_the_database(
    vulndb: VulnDb, nvd_sample: Path
) -> None:
    never = {
        r["id"]
        for r in load_records(nvd_sample / SAMPLE_NAME)
        if r.get("vulnStatus") == "Rejected" or not r.get("configurations")
    }
    rejected = {
        r["id"] for r in load_records(nvd_sample / SAMPLE_NAME) if r.get("vulnStatus") == "Rejected"
    }
    assert "CVE-2023-48795" in never
    for service in SERVICES:
        found = match_service(service, vulndb, include_possible=True)
        assert not {f.id for f in found} & rejected
        # Unanalysed records reach a finding only as `possible` description-text matches.
        assert all(f.match_source is MatchSource.DESCRIPTION for f in found if f.id in never)


def test_ten_thousand_services_reuse_the_caches(vulndb: VulnDb) -> None:
    # Not a timing test (bench/bench_match.py measures); checks the work done is per version.
    matcher = Matcher(vulndb)
    services = [
        ServiceObservation(
            address=f"127.0.{i // 250}.{i % 250}",
            port=22,
            protocol="tcp",
            product="OpenSSH",
            version=f"9.{i % 7}p1",
            cpes=(f"cpe:/a:openbsd:openssh:9.{i % 7}p1",),
        )
        for i in range(10_000)
    ]
    results = [matcher.match(s) for s in services]
    assert len(matcher._results) == 7
    assert results[0] == results[7] and results[0] is not results[7]
