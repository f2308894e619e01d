"""The sources beyond NVD configurations, on the real records of ../shared/cve-sources/.

Every pitfall the folder's README names is a test here, through the real import (`import_paths`)
and the real matcher over the SQLite database it builds:
- CVE-2024-1737: CISA ADP pairs start and end versions of different BIND branches;
- CVE-2024-40898: Windows-only, which only the override's `microsoft:windows` node says;
- CVE-2025-21605: the CNA range ignores Redis's fixed backport branches, the override splits them;
- CVE-2024-7347 / CVE-2025-23419: nginx `changes` points per release branch, `lessThan: "*"`;
- CVE-2024-6409: upstream OpenSSH unaffected (later record), Debian `<not-affected>`;
- free-text ranges (GitHub's CNA), `versionType` wrong (PostgreSQL "rpm"), BIND -S1 editions,
  OpenSSH p levels, four-part Dovecot versions;
- records that say nothing usable (`n/a / n/a`), and the newer `dateUpdated` winning.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SHARED

from flanscan._match import Matcher
from flanscan._match.aliases import alias_by_key
from flanscan._match.cve5 import adp_entry_is_sane
from flanscan._model import Finding, MatchSource, ServiceObservation, SourceConfidence
from flanscan._vulndb import VulnDb, import_paths

SOURCES = SHARED / "cve-sources"
CVELIST = SOURCES / "cvelistV5"
VULNRICHMENT = SOURCES / "vulnrichment"
OVERRIDES = SOURCES / "nvd-data-overrides"
NVD = SHARED / "nvd-sample" / "nvdcve-2.0-sample.json.gz"


@pytest.fixture(scope="session", autouse=True)
def _sources_present() -> None:
    if not SOURCES.is_dir() or not NVD.is_file():
        pytest.skip(f"{SOURCES} or the NVD sample is missing")


def debian_list(path: Path, cves: list[str] | None = None) -> Path:
    """A `data/CVE/list` excerpt rebuilt from the tracker's verbatim `Original` lines."""
    lines: list[str] = []
    for file in sorted((SOURCES / "debian-tracker" / "CVE").glob("*.json")):
        record = json.loads(file.read_text())
        if cves is not None and record["Header"]["ID"] not in cves:
            continue
        lines.append(record["Header"]["Original"])
        lines.extend("\t" + note["Original"] for note in record["Annotations"])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def build(tmp: Path, *paths: Path, name: str = "v.db") -> VulnDb:
    db = tmp / name
    import_paths(db, list(paths))
    return VulnDb.open(db)


def service(
    product: str,
    version: str,
    cpe: str,
    extrainfo: str | None = None,
    ostype: str | None = None,
) -> ServiceObservation:
    return ServiceObservation(
        "127.0.0.1", 1, "tcp", product=product, version=version, cpes=(cpe,),
        extrainfo=extrainfo, ostype=ostype,
    )  # fmt: skip


def findings(db: VulnDb, svc: ServiceObservation) -> dict[str, Finding]:
    """Every tier's findings, the `possible` one included (as `--min-confidence possible`)."""
    return {f.id: f for f in Matcher(db).match(svc, include_possible=True)}


def nginx(version: str) -> ServiceObservation:
    return service("nginx", version, f"cpe:/a:igor_sysoev:nginx:{version}")


def redis(version: str) -> ServiceObservation:
    return service("Redis key-value store", version, f"cpe:/a:redislabs:redis:{version}")


def openssh(version: str, extra: str = "") -> ServiceObservation:
    upstream = version.split()[0]
    return service("OpenSSH", version + extra, f"cpe:/a:openbsd:openssh:{upstream}")


def bind(version: str) -> ServiceObservation:
    return service("ISC BIND", version, f"cpe:/a:isc:bind:{version.split('-')[0]}")


@pytest.fixture(scope="module")
def full(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VulnDb]:
    """NVD sample + cvelistV5 + vulnrichment + overrides + Debian list, in one import."""
    tmp = tmp_path_factory.mktemp("full")
    with build(tmp, NVD, CVELIST, VULNRICHMENT, OVERRIDES, debian_list(tmp / "list")) as db:
        yield db


