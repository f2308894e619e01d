"""Matching rules, each on real NVD records from ../shared/nvd-sample.

Expected results are read from the records (criteria, bounds, platform entries) where possible;
`simple_oracle` recomputes, independently of the matcher, which records apply to a plain
numeric version, and the matcher must agree with it on every product of the sample.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_match_support import SAMPLE_NAME, SampleLookup, load_records

from flanscan._lookup import CveConfigurations
from flanscan._match import Matcher, match_service
from flanscan._model import Confidence, Finding, ServiceObservation

Record = dict[str, Any]


def svc(
    product: str | None, version: str | None, *cpes: str, extrainfo: str | None = None
) -> ServiceObservation:
    return ServiceObservation(
        address="127.0.0.1",
        port=1,
        protocol="tcp",
        product=product,
        version=version,
        extrainfo=extrainfo,
        cpes=cpes,
    )


def by_id(findings: list[Finding]) -> dict[str, Finding]:
    return {f.id: f for f in findings}


def vulnerable_entries(record: Record, vendor: str, product: str) -> list[dict[str, Any]]:
    prefix = f"cpe:2.3:a:{vendor}:{product}:"
    return [
        m
        for conf in record.get("configurations", [])
        for node in conf["nodes"]
        for m in node["cpeMatch"]
        if m["vulnerable"] and m["criteria"].startswith(prefix)
    ]


def bounds_text(m: dict[str, Any]) -> str:
    """The range as the issue writes it, built from the record's own fields."""
    parts = []
    for key, op in (
        ("versionStartIncluding", ">="),
        ("versionStartExcluding", ">"),
        ("versionEndIncluding", "<="),
        ("versionEndExcluding", "<"),
    ):
        if key in m:
            parts.append(f"{op} {m[key]}")
    return ", ".join(parts)


# --------------------------------------------------------------------------- an independent oracle


def _num(v: str) -> tuple[int, ...] | None:
    try:
        t = tuple(int(p) for p in v.split("."))
    except ValueError:
        return None
    return t + (0,) * (6 - len(t))


def simple_oracle(
    recs: dict[str, Record], names: set[tuple[str, str]], version: str, update: str | None
) -> set[str]:
    """Records whose configurations make `version` (plain numeric, optional NVD update) of the
    product vulnerable: a deliberately plain reading of the NVD rules, for cross-checking."""
    mine = _num(version)
    assert mine is not None
    out = set()
    for cve_id, rec in recs.items():
        if rec.get("vulnStatus") == "Rejected":
            continue
        for conf in rec.get("configurations", []):
            for node in conf["nodes"]:
                for m in node["cpeMatch"]:
                    f = m["criteria"].split(":")
                    if not m["vulnerable"] or f[2] != "a" or (f[3], f[4]) not in names:
                        continue
                    ver, upd = f[5], f[6]
                    if upd == "-" and update is not None:
                        continue
                    if upd not in ("*", "-") and upd != update:
                        continue
                    if ver == "-":
                        continue
                    if ver != "*":
                        if _num(ver) != mine:
                            continue
                    ok = True
                    for key, allowed in (
                        ("versionStartIncluding", lambda a, b: a >= b),
                        ("versionStartExcluding", lambda a, b: a > b),
                        ("versionEndIncluding", lambda a, b: a <= b),
                        ("versionEndExcluding", lambda a, b: a < b),
                    ):
                        if key in m:
                            bound = _num(m[key])
                            if bound is None or not allowed(mine, bound):
                                ok = False
                    if ok:
                        out.add(cve_id)
    return out


