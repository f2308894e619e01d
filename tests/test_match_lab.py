"""Real Nmap against the lab's real Debian daemons, parsed, then matched against the NVD sample.

For each detected service the exact findings must be what an independent reading of the
sample's records gives for the upstream version the lab's package carries (`simple_oracle`),
and the versions Nmap could not pin (PostgreSQL) must give product-only findings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_match import simple_oracle
from test_match_support import SAMPLE_NAME, SampleLookup, load_records

from flanscan._match import match_service
from flanscan._match.aliases import alias_for_cpe, alias_for_product_name
from flanscan._match.versions import split_update, upstream_version
from flanscan._model import Confidence
from flanscan._parse import NmapXmlFile


@pytest.fixture(scope="module")
def lab_scan(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ports = sorted({s.port for h in lab.hosts for s in h.services})
    out = tmp_path_factory.mktemp("labscan") / "scan.xml"
    result = lab.exec(
        ["nmap", "-sV", "-Pn", "-n", "-p", ",".join(map(str, ports)), "-oX", "-", *lab.targets],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    out.write_text(result.stdout, encoding="utf-8")
    return out


def test_lab_daemons_match_the_records_for_their_versions(lab_scan: Path, nvd_sample: Path) -> None:
    records = {r["id"]: r for r in load_records(nvd_sample / SAMPLE_NAME)}
    db = SampleLookup(load_records(nvd_sample / SAMPLE_NAME))
    checked = exact_total = product_only = 0
    for host in NmapXmlFile(lab_scan).hosts():
        for service in host.services:
            if service.state != "open" or not service.product:
                continue
            found = match_service(service, db)
            app = [c for c in service.cpes if c.startswith("cpe:/a:")]
            alias = (
                alias_for_cpe(*app[0].split(":")[2:4]) if app else None
            ) or alias_for_product_name(service.product)
            if alias is None:
                continue
            checked += 1
            version = upstream_version(service.version).version
            if version is None:  # e.g. PostgreSQL "15.0 - 15.x" style guesses
                assert all(f.confidence is Confidence.PRODUCT_ONLY for f in found)
                product_only += len(found)
                continue
            base, update = split_update(version)
            expected = simple_oracle(records, set(alias.nvd_names), base, update)
            exact = {f.id for f in found if f.confidence is Confidence.EXACT}
            assert exact == expected, (service.product, service.version)
            exact_total += len(exact)
            for f in found:
                assert f.evidence[0].banner == service.banner
    assert checked >= 5  # OpenSSH, nginx, Apache, vsftpd, Redis, memcached, PostgreSQL
    # Debian 12's OpenSSH 9.2p1, vsftpd 3.0.3 and Redis 7.0 are inside ranges of the sample.
    assert exact_total > 0