@pytest.fixture(scope="module")
def cve5_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VulnDb]:
    """NVD sample + CVE 5 records, no overrides: the CNA and ADP tiers decide."""
    tmp = tmp_path_factory.mktemp("cve5")
    with build(tmp, NVD, CVELIST, VULNRICHMENT) as db:
        yield db


# --------------------------------------------------------------------------- the lab's CVEs


def test_the_lab_services_get_the_cves_the_records_state(full: VulnDb) -> None:
    ssh = findings(full, openssh("9.2p1", " Debian 2+deb12u10"))
    assert ssh["CVE-2025-32728"].match_source is MatchSource.OVERRIDE
    assert ssh["CVE-2025-32728"].source_confidence is SourceConfidence.HIGH
    assert ssh["CVE-2025-32728"].evidence[0].record == (
        "nvd-data-overrides data/2025/CVE-2025-32728.json (2025-04-10)"
    )
    web = findings(full, nginx("1.22.1"))
    assert {"CVE-2024-7347", "CVE-2025-23419"} <= web.keys()
    kv = findings(full, redis("7.0.15"))
    assert {"CVE-2024-31227", "CVE-2024-31228", "CVE-2025-21605"} <= kv.keys()
    cache = findings(full, service("Memcached", "1.6.18", "cpe:/a:memcached:memcached:1.6.18"))
    assert cache["CVE-2023-46852"].match_source is MatchSource.ADP
    assert cache["CVE-2023-46852"].source_confidence is SourceConfidence.MEDIUM
    assert cache["CVE-2023-46852"].evidence[0].version_range == "< 1.6.22"
    assert "CISA ADP" in (cache["CVE-2023-46852"].evidence[0].record or "")


def test_without_overrides_the_cna_records_find_them(cve5_only: VulnDb) -> None:
    ssh = findings(cve5_only, openssh("9.2p1"))["CVE-2025-32728"]
    assert ssh.match_source is MatchSource.CNA  # via the CNA's cpeApplicability
    assert "cpeApplicability" in (ssh.evidence[0].record or "")
    web = findings(cve5_only, nginx("1.22.1"))
    assert web["CVE-2024-7347"].match_source is MatchSource.CNA
    assert web["CVE-2024-7347"].evidence[0].criteria == "F5 / NGINX Open Source"
    assert web["CVE-2024-7347"].evidence[0].version_range.startswith(">= 1.5.13")
    assert web["CVE-2025-23419"].match_source is MatchSource.CNA


# --------------------------------------------------------------------------- pitfalls


def test_cve_2024_1737_adp_ranges_spanning_branches_are_refused(cve5_only: VulnDb) -> None:
    record = json.loads((VULNRICHMENT / "2024/1xxx/CVE-2024-1737.json").read_text())
    adp = next(
        c for c in record["containers"]["adp"] if c["providerMetadata"]["shortName"] == "CISA-ADP"
    )
    reason = adp_entry_is_sane(adp["affected"][0], alias_by_key("bind").cpe_names)
    assert reason is not None and "spans release branches" in reason
    # BIND 9.12.3 lies inside ADP's bogus 9.11.4 - 9.16.50 pairing, and in no CNA range.
    assert "CVE-2024-1737" not in findings(cve5_only, bind("9.12.3"))
    assert "CVE-2024-1737" in findings(cve5_only, bind("9.18.27"))


def test_cve_2024_40898_is_windows_only(full: VulnDb) -> None:
    debian = findings(
        full, service("Apache httpd", "2.4.59", "cpe:/a:apache:http_server:2.4.59", "(Debian)")
    )
    assert "CVE-2024-40898" not in debian
    assert "CVE-2024-38474" in debian  # the same host's other httpd CVEs stay
    linux = service("Apache httpd", "2.4.59", "cpe:/a:apache:http_server:2.4.59", ostype="Linux")
    assert "CVE-2024-40898" not in findings(full, linux)
    unknown = findings(full, service("Apache httpd", "2.4.59", "cpe:/a:apache:http_server:2.4.59"))
    conditions = unknown["CVE-2024-40898"].evidence[0].platform_conditions
    assert conditions == ("running on cpe:2.3:o:microsoft:windows:-:*:*:*:*:*:*:*",)
    windows = service(
        "Apache httpd", "2.4.59", "cpe:/a:apache:http_server:2.4.59", ostype="Windows"
    )
    assert "CVE-2024-40898" in findings(full, windows)