ORACLE_CASES = [
    # (Nmap product, version text, Nmap CPE, NVD names, NVD version, NVD update)
    ("OpenSSH", "5.3", "openbsd:openssh", {("openbsd", "openssh")}, "5.3", None),
    (
        "OpenSSH",
        "7.2p2 Ubuntu 4ubuntu2.10",
        "openbsd:openssh",
        {("openbsd", "openssh")},
        "7.2",
        "p2",
    ),
    ("OpenSSH", "7.4p1 Debian 10+deb9u7", "openbsd:openssh", {("openbsd", "openssh")}, "7.4", "p1"),
    ("OpenSSH", "8.5p1", "openbsd:openssh", {("openbsd", "openssh")}, "8.5", "p1"),
    ("OpenSSH", "8.5", "openbsd:openssh", {("openbsd", "openssh")}, "8.5", None),
    ("OpenSSH", "9.2p1 Debian 2+deb12u7", "openbsd:openssh", {("openbsd", "openssh")}, "9.2", "p1"),
    ("OpenSSH", "9.3p1", "openbsd:openssh", {("openbsd", "openssh")}, "9.3", "p1"),
    ("OpenSSH", "9.3p2", "openbsd:openssh", {("openbsd", "openssh")}, "9.3", "p2"),
    ("OpenSSH", "9.8", "openbsd:openssh", {("openbsd", "openssh")}, "9.8", None),
    ("OpenSSH", "9.8p1", "openbsd:openssh", {("openbsd", "openssh")}, "9.8", "p1"),
    ("OpenSSH", "9.9p2", "openbsd:openssh", {("openbsd", "openssh")}, "9.9", "p2"),
    ("nginx", "1.4.0", "igor_sysoev:nginx", {("f5", "nginx")}, "1.4.0", None),
    ("nginx", "1.18.0", "igor_sysoev:nginx", {("f5", "nginx")}, "1.18.0", None),
    ("nginx", "1.20.0", "igor_sysoev:nginx", {("f5", "nginx")}, "1.20.0", None),
    ("nginx", "1.22.1", "igor_sysoev:nginx", {("f5", "nginx")}, "1.22.1", None),
    ("nginx", "1.23.1", "igor_sysoev:nginx", {("f5", "nginx")}, "1.23.1", None),
    ("Apache httpd", "2.2.22", "apache:http_server", {("apache", "http_server")}, "2.2.22", None),
    ("Apache httpd", "2.4.49", "apache:http_server", {("apache", "http_server")}, "2.4.49", None),
    ("Apache httpd", "2.4.50", "apache:http_server", {("apache", "http_server")}, "2.4.50", None),
    ("Apache httpd", "2.4.62", "apache:http_server", {("apache", "http_server")}, "2.4.62", None),
    ("vsftpd", "2.3.4", "vsftpd:vsftpd", {("vsftpd_project", "vsftpd")}, "2.3.4", None),
    ("vsftpd", "3.0.3", "vsftpd:vsftpd", {("vsftpd_project", "vsftpd")}, "3.0.3", None),
    ("vsftpd", "3.0.5", "beasts:vsftpd", {("vsftpd_project", "vsftpd")}, "3.0.5", None),
    ("lighttpd", "1.4.53", "lighttpd:lighttpd", {("lighttpd", "lighttpd")}, "1.4.53", None),
    ("lighttpd", "1.4.65", "lighttpd:lighttpd", {("lighttpd", "lighttpd")}, "1.4.65", None),
    ("Squid http proxy", "5.7", "squid-cache:squid", {("squid-cache", "squid")}, "5.7", None),
    ("Squid http proxy", "6.10", "squid-cache:squid", {("squid-cache", "squid")}, "6.10", None),
    ("ISC BIND", "9.18.19-1~deb12u1-Debian", "isc:bind", {("isc", "bind")}, "9.18.19", None),
    ("ISC BIND", "9.16.1-Ubuntu", "isc:bind", {("isc", "bind")}, "9.16.1", None),
    ("Redis key-value store", "6.0.5", "redislabs:redis", {("redis", "redis")}, "6.0.5", None),
    ("Redis key-value store", "7.0.15", "redislabs:redis", {("redis", "redis")}, "7.0.15", None),
    ("Memcached", "1.4.25", "memcached:memcached", {("memcached", "memcached")}, "1.4.25", None),
    ("Memcached", "1.6.9", "memcached:memcached", {("memcached", "memcached")}, "1.6.9", None),
    ("Dovecot imapd", "2.3.7.1", "dovecot:dovecot", {("dovecot", "dovecot")}, "2.3.7.1", None),
    ("MySQL", "5.1.61", "mysql:mysql", {("oracle", "mysql")}, "5.1.61", None),
    ("MySQL", "5.7.16", "mysql:mysql", {("oracle", "mysql")}, "5.7.16", None),
    ("MySQL", "8.0.32-0ubuntu0.22.04.2", "mysql:mysql", {("oracle", "mysql")}, "8.0.32", None),
    (
        "PostgreSQL DB",
        "15.3",
        "postgresql:postgresql",
        {("postgresql", "postgresql")},
        "15.3",
        None,
    ),
    (
        "PostgreSQL DB",
        "16.0",
        "postgresql:postgresql",
        {("postgresql", "postgresql")},
        "16.0",
        None,
    ),
    ("Exim smtpd", "4.91", "exim:exim", {("exim", "exim")}, "4.91", None),
    ("Samba smbd", "4.6.2", "samba:samba", {("samba", "samba")}, "4.6.2", None),
    ("Apache Tomcat", "9.0.30", "apache:tomcat", {("apache", "tomcat")}, "9.0.30", None),
    ("Jenkins httpd", "2.426.2", "jenkins:jenkins", {("jenkins", "jenkins")}, "2.426.2", None),
    (
        "Microsoft IIS httpd",
        "7.5",
        "microsoft:internet_information_services",
        {
            ("microsoft", "internet_information_services"),
            ("microsoft", "internet_information_server"),
        },
        "7.5",
        None,
    ),
]


@pytest.mark.parametrize(
    ("product", "text", "nmap_cpe", "names", "version", "update"),
    ORACLE_CASES,
    ids=[f"{c[0]}-{c[1]}" for c in ORACLE_CASES],
)
def test_exact_matches_agree_with_an_independent_reading_of_the_records(
    lookup: SampleLookup,
    records: dict[str, Record],
    product: str,
    text: str,
    nmap_cpe: str,
    names: set[tuple[str, str]],
    version: str,
    update: str | None,
) -> None:
    cpe_version = text.split()[0]
    found = match_service(svc(product, text, f"cpe:/a:{nmap_cpe}:{cpe_version}"), lookup)
    exact = {f.id for f in found if f.confidence is Confidence.EXACT}
    assert exact == simple_oracle(records, names, version, update)
    assert all(f.confidence is Confidence.EXACT for f in found)  # version known: no guesses


