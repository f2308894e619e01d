"""Every entry of the alias table, checked against what Nmap emits and what the NVD records say.

- Nmap's side: the CPE names and product names an entry lists come from the installed Nmap's
  `nmap-service-probes` (names from other Nmap releases are listed in OTHER_RELEASES).
- NVD's side: the entry's current NVD name is the one the sample's records use.
- Through the table: for each Nmap name of each entry, a service named that way matches a real
  record whose configuration lists the product, at a version picked from that record.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from test_match_support import SampleLookup

from flanscan._match import match_service
from flanscan._match.aliases import (
    ALIASES,
    ProductAlias,
    alias_for_cpe,
    alias_for_product_name,
    alias_for_version_text,
)
from flanscan._model import Confidence, ServiceObservation

PROBES = Path("/usr/share/nmap/nmap-service-probes")

# Nmap names not in Nmap 7.93's probes file, with where they come from.
OTHER_RELEASES = {
    "microsoft:iis": "Nmap before 7.10 (Microsoft-IIS matches wrote cpe:/a:microsoft:iis:$1)",
    "beasts:vsftpd": "other Nmap releases and OpenVAS name vsftpd beasts:vsftpd",
    "nginx:nginx": "other scanners' CPE for nginx; harmless to accept",
    "f5:nginx": "the NVD's own name, accepted when a CPE is already in NVD form",
    "redis:redis": "the NVD's own name, accepted when a CPE is already in NVD form",
}


@pytest.fixture(scope="module")
def probes() -> str:
    if not PROBES.is_file():
        pytest.skip(f"{PROBES} is missing (nmap not installed)")
    return PROBES.read_text(encoding="latin-1")


# Entries Nmap can name. A registry entry without Nmap names (Valkey, a fork Nmap reports as
# Redis) exists so that other sources' names for it never fall into another product's entry;
# tests/test_registry.py checks those.
NMAP_NAMED = [a for a in ALIASES if a.nmap_cpes or a.nmap_products]
ids = [a.key for a in NMAP_NAMED]


@pytest.mark.parametrize("alias", NMAP_NAMED, ids=ids)
def test_nmap_names_are_what_nmap_emits(alias: ProductAlias, probes: str) -> None:
    for name in alias.nmap_cpes:
        if name in OTHER_RELEASES:
            continue
        assert f"cpe:/a:{name}" in probes, name
    product_names = set(re.findall(r" p/([^/]+)/", probes))
    matched = {p for p in product_names if alias.names_product(p)}
    assert matched, f"no Nmap product name matches {alias.nmap_products}"


@pytest.mark.parametrize("alias", NMAP_NAMED, ids=ids)
def test_current_nvd_name_is_the_one_the_records_use(
    alias: ProductAlias, records: dict[str, dict[str, Any]]
) -> None:
    vendor, product = alias.nvd_names[0]
    prefix = f"cpe:2.3:a:{vendor}:{product}:"
    assert any(
        m["criteria"].startswith(prefix)
        for r in records.values()
        for c in r.get("configurations", [])
        for n in c["nodes"]
        for m in n["cpeMatch"]
    )


def _pick(records: dict[str, dict[str, Any]], vendor: str, product: str) -> tuple[str, str, str]:
    """(CVE id, criteria, a version inside it) from a plain configuration naming the product."""
    prefix = f"cpe:2.3:a:{vendor}:{product}:"
    for cve_id, rec in sorted(records.items()):
        for conf in rec.get("configurations", []):
            if conf.get("operator") == "AND":
                continue
            for n in conf["nodes"]:
                for m in n["cpeMatch"]:
                    f = m["criteria"].split(":")
                    if not m["vulnerable"] or not m["criteria"].startswith(prefix):
                        continue
                    if f[6] != "*" or any(x not in ("*", "-") for x in f[7:]):
                        continue
                    below = m.get("versionEndExcluding", "")
                    if re.fullmatch(r"\d+(\.\d+)*\.[1-9]\d*", below):
                        head, last = below.rsplit(".", 1)
                        below = f"{head}.{int(last) - 1}"  # just under an excluded end
                    candidates = (
                        [f[5]]
                        if f[5] != "*"
                        else [
                            m.get("versionEndIncluding"),
                            m.get("versionStartIncluding"),
                            below,
                        ]
                    )
                    for v in candidates:
                        if v and re.fullmatch(r"\d+(\.\d+)+", v):
                            return cve_id, m["criteria"], v
    raise AssertionError(f"no usable record for {vendor}:{product}")


def _version_text(alias: ProductAlias, version: str) -> str:
    if alias.key == "mariadb":  # how MariaDB greets: 10.x behind a 5.5.5- prefix
        return (
            f"5.5.5-{version}-MariaDB-0+deb12u1"
            if version.startswith("1")
            else f"{version}-MariaDB"
        )
    return version


def _product_name(alias: ProductAlias, probes_text: str | None) -> str:
    """An Nmap product name for the entry (from the probes file when installed)."""
    if probes_text is not None:
        for p in sorted(set(re.findall(r" p/([^/]+)/", probes_text))):
            if alias.names_product(p):
                return p
    return alias.nmap_products[0].strip("^$").replace("\\", "")


@pytest.mark.parametrize("alias", NMAP_NAMED, ids=ids)
def test_each_nmap_name_reaches_a_real_record(
    alias: ProductAlias, records: dict[str, dict[str, Any]], lookup: SampleLookup
) -> None:
    vendor, product = alias.nvd_names[0]
    cve_id, criteria, version = _pick(records, vendor, product)
    text = _version_text(alias, version)
    probes_text = PROBES.read_text(encoding="latin-1") if PROBES.is_file() else None
    services = [
        ServiceObservation(
            address="127.0.0.1",
            port=1,
            protocol="tcp",
            product=_product_name(alias, probes_text),
            version=text,
            cpes=(f"cpe:/a:{name}:{text}",),
        )
        for name in alias.nmap_cpes
    ]
    # And by product name alone, as older Nmap XML has it (no <cpe>).
    services.append(
        ServiceObservation(
            address="127.0.0.1",
            port=1,
            protocol="tcp",
            product=_product_name(alias, probes_text),
            version=text,
        )
    )
    for service in services:
        found = {f.id: f for f in match_service(service, lookup)}
        assert cve_id in found, (service.cpes, service.product, text)
        assert found[cve_id].confidence is Confidence.EXACT
        assert criteria in {e.criteria for e in found[cve_id].evidence}
        ev = next(e for e in found[cve_id].evidence if e.criteria == criteria)
        source = service.cpes[0][7:].rsplit(":", 1)[0] if service.cpes else None
        if alias.key == "mariadb":
            assert ev.alias is not None and ev.alias.endswith(f"= NVD {vendor}:{product} {version}")
        elif source != f"{vendor}:{product}":
            assert ev.alias is not None and ev.alias.endswith(f"= NVD {vendor}:{product}")
        else:
            assert ev.alias is None


def test_lookups_by_name() -> None:
    assert alias_for_cpe("igor_sysoev", "nginx") is alias_for_cpe("f5", "nginx")
    assert alias_for_cpe("Microsoft", "IIS") is alias_for_cpe(
        "microsoft", "internet_information_server"
    )
    assert alias_for_cpe("example", "unknown") is None
    assert alias_for_product_name("Redis key-value store") is alias_for_cpe("redis", "redis")
    assert alias_for_product_name("Apache Tomcat/Coyote JSP engine") is None  # not Tomcat's version
    assert alias_for_version_text("5.5.5-10.11.6-MariaDB-0+deb12u1") is alias_for_cpe(
        "mariadb", "mariadb"
    )
    assert alias_for_version_text("8.0.32") is None


def test_table_has_no_duplicate_names() -> None:
    nmap = [n for a in ALIASES for n in a.nmap_cpes]
    nvd = [n for a in ALIASES for n in a.nvd]
    assert len(nmap) == len(set(nmap)) and len(nvd) == len(set(nvd))