def test_cve_2024_40898_adp_cpe_is_not_a_known_product() -> None:
    record = json.loads((VULNRICHMENT / "2024/40xxx/CVE-2024-40898.json").read_text())
    adp = next(
        c for c in record["containers"]["adp"] if c["providerMetadata"]["shortName"] == "CISA-ADP"
    )
    reason = adp_entry_is_sane(adp["affected"][0], alias_by_key("apache-httpd").cpe_names)
    assert reason is not None and "apache:apache_http_server" in reason


def test_cve_2025_21605_override_splits_the_backport_branches(
    full: VulnDb, cve5_only: VulnDb
) -> None:
    # The CNA says ">= 2.6, < 7.4.3": 7.2.8 and 6.2.18 carry the fix, which only the override says.
    assert findings(cve5_only, redis("7.2.8"))["CVE-2025-21605"].match_source is MatchSource.CNA
    assert "CVE-2025-21605" not in findings(full, redis("7.2.8"))
    assert "CVE-2025-21605" not in findings(full, redis("6.2.18"))
    assert "CVE-2025-21605" in findings(full, redis("7.2.7"))
    assert "CVE-2025-21605" in findings(full, redis("7.4.2"))


@pytest.mark.parametrize(
    ("version", "cve_2024_7347", "cve_2025_23419"),
    [
        ("1.22.1", True, True),
        ("1.26.1", True, True),
        ("1.26.2", False, True),
        ("1.26.3", False, False),
        # vulnrichment's later copy of 7347 moves the 1.27 point from 1.27.0 to 1.27.1; and
        # 1.27.0-1.27.3 stay affected by 23419 although 1.26.3 is fixed.
        ("1.27.0", True, True),
        ("1.27.1", False, True),
        ("1.27.3", False, True),
        ("1.27.4", False, False),
        ("1.29.0", False, False),  # a branch after every fix: fixed ("lessThan: *" not literal)
        ("1.5.12", False, False),  # before the first affected version (23419 starts at 1.11.4)
    ],
)
def test_nginx_changes_are_read_per_release_branch(
    cve5_only: VulnDb, version: str, cve_2024_7347: bool, cve_2025_23419: bool
) -> None:
    found = findings(cve5_only, nginx(version))
    assert ("CVE-2024-7347" in found) is cve_2024_7347
    assert ("CVE-2025-23419" in found) is cve_2025_23419


@pytest.mark.parametrize("version", ["8.7p1", "9.2p1", "9.7p1"])
def test_cve_2024_6409_is_never_reported_against_upstream_openssh(
    full: VulnDb, cve5_only: VulnDb, version: str
) -> None:
    for db in (full, cve5_only):
        match = Matcher(db).explain(openssh(version))
        assert "CVE-2024-6409" not in {f.id for f in match.findings}
    assert any(
        "CVE-2024-6409 not reported" in n for n in Matcher(full).explain(openssh(version)).notes
    )


def test_cve_2024_6409_older_record_and_debian_alone(tmp_path: Path) -> None:
    # Only the older cvelistV5 copy (Red Hat builds only) and Debian's <not-affected>.
    db = build(tmp_path, CVELIST / "cves/2024/6xxx/CVE-2024-6409.json", debian_list(tmp_path / "l"))
    with db:
        match = Matcher(db).explain(openssh("8.7p1"))
        assert "CVE-2024-6409" not in {f.id for f in match.findings}
        rows = db.unstable_fixes(["openssh"])
        assert ("CVE-2024-6409", "0") in {(r.cve_id, r.fixed_version) for r in rows}