def test_the_oracle_cases_are_not_all_empty(records: dict[str, Record]) -> None:
    hits = [simple_oracle(records, c[3], c[4], c[5]) for c in ORACLE_CASES]
    assert sum(1 for h in hits if h) >= 30


# --------------------------------------------------------------------------- OpenSSH


def test_openssh_9_2p1_regresshion_with_the_records_range(
    lookup: SampleLookup, records: dict[str, Record]
) -> None:
    service = svc(
        "OpenSSH",
        "9.2p1 Debian 2+deb12u7",
        "cpe:/a:openbsd:openssh:9.2p1",
        "cpe:/o:linux:linux_kernel",
        extrainfo="protocol 2.0",
    )
    found = by_id(match_service(service, lookup))
    for cve_id in ("CVE-2024-6387", "CVE-2023-38408"):
        finding = found[cve_id]
        assert finding.confidence is Confidence.EXACT
        ev = finding.evidence[0]
        entry = next(
            m
            for m in vulnerable_entries(records[cve_id], "openbsd", "openssh")
            if m["criteria"] == ev.criteria and bounds_text(m) == ev.version_range
        )
        # 9.2 is inside the entry's bounds, as read from the record itself.
        lo = entry.get("versionStartIncluding")
        hi = entry["versionEndExcluding"]
        assert (lo is None or _num(lo) <= _num("9.2")) and _num("9.2") < _num(hi)
        assert ev.detected_version == "9.2p1"
        assert ev.detected_cpe == "cpe:/a:openbsd:openssh:9.2p1"
        assert ev.banner == "OpenSSH 9.2p1 Debian 2+deb12u7 (protocol 2.0)"
        assert ev.alias is None
    assert found["CVE-2023-38408"].evidence[0].version_range == "< 9.3"
    assert found["CVE-2024-6387"].evidence[0].version_range == ">= 8.6, < 9.8"


def test_openssh_9_8p1_is_not_regresshion(lookup: SampleLookup, records: dict[str, Record]) -> None:
    # The record lists 9.8 without update ("9.8:-") and ranges ending before 9.8.
    entries = vulnerable_entries(records["CVE-2024-6387"], "openbsd", "openssh")
    assert any(m["criteria"].startswith("cpe:2.3:a:openbsd:openssh:9.8:-:") for m in entries)
    assert "CVE-2024-6387" not in by_id(
        match_service(svc("OpenSSH", "9.8p1", "cpe:/a:openbsd:openssh:9.8p1"), lookup)
    )
    # OpenBSD's own sshd says just "9.8": that is the listed version with no update.
    plain = by_id(match_service(svc("OpenSSH", "9.8", "cpe:/a:openbsd:openssh:9.8"), lookup))
    assert plain["CVE-2024-6387"].evidence[0].version_range == "= 9.8 (no update)"


def test_update_field_7_4p1_is_version_7_4_update_p1(lookup: SampleLookup) -> None:
    # CVE-2024-6387 lists "8.5:p1": 8.5p1 matches it, 8.5 (no update) does not.
    p1 = by_id(match_service(svc("OpenSSH", "8.5p1", "cpe:/a:openbsd:openssh:8.5p1"), lookup))
    assert p1["CVE-2024-6387"].evidence[0].criteria.startswith("cpe:2.3:a:openbsd:openssh:8.5:p1:")
    assert p1["CVE-2024-6387"].evidence[0].version_range == "= 8.5p1"
    bare = by_id(match_service(svc("OpenSSH", "8.5", "cpe:/a:openbsd:openssh:8.5"), lookup))
    assert "CVE-2024-6387" not in bare


def test_update_in_criteria_with_a_range(lookup: SampleLookup, records: dict[str, Record]) -> None:
    # CVE-2016-6210: openssh:*:p2 through 7.2 - the update must be p2.
    (entry,) = vulnerable_entries(records["CVE-2016-6210"], "openbsd", "openssh")
    assert entry["criteria"].split(":")[6] == "p2"
    hit = by_id(match_service(svc("OpenSSH", "7.2p2", "cpe:/a:openbsd:openssh:7.2p2"), lookup))
    assert hit["CVE-2016-6210"].evidence[0].version_range == (f"{bounds_text(entry)} (update p2)")
    miss = by_id(match_service(svc("OpenSSH", "7.2p1", "cpe:/a:openbsd:openssh:7.2p1"), lookup))
    assert "CVE-2016-6210" not in miss


def test_through_7_7_covers_7_7p1(lookup: SampleLookup, records: dict[str, Record]) -> None:
    (entry,) = vulnerable_entries(records["CVE-2018-15473"], "openbsd", "openssh")
    assert entry["versionEndIncluding"] == "7.7"
    found = by_id(match_service(svc("OpenSSH", "7.7p1", "cpe:/a:openbsd:openssh:7.7p1"), lookup))
    assert found["CVE-2018-15473"].evidence[0].version_range == "<= 7.7"
    newer = by_id(match_service(svc("OpenSSH", "7.8p1", "cpe:/a:openbsd:openssh:7.8p1"), lookup))
    assert "CVE-2018-15473" not in newer


