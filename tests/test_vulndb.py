"""The vulnerability database built from the real NVD CVE 2.0 sample and KEV catalogue."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from flanscan._errors import VulnDbError
from flanscan._vulndb import VulnDb, db_exists, default_db_path, import_paths, resolve_db_path
from flanscan._vulndb._paths import new_db_path
from flanscan._vulndb.sources.nvd import primary_cvss

EPSS_CSV = (
    "#model_version:v2025.03.14,score_date:2025-08-25T12:55:00Z\n"
    "cve,epss,percentile\n"
    "CVE-2021-41773,0.94432,0.99967\n"
    "CVE-2024-6387,0.37118,0.97026\n"
    "CVE-2023-48795,0.65871,0.98374\n"
)


def sample_records(nvd_sample: Path) -> list[dict[str, Any]]:
    data = json.loads((nvd_sample / "nvdcve-2.0-sample.json").read_text())
    return [item["cve"] for item in data["vulnerabilities"]]


def cpe_pairs(cve: dict[str, Any]) -> set[tuple[str, str]]:
    """(vendor, product) named by any cpeMatch, computed here without the code under test."""
    pairs = set()
    for config in cve.get("configurations", []):
        for node in config["nodes"]:
            for match in node["cpeMatch"]:
                fields = match["criteria"].split(":")
                pairs.add((fields[3], fields[4]))
    return pairs


@pytest.fixture(scope="module")
def sample_db(nvd_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("vulndb")
    epss = tmp / "epss_scores-current.csv.gz"
    epss.write_bytes(gzip.compress(EPSS_CSV.encode()))
    db_path = tmp / "vulndb.sqlite3"
    import_paths(
        db_path,
        [
            nvd_sample / "nvdcve-2.0-sample.json.gz",
            nvd_sample / "known_exploited_vulnerabilities.json",
            epss,
        ],
    )
    return db_path


@pytest.fixture
def db(sample_db: Path) -> VulnDb:
    with VulnDb.open(sample_db) as vdb:
        yield vdb


def test_counts_follow_the_sample(db: VulnDb, nvd_sample: Path) -> None:
    records = sample_records(nvd_sample)
    kept = [r for r in records if r["vulnStatus"] != "Rejected"]
    rejected = [r["id"] for r in records if r["vulnStatus"] == "Rejected"]
    status = db.status()
    assert status.cve_count == len(kept) == 125
    assert status.rejected_count == len(rejected)
    assert status.without_configurations == sum(1 for r in kept if not r.get("configurations"))
    assert db.vulnerabilities(rejected) == {}
    assert set(db.vulnerabilities(r["id"] for r in kept)) == {r["id"] for r in kept}
    kev = json.loads((nvd_sample / "known_exploited_vulnerabilities.json").read_text())
    assert status.kev_count == len(kev["vulnerabilities"])
    names = {s.name: s for s in status.sources}
    assert names["kev"].detail == kev["catalogVersion"]
    assert names["epss"].data_date == "2025-08-25T12:55:00Z"


@pytest.mark.parametrize(
    ("vendor", "product"),
    [("openbsd", "openssh"), ("f5", "nginx"), ("apache", "http_server"), ("isc", "bind")],
)
def test_candidates_match_the_json(db: VulnDb, nvd_sample: Path, vendor: str, product: str) -> None:
    records = sample_records(nvd_sample)
    expected = {r["id"]: r["configurations"] for r in records if (vendor, product) in cpe_pairs(r)}
    got = db.candidates(vendor, product)
    assert {c.cve_id for c in got} == set(expected)
    assert len(got) == len(expected) > 0
    for cand in got:
        assert cand.configurations == expected[cand.cve_id]  # exactly as published
    # Case and CPE escapes do not matter.
    assert [c.cve_id for c in db.candidates(vendor.upper(), product)] == [c.cve_id for c in got]


def test_records_without_configurations_are_stored_but_never_candidates(
    db: VulnDb, nvd_sample: Path
) -> None:
    records = sample_records(nvd_sample)
    unanalysed = [
        r for r in records if r["vulnStatus"] != "Rejected" and not r.get("configurations")
    ]
    assert unanalysed
    vulns = db.vulnerabilities(r["id"] for r in unanalysed)
    assert set(vulns) == {r["id"] for r in unanalysed}
    index = db.connection.execute(
        f"SELECT count(*) FROM cve_product WHERE cve_id IN ({','.join('?' * len(vulns))})",
        list(vulns),
    ).fetchone()[0]
    assert index == 0
    # Terrapin's copy is awaiting analysis: OpenSSH candidates must not guess it in.
    assert "CVE-2023-48795" in vulns
    assert "CVE-2023-48795" not in {c.cve_id for c in db.candidates("openbsd", "openssh")}


def test_kev_fields(db: VulnDb, nvd_sample: Path) -> None:
    kev = json.loads((nvd_sample / "known_exploited_vulnerabilities.json").read_text())
    entry = next(v for v in kev["vulnerabilities"] if v["cveID"] == "CVE-2021-41773")
    vuln = db.vulnerabilities(["CVE-2021-41773"])["CVE-2021-41773"]
    assert vuln.kev is not None
    assert vuln.kev.date_added == entry["dateAdded"]
    assert vuln.kev.due_date == entry["dueDate"]
    assert vuln.kev.vulnerability_name == entry["vulnerabilityName"]
    assert vuln.kev.required_action == entry["requiredAction"]
    assert vuln.kev.known_ransomware_use is (entry["knownRansomwareCampaignUse"] == "Known")
    in_kev = {v["cveID"] for v in kev["vulnerabilities"]}
    for cve_id, v in db.vulnerabilities(r["id"] for r in sample_records(nvd_sample)).items():
        assert (v.kev is not None) == (cve_id in in_kev), cve_id


def test_summary_date_cwe_link(db: VulnDb, nvd_sample: Path) -> None:
    for rec in sample_records(nvd_sample):
        if rec["vulnStatus"] == "Rejected":
            continue
        vuln = db.vulnerabilities([rec["id"]])[rec["id"]]
        english = [d["value"] for d in rec["descriptions"] if d["lang"] == "en"]
        assert vuln.summary == english[0]
        assert vuln.published == rec["published"][:10]
        assert vuln.url == f"https://nvd.nist.gov/vuln/detail/{rec['id']}"
        cwes = {
            d["value"]
            for w in rec.get("weaknesses", [])
            for d in w["description"]
            if d["value"].startswith("CWE-")
        }
        assert set(vuln.cwes) == cwes


def _metric(rec: dict[str, Any], key: str, kind: str) -> dict[str, Any]:
    return next(m for m in rec["metrics"][key] if m["type"] == kind)


@pytest.mark.parametrize(
    ("cve_id", "key", "kind"),
    [
        # v3.1 from a CNA (Secondary) and v3.0 from the NVD (Primary): the primary wins.
        ("CVE-2016-6210", "cvssMetricV30", "Primary"),
        # Two v3.1 scores, CNA 7.5 and NVD 5.9: the NVD's primary one.
        ("CVE-2020-8617", "cvssMetricV31", "Primary"),
        # v3.1 Primary beats v2 Primary (newer version first).
        ("CVE-2019-10149", "cvssMetricV31", "Primary"),
        # Only secondary scores, v4.0 and v3.1: v4.0 preferred.
        ("CVE-2024-7347", "cvssMetricV40", "Secondary"),
        # Only a v2 score.
        ("CVE-2007-5962", "cvssMetricV2", "Primary"),
    ],
)
def test_primary_cvss_choice(
    db: VulnDb, nvd_sample: Path, cve_id: str, key: str, kind: str
) -> None:
    rec = next(r for r in sample_records(nvd_sample) if r["id"] == cve_id)
    metric = _metric(rec, key, kind)
    cvss = db.vulnerabilities([cve_id])[cve_id].cvss
    assert cvss is not None
    assert cvss.score == metric["cvssData"]["baseScore"]
    assert cvss.version == metric["cvssData"]["version"]
    assert cvss.vector == metric["cvssData"]["vectorString"]
    assert cvss.source == metric["source"]


def test_no_score_when_metrics_empty(db: VulnDb, nvd_sample: Path) -> None:
    empty = [
        r["id"]
        for r in sample_records(nvd_sample)
        if r["vulnStatus"] != "Rejected" and not r["metrics"]
    ]
    assert empty
    for v in db.vulnerabilities(empty).values():
        assert v.cvss is None
    assert primary_cvss({}) is None


def test_epss_from_csv(db: VulnDb) -> None:
    vulns = db.vulnerabilities(["CVE-2021-41773", "CVE-2024-6387", "CVE-2016-6210"])
    assert vulns["CVE-2021-41773"].epss == 0.94432
    assert vulns["CVE-2021-41773"].epss_percentile == 0.99967
    assert vulns["CVE-2024-6387"].epss == 0.37118
    assert vulns["CVE-2016-6210"].epss is None  # not in the CSV


def test_summary_for_reports(db: VulnDb, sample_db: Path) -> None:
    summary = db.summary()
    assert summary.path == str(sample_db)
    assert summary.cve_count == 125
    assert [name for name, _ in summary.sources] == ["nvd", "kev", "epss"]
    assert summary.built_at


def test_open_missing_names_path_and_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.sqlite3"
    with pytest.raises(VulnDbError) as err:
        VulnDb.open(missing)
    assert str(missing) in str(err.value)
    assert "flan db update" in str(err.value) and "flan db import" in str(err.value)
    assert not db_exists(missing)


def test_open_foreign_file(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite3"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(VulnDbError, match="not a Flan Scan vulnerability database"):
        VulnDb.open(other)
    text = tmp_path / "text.sqlite3"
    text.write_text("hello")
    with pytest.raises(VulnDbError, match=str(text)):
        VulnDb.open(text)


def test_paths_follow_env_and_option(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FLAN_DB", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_db_path() == tmp_path / "cache" / "flanscan" / "vulndb.sqlite3"
    monkeypatch.setenv("FLAN_DB", str(tmp_path / "env.sqlite3"))
    assert default_db_path() == tmp_path / "env.sqlite3"
    assert resolve_db_path(tmp_path / "opt.sqlite3") == tmp_path / "opt.sqlite3"


def test_import_single_records_and_directory(nvd_sample: Path, tmp_path: Path) -> None:
    records = sample_records(nvd_sample)
    by_id = {r["id"]: r for r in records}
    folder = tmp_path / "records" / "CVE-2024"
    folder.mkdir(parents=True)
    (folder / "CVE-2024-6387.json").write_text(json.dumps(by_id["CVE-2024-6387"]))  # bare
    (folder / "CVE-2021-41773.json").write_text(json.dumps({"cve": by_id["CVE-2021-41773"]}))
    (folder / "CVE-2014-0346.json").write_text(json.dumps(by_id["CVE-2014-0346"]))  # rejected
    (folder / "notes.txt").write_text("copied from the mirror\n")
    db_path = tmp_path / "db.sqlite3"
    result = import_paths(db_path, [tmp_path / "records"])
    assert result.skipped == (str(folder / "notes.txt"),)
    with VulnDb.open(db_path) as vdb:
        assert vdb.status().cve_count == 2
        assert set(vdb.vulnerabilities(by_id)) == {"CVE-2024-6387", "CVE-2021-41773"}
        cands = vdb.candidates("openbsd", "openssh")
        assert [c.cve_id for c in cands] == ["CVE-2024-6387"]
        assert cands[0].configurations == by_id["CVE-2024-6387"]["configurations"]


def test_newest_copy_wins_and_rejection_removes(nvd_sample: Path, tmp_path: Path) -> None:
    records = sample_records(nvd_sample)
    rec = next(r for r in records if r["id"] == "CVE-2021-41773")
    db_path = tmp_path / "db.sqlite3"
    import_paths(db_path, [nvd_sample / "nvdcve-2.0-sample.json"])
    newer = json.loads(json.dumps(rec))
    newer["lastModified"] = "2099-01-01T00:00:00.000"
    newer["descriptions"] = [{"lang": "en", "value": "changed later"}]
    older = json.loads(json.dumps(rec))
    older["lastModified"] = "2000-01-01T00:00:00.000"
    older["descriptions"] = [{"lang": "en", "value": "stale copy"}]
    (tmp_path / "newer.json").write_text(json.dumps({"cve": newer}))
    (tmp_path / "older.json").write_text(json.dumps({"cve": older}))
    import_paths(db_path, [tmp_path / "newer.json"])
    import_paths(db_path, [tmp_path / "older.json"])
    with VulnDb.open(db_path) as vdb:
        assert vdb.vulnerabilities([rec["id"]])[rec["id"]].summary == "changed later"
    rejected = dict(newer, vulnStatus="Rejected", lastModified="2099-02-01T00:00:00.000")
    (tmp_path / "rejected.json").write_text(json.dumps({"cve": rejected}))
    import_paths(db_path, [tmp_path / "rejected.json"])
    import_paths(db_path, [tmp_path / "newer.json"])  # an older copy must not resurrect it
    with VulnDb.open(db_path) as vdb:
        assert vdb.vulnerabilities([rec["id"]]) == {}
        assert rec["id"] not in {c.cve_id for c in vdb.candidates("apache", "http_server")}
        assert vdb.status().cve_count == 124


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("corrupt.json.gz", b"\x1f\x8b\x08\x00" + b"\x00garbage" * 50, "corrupt gzip"),
        ("cut.json", None, "truncated or invalid JSON"),
        (
            "old.json",
            b'{"CVE_data_type":"CVE","CVE_data_format":"MITRE","CVE_data_version":"4.0",'
            b'"CVE_Items":[]}',
            "NVD JSON 1.x feed",
        ),
        (
            "v3.json",
            b'{"format":"NVD_CVE","version":"3.0","vulnerabilities":[]}',
            "expected NVD_CVE version 2.0",
        ),
        ("random.bin", b"\x00\x01\x02 not a feed", "not a file Flan Scan can import"),
    ],
)
def test_bad_import_keeps_previous_db(
    sample_db: Path,
    nvd_sample: Path,
    tmp_path: Path,
    name: str,
    content: bytes | None,
    message: str,
) -> None:
    db_path = tmp_path / "vulndb.sqlite3"
    db_path.write_bytes(sample_db.read_bytes())
    before = db_path.read_bytes()
    bad = tmp_path / name
    if content is None:
        whole = (nvd_sample / "nvdcve-2.0-sample.json").read_bytes()
        content = whole[: len(whole) // 2]
    bad.write_bytes(content)
    with pytest.raises(VulnDbError) as err:
        import_paths(db_path, [nvd_sample / "known_exploited_vulnerabilities.json", bad])
    assert str(bad) in str(err.value)
    assert message in str(err.value)
    assert db_path.read_bytes() == before
    assert not new_db_path(db_path).exists()
    with VulnDb.open(db_path) as vdb:
        assert vdb.status().cve_count == 125


def test_fresh_import_replaces(sample_db: Path, nvd_sample: Path, tmp_path: Path) -> None:
    db_path = tmp_path / "vulndb.sqlite3"
    db_path.write_bytes(sample_db.read_bytes())
    rec = next(r for r in sample_records(nvd_sample) if r["id"] == "CVE-2024-6387")
    (tmp_path / "one.json").write_text(json.dumps(rec))
    import_paths(db_path, [tmp_path / "one.json"], fresh=True)
    with VulnDb.open(db_path) as vdb:
        status = vdb.status()
        assert status.cve_count == 1
        assert status.kev_count == 0


def test_meta_beside_a_feed_is_checked_and_recorded(nvd_sample: Path, tmp_path: Path) -> None:
    body = (nvd_sample / "nvdcve-2.0-sample.json").read_bytes()
    feed = tmp_path / "nvdcve-2.0-2024.json.gz"
    feed.write_bytes(gzip.compress(body))
    meta = tmp_path / "nvdcve-2.0-2024.meta"
    meta.write_text(f"lastModifiedDate:2026-11-22T03:00:01-05:00\r\nsha256:{'0' * 64}\r\n")
    db_path = tmp_path / "db.sqlite3"
    with pytest.raises(VulnDbError, match="sha256") as err:
        import_paths(db_path, [tmp_path])
    assert str(feed) in str(err.value)
    assert not db_path.exists()
    import hashlib

    meta.write_text(f"sha256:{hashlib.sha256(body).hexdigest().upper()}\r\n")
    import_paths(db_path, [tmp_path])
    with VulnDb.open(db_path) as vdb:
        assert vdb.status().cve_count == 125
        row = vdb.connection.execute(
            "SELECT sha256 FROM feed_files WHERE source = 'nvd' AND name = ?", (feed.name,)
        ).fetchone()
        assert row == (hashlib.sha256(body).hexdigest(),)


def test_parallel_parsing_in_workers(
    nvd_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big files go to worker processes: same result, and a worker's error names the file."""
    from flanscan._vulndb.sources import nvd

    monkeypatch.setattr(nvd, "PARALLEL_MIN_BYTES", 1)
    records = sample_records(nvd_sample)
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    for part, name in enumerate(("2019", "2022", "2024")):
        chunk = records[part::3]
        doc = {
            "format": "NVD_CVE",
            "version": "2.0",
            "vulnerabilities": [{"cve": r} for r in chunk],
        }
        (feeds / f"nvdcve-2.0-{name}.json.gz").write_bytes(gzip.compress(json.dumps(doc).encode()))
    db_path = tmp_path / "db.sqlite3"
    import_paths(db_path, [feeds])
    with VulnDb.open(db_path) as vdb:
        assert vdb.status().cve_count == 125
        expected = {r["id"] for r in records if ("openbsd", "openssh") in cpe_pairs(r)}
        assert {c.cve_id for c in vdb.candidates("openbsd", "openssh")} == expected
    whole = gzip.decompress((feeds / "nvdcve-2.0-2022.json.gz").read_bytes())
    (feeds / "nvdcve-2.0-2022.json.gz").write_bytes(gzip.compress(whole[: len(whole) // 2]))
    before = db_path.read_bytes()
    with pytest.raises(VulnDbError, match="truncated") as err:
        import_paths(db_path, [feeds])
    assert "nvdcve-2.0-2022.json.gz" in str(err.value)
    assert db_path.read_bytes() == before


@pytest.mark.parametrize("block", [7, 1000, 1 << 20])
def test_feed_streaming_matches_json_load(
    nvd_sample: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    """The fast feed reader yields exactly json.load's records, whatever the block boundaries."""
    import io

    from flanscan._vulndb import _jsonstream

    monkeypatch.setattr(_jsonstream, "BLOCK", block)
    body = (nvd_sample / "nvdcve-2.0-sample.json").read_bytes()
    items = _jsonstream.iter_array_items(io.BytesIO(body), "vulnerabilities")
    # A tiny first block cannot show the array key: the caller falls back to ijson.
    if block == 7:
        assert items is None
        return
    assert items is not None
    assert list(items) == json.loads(body)["vulnerabilities"]


@pytest.mark.parametrize(
    "doc",
    [
        b'{"format":"NVD_CVE","vulnerabilities":[{"cve":{"id":"CVE-1"}},{"cve":{"id":"CVE',
        b'{"format":"NVD_CVE","vulnerabilities":[{"cve":{"id":"CVE-1"}},',
        b'{"format":"NVD_CVE","vulnerabilities":[{"cve":{"id":"CVE-1"}}]',
        b'{"format":"NVD_CVE","vulnerabilities":[{"cve":{"id":"CVE-1"}} {"cve":{}}]}',
        b'{"format":"NVD_CVE","vulnerabilities":[{"cve":{"id":"CVE-1"}},]}',
    ],
)
def test_feed_streaming_rejects_broken_documents(doc: bytes) -> None:
    import io

    from flanscan._vulndb import _jsonstream

    items = _jsonstream.iter_array_items(io.BytesIO(doc), "vulnerabilities")
    assert items is not None
    with pytest.raises(_jsonstream.StreamError, match="truncated or invalid JSON"):
        list(items)


def test_feed_streaming_empty_array() -> None:
    import io

    from flanscan._vulndb import _jsonstream

    items = _jsonstream.iter_array_items(io.BytesIO(b'{"vulnerabilities": [ ]}'), "vulnerabilities")
    assert items is not None and list(items) == []


def test_tiny_first_block_falls_back_to_ijson(
    nvd_sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flanscan._vulndb import _jsonstream

    monkeypatch.setattr(_jsonstream, "BLOCK", 16)
    db_path = tmp_path / "db.sqlite3"
    import_paths(db_path, [nvd_sample / "nvdcve-2.0-sample.json.gz"])
    with VulnDb.open(db_path) as vdb:
        assert vdb.status().cve_count == 125