def test_free_text_ranges_of_githubs_cna(cve5_only: VulnDb) -> None:
    # CVE-2024-31227: ">= 7.0.0, < 7.2.6", ">= 7.3.0, < 7.4.1"; 31228 also ">= 2.2.5, < 6.2.16"
    assert "CVE-2024-31227" in findings(cve5_only, redis("7.2.5"))
    assert "CVE-2024-31227" not in findings(cve5_only, redis("7.2.6"))
    assert "CVE-2024-31227" not in findings(cve5_only, redis("6.2.15"))
    assert "CVE-2024-31228" in findings(cve5_only, redis("6.2.15"))
    assert findings(cve5_only, redis("7.2.5"))["CVE-2024-31227"].evidence[0].version_range == (
        ">= 7.0.0, < 7.2.6"
    )


def test_postgresql_rpm_version_type_is_ignored(cve5_only: VulnDb) -> None:
    pg = service("PostgreSQL DB", "16.3", "cpe:/a:postgresql:postgresql:16.3")
    assert "CVE-2024-7348" in findings(cve5_only, pg)  # "16" .. < "16.4", versionType "rpm"
    fixed = service("PostgreSQL DB", "16.4", "cpe:/a:postgresql:postgresql:16.4")
    assert "CVE-2024-7348" not in findings(cve5_only, fixed)


def test_bind_subscription_edition_ranges_match_only_s_banners(cve5_only: VulnDb) -> None:
    # 9.18.28 fixes 1737; "-S1" ranges (9.18.11-S1 .. 9.18.27-S1) are another build.
    assert "CVE-2024-1737" not in findings(cve5_only, bind("9.18.28"))
    s_edition = service("ISC BIND", "9.18.27-S1", "cpe:/a:isc:bind:9.18.27")
    assert "CVE-2024-1737" in findings(cve5_only, s_edition)
    fixed_s = service("ISC BIND", "9.18.28-S1", "cpe:/a:isc:bind:9.18.28")
    assert "CVE-2024-1737" not in findings(cve5_only, fixed_s)


def test_openssh_p_levels(cve5_only: VulnDb) -> None:
    assert "CVE-2025-32728" in findings(cve5_only, openssh("9.9p2"))
    assert "CVE-2025-32728" not in findings(cve5_only, openssh("10.0p1"))
    assert "CVE-2025-32728" in findings(cve5_only, openssh("7.4p1"))
    assert "CVE-2025-32728" not in findings(cve5_only, openssh("7.3p1"))


def test_dovecot_four_part_versions_and_the_ox_spelling(cve5_only: VulnDb) -> None:
    def dovecot(v: str) -> ServiceObservation:
        return service("Dovecot imapd", v, f"cpe:/a:dovecot:dovecot:{v}")

    found = findings(cve5_only, dovecot("2.3.19.1"))["CVE-2024-23185"]
    assert found.match_source is MatchSource.CNA
    assert found.evidence[0].criteria == "Open-Xchange GmbH / OX Dovecot Pro"
    assert "CVE-2024-23185" in findings(cve5_only, dovecot("2.3.21"))
    assert "CVE-2024-23185" not in findings(cve5_only, dovecot("2.3.21.1"))


def test_records_without_usable_data_are_counted_not_matched(cve5_only: VulnDb) -> None:
    figures = next(s for s in cve5_only.status().sources if s.name == "cve5").figures
    # n/a / n/a: CVE-2021-30047, -2023-46852 (CNA; its ADP has data), -2023-48795, -50868, -39929
    assert figures.unusable >= 3
    assert figures.not_understood == 0
    stored = {
        r.cve_id
        for r in cve5_only.affected_candidates(["c:openbsd:openssh", "s:openbsd / openssh"])
    }
    assert "CVE-2023-48795" not in stored


@pytest.mark.parametrize("order", ["cvelist-first", "vulnrichment-first"])
def test_the_newer_date_updated_wins_whatever_the_order(tmp_path: Path, order: str) -> None:
    paths = [CVELIST, VULNRICHMENT] if order == "cvelist-first" else [VULNRICHMENT, CVELIST]
    with build(tmp_path, *paths) as db:
        dates = dict(
            db.connection.execute(
                "SELECT cve_id, date_updated FROM affected_record WHERE source = 'cve5'"
            )
        )
    assert dates["CVE-2024-6409"] == "2024-09-12T19:55:21.601Z"  # vulnrichment's, newer
    assert dates["CVE-2024-1737"] == "2025-02-13T17:32:25.755Z"  # cvelistV5's, newer
    # Imported separately (two calls), the same holds.
    with build(tmp_path, paths[0], name="two.db"):
        pass
    import_paths(tmp_path / "two.db", [paths[1]])
    with VulnDb.open(tmp_path / "two.db") as db:
        again = dict(
            db.connection.execute(
                "SELECT cve_id, date_updated FROM affected_record WHERE source = 'cve5'"
            )
        )
    assert again == dates