def test_combined_bound_compares_the_full_version() -> None:
    # The example `< 9.3p2`: NVD writes such bounds with the update; 9.3p1 is inside.
    class One:
        def candidates(self, vendor: str, product: str) -> list[CveConfigurations]:
            if (vendor, product) != ("openbsd", "openssh"):
                return []
            m = {
                "vulnerable": True,
                "criteria": "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*",
                "versionEndExcluding": "9.3p2",
            }
            return [
                CveConfigurations(
                    "CVE-0000-0001",
                    [{"nodes": [{"operator": "OR", "negate": False, "cpeMatch": [m]}]}],
                )
            ]

        def vulnerabilities(self, ids: object) -> dict[str, Any]:
            return {}

    db = One()
    inside = match_service(svc("OpenSSH", "9.3p1", "cpe:/a:openbsd:openssh:9.3p1"), db)
    assert [f.evidence[0].version_range for f in inside] == ["< 9.3p2"]
    assert inside[0].vulnerability.url == "https://nvd.nist.gov/vuln/detail/CVE-0000-0001"
    assert match_service(svc("OpenSSH", "9.3p2", "cpe:/a:openbsd:openssh:9.3p2"), db) == []


# --------------------------------------------------------------------------- nginx, Apache, vsftpd


def test_nginx_from_nmap_igor_sysoev_name(lookup: SampleLookup, records: dict[str, Record]) -> None:
    found = by_id(match_service(svc("nginx", "1.20.0", "cpe:/a:igor_sysoev:nginx:1.20.0"), lookup))
    assert {"CVE-2021-23017", "CVE-2021-3618", "CVE-2022-41741", "CVE-2022-41742"} <= set(found)
    ev = found["CVE-2022-41741"].evidence[0]
    # The record's open_source range: sw_edition is a condition the banner cannot confirm.
    entry = next(
        m
        for m in vulnerable_entries(records["CVE-2022-41741"], "f5", "nginx")
        if m["criteria"] == ev.criteria
    )
    assert entry["criteria"].split(":")[9] == "open_source"
    assert ev.version_range == bounds_text(entry)
    assert "sw_edition open_source" in ev.platform_conditions
    assert ev.alias == "Nmap igor_sysoev:nginx = NVD f5:nginx"


def test_nginx_1_22_1_and_http2_rapid_reset(
    lookup: SampleLookup, records: dict[str, Record]
) -> None:
    (conf,) = records["CVE-2023-44487"]["configurations"]
    assert {m["criteria"] for n in conf["nodes"] for m in n["cpeMatch"]} == {
        "cpe:2.3:a:ietf:http:2.0:*:*:*:*:*:*:*"
    }
    for version in ("1.22.1", "1.25.3"):
        found = by_id(
            match_service(svc("nginx", version, f"cpe:/a:igor_sysoev:nginx:{version}"), lookup)
        )
        assert "CVE-2023-44487" not in found
    unknown = by_id(match_service(svc("nginx", None, "cpe:/a:igor_sysoev:nginx"), lookup))
    assert unknown and "CVE-2023-44487" not in unknown
    # 1.22.1 is past every nginx range in the sample.
    assert match_service(svc("nginx", "1.22.1", "cpe:/a:igor_sysoev:nginx:1.22.1"), lookup) == []


def test_apache_2_4_49_path_traversal(lookup: SampleLookup, records: dict[str, Record]) -> None:
    (entry,) = vulnerable_entries(records["CVE-2021-41773"], "apache", "http_server")
    listed = entry["criteria"].split(":")[5]
    found = by_id(
        match_service(svc("Apache httpd", listed, f"cpe:/a:apache:http_server:{listed}"), lookup)
    )
    assert found["CVE-2021-41773"].evidence[0].version_range == f"= {listed}"
    later = by_id(
        match_service(svc("Apache httpd", "2.4.62", "cpe:/a:apache:http_server:2.4.62"), lookup)
    )
    assert "CVE-2021-41773" not in later and "CVE-2021-42013" not in later


def test_alpaca_matches_vsftpd_and_nginx_per_its_configurations(
    lookup: SampleLookup, records: dict[str, Record]
) -> None:
    rec = records["CVE-2021-3618"]
    (vs,) = vulnerable_entries(rec, "vsftpd_project", "vsftpd")
    (ng,) = vulnerable_entries(rec, "f5", "nginx")
    below_vs = "3.0.3"
    assert _num(below_vs) < _num(vs["versionEndExcluding"])
    for cpe in (f"cpe:/a:vsftpd:vsftpd:{below_vs}", f"cpe:/a:beasts:vsftpd:{below_vs}"):
        found = by_id(match_service(svc("vsftpd", below_vs, cpe), lookup))
        assert found["CVE-2021-3618"].evidence[0].version_range == bounds_text(vs)
    at_vs = vs["versionEndExcluding"]
    assert "CVE-2021-3618" not in by_id(
        match_service(svc("vsftpd", at_vs, f"cpe:/a:vsftpd:vsftpd:{at_vs}"), lookup)
    )
    found = by_id(match_service(svc("nginx", "1.20.2", "cpe:/a:igor_sysoev:nginx:1.20.2"), lookup))
    assert found["CVE-2021-3618"].evidence[0].version_range == bounds_text(ng)


# --------------------------------------------------------------------------- MySQL and MariaDB


def test_cve_2012_2122_for_mysql_and_mariadb(
    lookup: SampleLookup, records: dict[str, Record]
) -> None:
    rec = records["CVE-2012-2122"]
    mysql_versions = {
        m["criteria"].split(":")[5] for m in vulnerable_entries(rec, "oracle", "mysql")
    }
    maria_versions = {
        m["criteria"].split(":")[5] for m in vulnerable_entries(rec, "mariadb", "mariadb")
    }
    assert "5.1.61" in mysql_versions and "5.5.22" in maria_versions
    mysql = by_id(match_service(svc("MySQL", "5.1.61", "cpe:/a:mysql:mysql:5.1.61"), lookup))
    assert mysql["CVE-2012-2122"].evidence[0].alias == "Nmap mysql:mysql = NVD oracle:mysql"
    text = "5.5.22-MariaDB-1~precise"
    maria = by_id(match_service(svc("MySQL", text, f"cpe:/a:mysql:mysql:{text}"), lookup))
    ev = maria["CVE-2012-2122"].evidence[0]
    assert ev.criteria.startswith("cpe:2.3:a:mariadb:mariadb:5.5.22:")
    assert ev.alias == f"Nmap mysql:mysql {text!r} = NVD mariadb:mariadb 5.5.22"
    # A MariaDB version not listed there does not match.
    other = by_id(
        match_service(
            svc("MySQL", "5.5.23-MariaDB", "cpe:/a:mariadb:mariadb:5.5.23-MariaDB"), lookup
        )
    )
    assert "CVE-2012-2122" not in other


def test_mariadb_10_greeting_is_not_mysql_5_5_5(
    lookup: SampleLookup, records: dict[str, Record]
) -> None:
    text = "5.5.5-10.5.8-MariaDB-1:10.5.8+maria~focal"
    found = by_id(match_service(svc("MySQL", text, f"cpe:/a:mariadb:mariadb:{text}"), lookup))
    # CVE-2021-27928 covers MariaDB 10.5 before 10.5.9 ...
    assert found["CVE-2021-27928"].evidence[0].version_range == ">= 10.5, < 10.5.9"
    assert found["CVE-2021-27928"].evidence[0].detected_version == "10.5.8"
    # ... while MySQL 5.5.5 would have been inside CVE-2023-21980's oracle:mysql range.
    mysql_range = vulnerable_entries(records["CVE-2023-21980"], "oracle", "mysql")[0]
    assert (
        _num(mysql_range["versionStartIncluding"])
        <= _num("5.5.5")
        <= _num(mysql_range["versionEndIncluding"])
    )
    assert "CVE-2023-21980" not in found
    assert all(not f.evidence[0].criteria.startswith("cpe:2.3:a:oracle:") for f in found.values())


def test_mariadb_10_11_6_debian_greeting(lookup: SampleLookup, records: dict[str, Record]) -> None:
    text = "5.5.5-10.11.6-MariaDB-0+deb12u1"
    found = match_service(svc("MySQL", text, f"cpe:/a:mariadb:mariadb:{text}"), lookup)
    # No MariaDB range in the sample reaches 10.11; and no MySQL range may be used.
    assert simple_oracle(records, {("mariadb", "mariadb")}, "10.11.6", None) == set()
    assert found == []
    assert lookup.calls and all(name != ("oracle", "mysql") for name in lookup.calls)


# --------------------------------------------------------------------------- never matched


class Forcing:
    """Serves the given records for every product, whatever their state (robustness checks)."""

    def __init__(self, recs: list[Record]) -> None:
        self.recs = recs

    def candidates(self, vendor: str, product: str) -> list[CveConfigurations]:
        return [CveConfigurations(r["id"], r.get("configurations", [])) for r in self.recs]

    def vulnerabilities(self, ids: object) -> dict[str, Any]:
        return {}


SERVICES = [
    svc("OpenSSH", "9.2p1", "cpe:/a:openbsd:openssh:9.2p1"),
    svc("OpenSSH", None, "cpe:/a:openbsd:openssh"),
    svc("Apache httpd", "2.4.49", "cpe:/a:apache:http_server:2.4.49"),
    svc("vsftpd", "2.3.4", "cpe:/a:vsftpd:vsftpd:2.3.4"),
    svc("vsftpd", None, "cpe:/a:vsftpd:vsftpd"),
    svc(
        "Microsoft IIS httpd",
        "7.5",
        "cpe:/a:microsoft:internet_information_services:7.5",
        "cpe:/o:microsoft:windows",
    ),
    svc(
        "Microsoft IIS httpd",
        "8.5",
        "cpe:/a:microsoft:internet_information_services:8.5",
        "cpe:/o:microsoft:windows",
    ),
    svc(
        "Microsoft IIS httpd",
        None,
        "cpe:/a:microsoft:internet_information_services",
        "cpe:/o:microsoft:windows",
    ),
    svc("Microsoft HTTPAPI httpd", "2.0", "cpe:/o:microsoft:windows"),
    svc("Redis key-value store", None, "cpe:/a:redislabs:redis"),
]