def test_ssvc_decision_points_are_kept(full: VulnDb) -> None:
    vuln = full.vulnerabilities(["CVE-2021-30047", "CVE-2024-6409"])
    assert (vuln["CVE-2021-30047"].ssvc_exploitation, vuln["CVE-2021-30047"].ssvc_automatable) == (
        "poc",
        "yes",
    )
    assert vuln["CVE-2024-6409"].ssvc_exploitation == "none"


def test_distribution_derived_upstream_fix_when_no_source_gives_a_range(tmp_path: Path) -> None:
    # Debian alone: unstable fixed CVE-2024-6387 in 1:9.7p1-7, so upstream 9.7p1 has the fix.
    with build(tmp_path, debian_list(tmp_path / "list")) as db:
        found = findings(db, openssh("9.2p1"))
        assert found["CVE-2024-6387"].match_source is MatchSource.DISTRIBUTION
        assert found["CVE-2024-6387"].evidence[0].version_range == (
            "< 9.7p1 (Debian unstable fixed in 1:9.7p1-7)"
        )
        assert "CVE-2024-6387" not in findings(db, openssh("9.8p1"))
        assert "CVE-2024-6409" not in findings(db, openssh("8.7p1"))  # <not-affected>


def test_a_higher_tier_is_never_widened(full: VulnDb) -> None:
    # NVD-analysed CVE-2024-6387 (OpenSSH 8.5p1 - 9.8p1): Debian's unstable fix says nothing more.
    found = findings(full, openssh("9.2p1"))
    assert found["CVE-2024-6387"].match_source is MatchSource.NVD
    # CVE-2023-46852: ADP decides for memcached; Debian's 1.6.22-1 fix is not used instead.
    cache = findings(full, service("Memcached", "1.6.18", "cpe:/a:memcached:memcached:1.6.18"))
    assert cache["CVE-2023-46852"].match_source is MatchSource.ADP


# --------------------------------------------------------------------------- archives


def _zip_tree(src: Path, dest: Path, prefix: str) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(src.rglob("*.json")):
            archive.write(path, f"{prefix}{path.relative_to(src)}")
    return dest


def test_every_archive_shape_imports_alike(tmp_path: Path, cve5_only: VulnDb) -> None:
    repo_zip = _zip_tree(CVELIST, tmp_path / "cvelistV5-main.zip", "cvelistV5-main/")
    inner = _zip_tree(CVELIST / "cves", tmp_path / "cves.zip", "cves/")
    release = tmp_path / "2026-12-05_all_CVEs_at_midnight.zip.zip"
    with zipfile.ZipFile(release, "w") as outer:
        outer.write(inner, "cves.zip")
    vr_tar = tmp_path / "vulnrichment-develop.tar.gz"
    with tarfile.open(vr_tar, "w:gz") as tar:
        tar.add(VULNRICHMENT, "vulnrichment-develop")
    ov_tar = tmp_path / "nvd-data-overrides-main.tar.gz"
    with tarfile.open(ov_tar, "w:gz") as tar:
        tar.add(OVERRIDES, "nvd-data-overrides-main")

    def contents(db: VulnDb) -> set[tuple[str, str, str]]:
        return set(
            db.connection.execute("SELECT cve_id, source, date_updated FROM affected_record")
        )

    for cvelist in (repo_zip, release):
        with build(tmp_path, NVD, cvelist, vr_tar, name=f"{cvelist.name}.db") as db:
            assert contents(db) == contents(cve5_only)
    with build(tmp_path, ov_tar, name="ov.db") as db:
        assert len(contents(db)) == len(list(OVERRIDES.rglob("*.json")))


# --------------------------------------------------------------------------- bad input


def _bad_tree(tmp: Path) -> Path:
    tree = tmp / "tree" / "cves" / "2024" / "1xxx"
    tree.mkdir(parents=True)
    shutil.copy(CVELIST / "cves/2024/1xxx/CVE-2024-1737.json", tree)
    (tree / "CVE-2024-1000.json").write_text('{"dataType": "CVE_RECORD", "dataVersion": "5.1",')
    record = json.loads((CVELIST / "cves/2025/32xxx/CVE-2025-32728.json").read_text())
    old = dict(record, dataVersion="4.0")
    old["cveMetadata"] = dict(record["cveMetadata"], cveId="CVE-2024-1001")
    (tree / "CVE-2024-1001.json").write_text(json.dumps(old))
    hostile = json.loads(json.dumps(record))
    hostile["cveMetadata"]["cveId"] = "CVE-2024-1002"
    hostile["containers"]["cna"]["affected"][0]["versions"][0]["lessThan"] = "9" * 5000
    (tree / "CVE-2024-1002.json").write_text(json.dumps(hostile))
    nested = json.loads(json.dumps(record))
    nested["cveMetadata"]["cveId"] = "CVE-2024-1003"
    nested["containers"]["cna"]["affected"][0]["versions"] = [{"status": "affected"}] * 5
    (tree / "CVE-2024-1003.json").write_text(json.dumps(nested))
    bogus = json.loads(json.dumps(record))
    bogus["cveMetadata"]["cveId"] = "CVE-2024-1004"
    bogus["containers"]["cna"]["affected"][0]["versions"][0]["status"] = "<script>x</script>"
    (tree / "CVE-2024-1004.json").write_text(json.dumps(bogus))
    return tmp / "tree"


def test_malformed_records_are_skipped_counted_and_named(tmp_path: Path) -> None:
    with build(tmp_path, _bad_tree(tmp_path)) as db:
        status = next(s for s in db.status().sources if s.name == "cve5")
        stored = {r[0] for r in db.connection.execute("SELECT cve_id FROM affected_record")}
        assert db.connection.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    assert stored == {"CVE-2024-1737"}
    assert status.figures.not_understood == 5
    issues = "\n".join(status.figures.issues)
    assert "CVE-2024-1000.json (CVE-2024-1000): bad JSON" in issues
    assert "unknown schema version '4.0'" in issues
    assert "lessThan is 5000 characters long" in issues
    assert "a versions item has no version" in issues
    assert "is not affected/unaffected/unknown" in issues


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_truncated_archive_fails_and_keeps_the_previous_database(
    tmp_path: Path, kind: str
) -> None:
    db_path = tmp_path / "v.db"
    import_paths(db_path, [NVD])
    before = db_path.read_bytes()
    if kind == "zip":
        whole = _zip_tree(CVELIST, tmp_path / "whole.zip", "cvelistV5-main/")
    else:
        whole = tmp_path / "whole.tar.gz"
        with tarfile.open(whole, "w:gz") as archive:
            archive.add(OVERRIDES, "nvd-data-overrides-main")
    data = whole.read_bytes()
    cut = tmp_path / f"cut.{kind}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    from flanscan._errors import VulnDbError

    with pytest.raises(VulnDbError, match=r"cut\.(zip|tar).*(damaged|cut short|not a file)"):
        import_paths(db_path, [cut])
    assert db_path.read_bytes() == before


# --------------------------------------------------------------------------- possible tier


def test_description_text_is_the_possible_tier(full: VulnDb) -> None:
    cache = findings(full, service("Memcached", "1.6.18", "cpe:/a:memcached:memcached:1.6.18"))
    possible = cache["CVE-2023-46853"]  # no record but NVD's text: "Memcached before 1.6.22"
    assert possible.match_source is MatchSource.DESCRIPTION
    assert possible.source_confidence is SourceConfidence.POSSIBLE
    assert possible.evidence[0].criteria == "description: 'memcached before 1.6.22'"
    assert "CVE-2023-46853" not in findings(
        full, service("Memcached", "1.6.22", "cpe:/a:memcached:memcached:1.6.22")
    )
    kv = findings(full, redis("7.0.15"))
    assert kv["CVE-2024-31449"].match_source is MatchSource.DESCRIPTION  # fixed per branch
    assert "CVE-2024-31449" not in findings(full, redis("7.2.6"))
    ssh = findings(full, openssh("9.2p1"))
    assert ssh["CVE-2023-48795"].match_source is MatchSource.DESCRIPTION  # "OpenSSH before 9.6"
    assert "CVE-2024-6409" not in ssh  # negative statements beat the text tier too