def test_records_without_configurations_never_match(
    lookup: SampleLookup, records: dict[str, Record]
) -> None:
    unanalysed = [r for r in records.values() if not r.get("configurations")]
    assert "CVE-2023-48795" in {r["id"] for r in unanalysed}
    for db in (lookup, Forcing(unanalysed)):
        for service in SERVICES:
            ids = {f.id for f in match_service(service, db)}
            assert not ids & {r["id"] for r in unanalysed}


def test_rejected_records_never_match(lookup: SampleLookup, records: dict[str, Record]) -> None:
    rejected = [r for r in records.values() if r.get("vulnStatus") == "Rejected"]
    assert len(rejected) == 3
    for db in (lookup, Forcing(rejected)):
        for service in SERVICES:
            assert not {f.id for f in match_service(service, db)} & {r["id"] for r in rejected}


@pytest.mark.parametrize("cve_id", ["CVE-2007-5962", "CVE-2015-1635"])
def test_os_and_hardware_only_configurations_never_match_an_application(
    lookup: SampleLookup, records: dict[str, Record], cve_id: str
) -> None:
    parts = {
        m["criteria"].split(":")[2]
        for conf in records[cve_id]["configurations"]
        for n in conf["nodes"]
        for m in n["cpeMatch"]
    }
    assert parts <= {"o", "h"}
    for db in (lookup, Forcing([records[cve_id]])):
        for service in SERVICES:
            assert cve_id not in {f.id for f in match_service(service, db)}


# --------------------------------------------------------------------------- platforms (IIS)


def _platform_criteria(record: Record) -> set[str]:
    return {
        m["criteria"]
        for conf in record["configurations"]
        for n in conf["nodes"]
        for m in n["cpeMatch"]
        if not m["vulnerable"]
    }


def test_iis_on_windows_records_the_platform_condition(
    lookup: SampleLookup, records: dict[str, Record]
) -> None:
    (platform,) = _platform_criteria(records["CVE-2017-7269"])
    for nmap_cpe in ("microsoft:internet_information_services", "microsoft:iis"):
        found = by_id(
            match_service(
                svc(
                    "Microsoft IIS httpd",
                    "6.0",
                    f"cpe:/a:{nmap_cpe}:6.0",
                    "cpe:/o:microsoft:windows",
                ),
                lookup,
            )
        )
        ev = found["CVE-2017-7269"].evidence[0]
        assert found["CVE-2017-7269"].confidence is Confidence.EXACT
        assert ev.platform_conditions == (f"running on {platform}",)
        # CVE-2009-3023 names IIS "internet_information_server" 5.0-6.0, on listed Windows.
        old = found["CVE-2009-3023"].evidence[0]
        assert old.criteria.startswith("cpe:2.3:a:microsoft:internet_information_server:")
        assert old.alias == f"Nmap {nmap_cpe} = NVD microsoft:internet_information_server"
        (cond,) = old.platform_conditions
        first_conf_platforms = {
            m["criteria"]
            for m in records["CVE-2009-3023"]["configurations"][0]["nodes"][1]["cpeMatch"]
        }
        assert cond.startswith("running on one of: ")
        assert all(c in cond for c in first_conf_platforms)


def test_iis_7_5_without_platform_configuration(
    lookup: SampleLookup, records: dict[str, Record]
) -> None:
    assert not _platform_criteria(records["CVE-2010-3972"])
    found = by_id(
        match_service(
            svc("Microsoft IIS httpd", "7.5", "cpe:/a:microsoft:internet_information_services:7.5"),
            lookup,
        )
    )
    assert found["CVE-2010-3972"].evidence[0].platform_conditions == ()
    assert found["CVE-2010-3972"].evidence[0].version_range == "= 7.5"


# --------------------------------------------------------------------------- product-only


def _records_naming(records: dict[str, Record], vendor: str, product: str) -> set[str]:
    return {
        i
        for i, r in records.items()
        if r.get("vulnStatus") != "Rejected" and vulnerable_entries(r, vendor, product)
    }


def test_version_unknown_gives_product_only_findings(
    lookup: SampleLookup, records: dict[str, Record]
) -> None:
    service = svc("PostgreSQL DB", "9.6.0 or later", "cpe:/a:postgresql:postgresql")
    found = match_service(service, lookup)
    assert {f.id for f in found} == _records_naming(records, "postgresql", "postgresql")
    assert all(f.confidence is Confidence.PRODUCT_ONLY for f in found)
    assert all(f.evidence[0].detected_version == "9.6.0 or later" for f in found)
    assert match_service(service, lookup, include_product_only=False) == []


def test_nmap_cpe_version_from_a_range_text_is_not_exact(
    lookup: SampleLookup, records: dict[str, Record]
) -> None:
    # Nmap: v/9.6.4 - 9.6.6 or 9.6.13 - 9.6.19/ cpe:/a:postgresql:postgresql:9.6
    service = svc(
        "PostgreSQL DB", "9.6.4 - 9.6.6 or 9.6.13 - 9.6.19", "cpe:/a:postgresql:postgresql:9.6"
    )
    found = match_service(service, lookup)
    assert found and all(f.confidence is Confidence.PRODUCT_ONLY for f in found)
    iis = match_service(
        svc("Microsoft IIS httpd", "3.X", "cpe:/a:microsoft:internet_information_services:3"),
        lookup,
    )
    assert all(f.confidence is Confidence.PRODUCT_ONLY for f in iis)