def test_min_confidence_filters_what_is_reported(full: VulnDb) -> None:
    from flanscan._model import HostObservation
    from flanscan._pipeline import make_analyzer

    svc = service("Memcached", "1.6.18", "cpe:/a:memcached:memcached:1.6.18")
    host = HostObservation("127.0.0.1", services=(svc,))

    def ids(level: str) -> set[str]:
        return {f.id for f in make_analyzer(full, None, level)(host, svc)}

    assert ids("possible") == {"CVE-2023-46852", "CVE-2023-46853"}
    assert ids("medium") == {"CVE-2023-46852"}  # the default: description text left out
    assert ids("high") == set()


# --------------------------------------------------------------------------- the commands


def _flan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flanscan", *args], capture_output=True, text=True, timeout=300
    )


def test_flan_db_import_takes_every_source_in_one_call(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    epss = tmp_path / "epss.csv"
    epss.write_text("cve,epss,percentile\nCVE-2025-32728,0.01,0.5\n")
    kev = SHARED / "nvd-sample" / "known_exploited_vulnerabilities.json"
    proc = _flan(
        "db", "import", "--db", str(db), str(NVD), str(kev), str(epss), str(CVELIST),
        str(VULNRICHMENT), str(OVERRIDES), str(debian_list(tmp_path / "list")),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    status = _flan("db", "status", "--db", str(db))
    assert status.returncode == 0, status.stderr
    out = status.stdout
    assert "tier override: 20 CVEs (20 without NVD configurations)" in out
    assert "tier cna: 21 CVEs" in out and "tier adp: 11 CVEs" in out
    assert "tier distribution: 8 CVEs" in out
    assert "6 without usable affected data; 0 not understood" in out
    doc = json.loads(_flan("db", "status", "--db", str(db), "--json").stdout)
    cve5 = next(s for s in doc["sources"] if s["name"] == "cve5")
    assert cve5["records"] == 23 and cve5["tiers"]["adp"]["cves"] == 11
    assert cve5["data_date"] == "2026-02-10T17:06:50.695Z"  # the newest dateUpdated


def test_bad_records_are_named_by_the_import_and_status(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    proc = _flan("db", "import", "--db", str(db), str(_bad_tree(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert "cve5: 5 records not understood were skipped" in proc.stderr
    assert "CVE-2024-1000.json (CVE-2024-1000): bad JSON" in proc.stderr
    status = _flan("db", "status", "--db", str(db)).stdout
    assert "CVE-2024-1001.json (CVE-2024-1001): unknown schema version" in status


def test_a_truncated_archive_is_one_line_and_exit_2(tmp_path: Path) -> None:
    whole = _zip_tree(CVELIST, tmp_path / "whole.zip", "cvelistV5-main/")
    cut = tmp_path / "cvelistV5.zip"
    cut.write_bytes(whole.read_bytes()[:5000])
    db = tmp_path / "v.db"
    proc = _flan("db", "import", "--db", str(db), str(NVD), str(cut))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert str(cut) in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not db.exists()


# --------------------------------------------------------------------------- history


def test_history_keeps_a_finding_whose_source_changed() -> None:
    """NVD analyses a CVE that an override found before: the same finding, not new plus fixed."""
    import dataclasses
    from datetime import UTC, datetime, timedelta

    from flanscan._history import diff_reports
    from flanscan._model import Report
    from testlab.synthetic import Port, Vuln, make_report

    ports = [
        Port("198.18.0.21", 22, "tcp", "ssh", "OpenSSH", "9.2p1", (Vuln("CVE-2025-32728", 4.3),))
    ]
    t0 = datetime(2026, 3, 1, tzinfo=UTC)

    def with_source(report: Report, source: MatchSource) -> Report:
        services = tuple(
            dataclasses.replace(
                svc,
                findings=tuple(
                    dataclasses.replace(
                        sf, finding=dataclasses.replace(sf.finding, match_source=source)
                    )
                    for sf in svc.findings
                ),
            )
            for svc in report.services
        )
        return dataclasses.replace(report, services=services)

    old = with_source(make_report(ports, start=t0), MatchSource.OVERRIDE)
    new = with_source(make_report(ports, start=t0 + timedelta(days=7)), MatchSource.NVD)
    assert old.services[0].findings[0].finding.match_source is MatchSource.OVERRIDE
    assert diff_reports(old, new).items == ()


def test_record_text_is_escaped_in_every_format(tmp_path: Path) -> None:
    """A hostile archive member name and ADP text reach the evidence: escaped everywhere."""
    from flanscan._model import HostObservation, ScanSummary
    from flanscan._pipeline import make_analyzer
    from flanscan._render import render
    from flanscan._report import build_report

    hostile = "<script>alert(1)</script>\\textbf{x}|=cmd"
    record = json.loads((VULNRICHMENT / "2023/46xxx/CVE-2023-46852.json").read_text())
    archive = tmp_path / "cves.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr(f"cves/2023/{hostile}/CVE-2023-46852.json", json.dumps(record))
    svc = service("Memcached", "1.6.18", "cpe:/a:memcached:memcached:1.6.18")
    host = HostObservation("127.0.0.1", services=(svc,))
    with build(tmp_path, archive) as db:
        analyze = make_analyzer(db, None)
        assert hostile in (analyze(host, svc)[0].evidence[0].record or "")
        report = build_report(
            [host], scan=ScanSummary(), analyze=analyze, vulndb=None, vulndb_note=None
        )
    html = render(report, "html").decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "\\textbf{x}" not in render(report, "tex").decode()
    md = render(report, "md").decode()
    assert "<script>" not in md


def test_a_rejected_cve_5_record_removes_the_cves_data(tmp_path: Path) -> None:
    record = json.loads((CVELIST / "cves/2025/32xxx/CVE-2025-32728.json").read_text())
    record["cveMetadata"] = dict(
        record["cveMetadata"], state="REJECTED", dateUpdated="2099-01-01T00:00:00.000Z"
    )
    rejected = tmp_path / "rejected" / "CVE-2025-32728.json"
    rejected.parent.mkdir()
    rejected.write_text(json.dumps(record))
    db_path = tmp_path / "v.db"
    import_paths(db_path, [CVELIST / "cves/2025/32xxx/CVE-2025-32728.json"])
    with VulnDb.open(db_path) as db:
        assert "CVE-2025-32728" in findings(db, openssh("9.2p1"))
    import_paths(db_path, [rejected])
    with VulnDb.open(db_path) as db:
        assert "CVE-2025-32728" not in findings(db, openssh("9.2p1"))
        assert not db.connection.execute("SELECT count(*) FROM affected_name").fetchone()[0]


def test_the_whole_cve_sources_folder_imports_in_one_call(tmp_path: Path) -> None:
    """Every tree as found in ../shared/cve-sources (vuln-list JSON of the Debian tracker's CVE
    and DSA lists included) with the NVD sample: nothing is misread as a bad record."""
    with build(tmp_path, SOURCES, SHARED / "nvd-sample") as db:
        status = {s.name: s.figures for s in db.status().sources}
        rows = set(
            db.connection.execute(
                "SELECT release, package, cve_id, fixed_version, note FROM distro_fix"
                " WHERE distribution = 'debian' AND package = 'bind9'"
            )
        )
        assert "CVE-2024-7347" in findings(db, nginx("1.22.1"))
    assert all(f.not_understood == 0 for f in status.values())
    # From DSA-5734-1's verbatim lines: the advisory's fixed version for each CVE it names.
    assert ("bookworm", "bind9", "CVE-2024-1737", "1:9.18.28-1~deb12u1", "DSA-5734-1") in rows
    assert ("sid", "bind9", "CVE-2024-1737", "1:9.20.0-1", None) in rows