def test_not_applicable_version_is_product_only(
    lookup: SampleLookup, records: dict[str, Record]
) -> None:
    # CVE-2022-0543: redis:redis:- (no version) running on Debian/Ubuntu.
    (entry,) = vulnerable_entries(records["CVE-2022-0543"], "redis", "redis")
    assert entry["criteria"].split(":")[5] == "-"
    unknown = by_id(
        match_service(svc("Redis key-value store", None, "cpe:/a:redislabs:redis"), lookup)
    )
    ev = unknown["CVE-2022-0543"].evidence[0]
    assert unknown["CVE-2022-0543"].confidence is Confidence.PRODUCT_ONLY
    assert ev.version_range == "no version (-)"
    (cond,) = ev.platform_conditions
    assert all(c in cond for c in _platform_criteria(records["CVE-2022-0543"]))
    known = by_id(
        match_service(svc("Redis key-value store", "6.0.5", "cpe:/a:redislabs:redis:6.0.5"), lookup)
    )
    assert "CVE-2022-0543" not in known
    assert known["CVE-2022-24834"].confidence is Confidence.EXACT


def test_unparsable_version_is_explained_not_guessed(lookup: SampleLookup) -> None:
    service = svc("OpenSSH", "unknown-build", "cpe:/a:openbsd:openssh")
    match = Matcher(lookup).explain(service)
    assert match.findings
    assert all(f.confidence is Confidence.PRODUCT_ONLY for f in match.findings)
    assert any("unknown-build" in n and "product-only" in n for n in match.notes)


def test_uncomparable_nvd_bounds_are_noted(lookup: SampleLookup) -> None:
    # nginx Plus entries use "r22" .. "r27": not comparable with 1.22.0, never matched.
    match = Matcher(lookup).explain(svc("nginx", "1.22.0", "cpe:/a:igor_sysoev:nginx:1.22.0"))
    assert any("r22" in n for n in match.notes)
    assert all("plus" not in f.evidence[0].criteria for f in match.findings)


# --------------------------------------------------------------------------- service shapes


def test_several_cpes_on_one_port(lookup: SampleLookup, records: dict[str, Record]) -> None:
    service = svc(
        "Apache httpd",
        "2.4.49",
        "cpe:/a:apache:http_server:2.4.49",
        "cpe:/a:openssl:openssl:1.0.2k",
    )
    found = by_id(match_service(service, lookup))
    assert found["CVE-2021-41773"].evidence[0].detected_cpe == "cpe:/a:apache:http_server:2.4.49"
    ssl = found["CVE-2022-0778"]
    assert ssl.confidence is Confidence.EXACT
    assert ssl.evidence[0].detected_cpe == "cpe:/a:openssl:openssl:1.0.2k"
    assert ssl.evidence[0].version_range in {
        bounds_text(m) for m in vulnerable_entries(records["CVE-2022-0778"], "openssl", "openssl")
    }
    # A version-less OpenSSL CPE on the same line does not borrow Apache's version.
    unversioned = by_id(
        match_service(
            svc(
                "Apache httpd",
                "2.4.49",
                "cpe:/a:apache:http_server:2.4.49",
                "cpe:/a:openssl:openssl",
            ),
            lookup,
        )
    )
    assert unversioned["CVE-2022-0778"].confidence is Confidence.PRODUCT_ONLY
    assert unversioned["CVE-2021-41773"].confidence is Confidence.EXACT


def test_product_name_without_cpe(lookup: SampleLookup) -> None:
    # Old Nmap XML (the samples): <service name="ssh" product="OpenSSH" version="5.3" .../>
    found = by_id(match_service(svc("OpenSSH", "5.3"), lookup))
    ev = found["CVE-2018-15473"].evidence[0]
    assert ev.detected_cpe is None
    assert ev.alias == "Nmap product 'OpenSSH' = NVD openbsd:openssh"
    assert match_service(svc("Some unknown daemon", "1.0"), lookup) == []


def test_os_cpe_alone_is_not_a_product(lookup: SampleLookup) -> None:
    service = svc("Microsoft HTTPAPI httpd", "2.0", "cpe:/o:microsoft:windows")
    assert match_service(service, lookup) == []


def test_findings_carry_the_database_vulnerability(lookup: SampleLookup) -> None:
    found = by_id(match_service(svc("OpenSSH", "9.2p1", "cpe:/a:openbsd:openssh:9.2p1"), lookup))
    expected = lookup.vulnerabilities(["CVE-2024-6387"])["CVE-2024-6387"]
    assert found["CVE-2024-6387"].vulnerability == expected
    assert expected.cvss is not None and expected.summary


def test_bind_patch_release_and_jenkins_lts(
    lookup: SampleLookup, records: dict[str, Record]
) -> None:
    bind = by_id(
        match_service(
            svc(
                "ISC BIND",
                "9.11.5-P4-5.1+deb10u5-Debian",
                "cpe:/a:isc:bind:9.11.5-P4-5.1+deb10u5-Debian",
            ),
            lookup,
        )
    )
    assert bind["CVE-2020-8617"].evidence[0].version_range == ">= 9.0.0, <= 9.11.18"
    assert bind["CVE-2020-8617"].evidence[0].detected_version == "9.11.5-P4"
    jenkins = by_id(
        match_service(svc("Jenkins httpd", "2.426.2", "cpe:/a:jenkins:jenkins:2.426.2"), lookup)
    )
    evs = jenkins["CVE-2024-23897"].evidence
    assert {e.version_range for e in evs} == {
        bounds_text(m) for m in vulnerable_entries(records["CVE-2024-23897"], "jenkins", "jenkins")
    }
    assert evs[0].platform_conditions == ()  # the unconditional entry comes first
    assert "sw_edition lts" in evs[1].platform_conditions


def test_caches_ask_the_database_once_per_product(nvd_sample: Path) -> None:
    db = SampleLookup(load_records(nvd_sample / SAMPLE_NAME))
    matcher = Matcher(db)
    for i in range(200):
        matcher.match(svc("OpenSSH", f"9.{i % 10}p1", f"cpe:/a:openbsd:openssh:9.{i % 10}p1"))
    assert db.calls == [("openbsd", "openssh")]


def test_order_exact_first_then_by_score(lookup: SampleLookup) -> None:
    found = match_service(
        svc("Apache httpd", "2.4.49", "cpe:/a:apache:http_server:2.4.49", "cpe:/a:openssl:openssl"),
        lookup,
    )
    kinds = [f.confidence for f in found]
    assert kinds == sorted(kinds, key=lambda c: c is not Confidence.EXACT)
    exact_scores = [
        f.vulnerability.cvss.score
        for f in found
        if f.confidence is Confidence.EXACT and f.vulnerability.cvss
    ]
    assert exact_scores == sorted(exact_scores, reverse=True)


# --------------------------------------------------------------------------- hostile input

_SAMPLE = Path(__file__).resolve().parent.parent.parent / "shared" / "nvd-sample" / SAMPLE_NAME
_text = st.text(max_size=60) | st.sampled_from(
    ["9.2p1", "5.5.5-10.5.8-MariaDB", "2.4.49", "9.6.0 or later", "3.X - 4.X", "-", "*", ""]
)
_cpe = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda v, p, ver: f"cpe:/a:{v}:{p}:{ver}",
        st.sampled_from(["openbsd", "igor_sysoev", "mysql", "mariadb", "x", ""]),
        st.sampled_from(["openssh", "nginx", "mysql", "mariadb", "y", ""]),
        _text,
    ),
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), _text), st.one_of(st.none(), _text), st.lists(_cpe, max_size=3))
def test_hostile_service_text_never_crashes(
    product: str | None, version: str | None, cpes: list[str]
) -> None:
    if not _SAMPLE.is_file():
        pytest.skip("NVD sample missing")
    db = _shared_lookup()
    for f in match_service(svc(product, version, *cpes), db):
        assert f.evidence and f.confidence in (Confidence.EXACT, Confidence.PRODUCT_ONLY)


@cache
def _shared_lookup() -> SampleLookup:
    return SampleLookup(load_records(_SAMPLE))


# --------------------------------------------------------------------------- property: oracle


def _numeric_products(records: dict[str, Record]) -> list[tuple[str, str]]:
    """Products whose every vulnerable entry in the sample uses plain numeric versions
    (updates and other attributes may be anything: the oracle reads them too)."""
    ok: dict[tuple[str, str], bool] = {}
    for rec in records.values():
        for conf in rec.get("configurations", []):
            for n in conf["nodes"]:
                for m in n["cpeMatch"]:
                    f = m["criteria"].split(":")
                    if f[2] != "a" or not m["vulnerable"]:
                        continue
                    values = [f[5]] + [
                        m[k]
                        for k in (
                            "versionStartIncluding",
                            "versionStartExcluding",
                            "versionEndIncluding",
                            "versionEndExcluding",
                        )
                        if k in m
                    ]
                    plain = all(v in ("*", "-") or _num(v) is not None for v in values)
                    ok[(f[3], f[4])] = ok.get((f[3], f[4]), True) and plain
    return sorted(k for k, v in ok.items() if v)


@settings(max_examples=250, deadline=None)
@given(st.data())
def test_random_numeric_versions_agree_with_the_oracle(data: st.DataObject) -> None:
    if not _SAMPLE.is_file():
        pytest.skip("NVD sample missing")
    recs = _shared_records()
    products = _numeric_products(recs)
    assert ("openbsd", "openssh") in products and ("apache", "http_server") in products
    vendor, product = data.draw(st.just(("openbsd", "openssh")) | st.sampled_from(products))
    parts = data.draw(st.lists(st.integers(0, 70), min_size=1, max_size=4))
    version = ".".join(map(str, parts))
    # OpenSSH-style patch levels: Nmap's "9.2p1" is the NVD's version 9.2, update p1.
    update = data.draw(st.sampled_from([None, "p1", "p2"])) if product == "openssh" else None
    text = version + (update or "")
    service = svc(None, text, f"cpe:/a:{vendor}:{product}:{text}")
    exact = {f.id for f in match_service(service, _shared_lookup())}
    assert exact == simple_oracle(recs, {(vendor, product)}, version, update)


@cache
def _shared_records() -> dict[str, Record]:
    return {r["id"]: r for r in load_records(_SAMPLE)}
