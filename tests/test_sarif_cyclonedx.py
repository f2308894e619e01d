"""SARIF 2.1.0 and CycloneDX 1.6 (VEX) through the real CLI, validated against their official
JSON Schemas (tests/data/schemas: the OASIS SARIF schema from oasis-tcs/sarif-spec, the
CycloneDX schemas as cyclonedx-python-lib ships them); `-o -`, formats from file extensions."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from flanscan._vulndb import import_paths

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "tests" / "data" / "schemas"
LAB_XML = REPO / "tests" / "data" / "lab" / "all-ports.xml"
TRACKER = REPO / "tests" / "data" / "distro" / "debian-tracker.json"
OPEN = ("confirmed", "unconfirmed-distribution-build")


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SCHEMAS / name).read_text())
    return data


def validate_sarif(log: dict[str, Any]) -> None:
    jsonschema.Draft4Validator(_load("sarif-schema-2.1.0.json")).validate(log)


def validate_cyclonedx(bom: dict[str, Any]) -> None:
    # The BOM schema refers to its two companions by relative name, under its own $id.
    base = "http://cyclonedx.org/schema/"
    registry = Registry().with_resources(
        (base + name, Resource.from_contents(_load(name), default_specification=DRAFT7))
        for name in ("spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json")
    )
    validator = jsonschema.Draft7Validator(
        _load("bom-1.6.SNAPSHOT.schema.json"),
        registry=registry,
        format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER,
    )
    validator.validate(bom)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, nvd_sample: Path) -> Path:
    path = tmp_path_factory.mktemp("formats-db") / "vulndb.sqlite3"
    import_paths(
        path,
        [
            nvd_sample / "nvdcve-2.0-sample.json",
            nvd_sample / "known_exploited_vulnerabilities.json",
            TRACKER,
        ],
    )
    return path


@pytest.fixture(scope="module")
def scan_xml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab's scan with OpenSSH one Debian update behind: confirmed findings, findings the
    distribution fixed, and (with the rules below) a suppressed one."""
    path = tmp_path_factory.mktemp("formats-xml") / "scan.xml"
    text = LAB_XML.read_text().replace("9.2p1 Debian 2+deb12u10", "9.2p1 Debian 2+deb12u1")
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("formats-rules") / "rules.yaml"
    path.write_text(
        "suppressions:\n"
        "  - cve: CVE-2021-3618\n"
        "    product: vsftpd\n"
        "    allow_all: true\n"
        "    reason: ALPACA needs a TLS FTP server, not offered here\n"
        "    owner: ops\n"
    )
    return path


def flan(*args: str | Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "flanscan", *map(str, args)], capture_output=True, timeout=300
    )


@pytest.fixture(scope="module")
def reports(
    tmp_path_factory: pytest.TempPathFactory, scan_xml: Path, db: Path, rules: Path
) -> Path:
    out = tmp_path_factory.mktemp("formats-out")
    proc = flan("report", scan_xml, "--db", db, "--suppressions", rules, "-q", "-o", out,
                "-f", "json", "-f", "sarif", "-f", "cyclonedx")  # fmt: skip
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().splitlines() == [
        str(out / "report.sarif"), str(out / "report.cdx.json"), str(out / "report.json")
    ]  # fmt: skip
    return out


def _findings(report: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(s, v) for s in report["services"] for v in s["vulnerabilities"]]


def test_sarif_is_valid_with_a_result_per_finding_and_location(reports: Path) -> None:
    log = json.loads((reports / "report.sarif").read_text())
    validate_sarif(log)
    report = json.loads((reports / "report.json").read_text())
    [run] = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    ids = [r["id"] for r in rules]
    assert len(ids) == len(set(ids))  # one rule per CVE
    assert set(ids) == {v["id"] for _, v in _findings(report)}
    expected = Counter(
        (v["id"], loc["address"], loc["port"], v["status"])
        for _, v in _findings(report)
        for loc in v["locations"]
    )
    got = Counter(
        (
            r["ruleId"],
            r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"].rsplit(":", 1)[0],
            int(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].split("/")[-1]),
            r["properties"]["status"],
        )
        for r in run["results"]
    )
    assert got == expected
    statuses = {r["properties"]["status"] for r in run["results"]}
    assert {"confirmed", "fixed-by-distribution", "suppressed"} <= statuses
    for r in run["results"]:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
        fingerprint = r["partialFingerprints"]["flanFinding/v1"]
        assert len(fingerprint) == 64
        if r["properties"]["status"] in OPEN:
            assert "suppressions" not in r
            assert "; fix: " in r["message"]["text"]
        else:  # dashboards hide these, with the reason
            [s] = r["suppressions"]
            assert s["status"] == "accepted" and s["justification"]
    suppressed = [r for r in run["results"] if r["properties"]["status"] == "suppressed"]
    assert "ALPACA needs a TLS FTP server" in suppressed[0]["suppressions"][0]["justification"]
    scored = {v["id"]: v["cvss"] for _, v in _findings(report) if v["cvss"] is not None}
    for rule in rules:
        if rule["id"] in scored:
            assert rule["properties"]["security-severity"] == f"{scored[rule['id']]:.1f}"
    fingerprints = [r["partialFingerprints"]["flanFinding/v1"] for r in run["results"]]
    assert len(fingerprints) == len(set(fingerprints))


def test_cyclonedx_is_valid_vex_of_every_finding(reports: Path) -> None:
    bom = json.loads((reports / "report.cdx.json").read_text())
    validate_cyclonedx(bom)
    report = json.loads((reports / "report.json").read_text())
    assert (bom["bomFormat"], bom["specVersion"]) == ("CycloneDX", "1.6")
    components = bom["components"]
    assert [(c["name"], c.get("version")) for c in components] == [
        (s["product"] or s["name"], s["version"]) for s in report["services"]
    ]
    for component, svc in zip(components, report["services"], strict=True):
        labels = {p["value"] for p in component["properties"] if p["name"] == "flan:location"}
        assert len(labels) == len(svc["locations"])
        fixes = [p["value"] for p in component["properties"] if p["name"] == "flan:fix"]
        assert fixes == ([svc["remediation"]["text"]] if svc["remediation"] else [])
    by_ref = {c["bom-ref"]: c for c in components}
    findings = _findings(report)
    assert len(bom["vulnerabilities"]) == len(findings)
    state = {
        "confirmed": ("exploitable", None),
        "unconfirmed-distribution-build": ("in_triage", None),
        "fixed-by-distribution": ("resolved", None),
        "not-affected": ("not_affected", "code_not_present"),
        "suppressed": ("not_affected", "protected_by_mitigating_control"),
    }
    for entry, (svc, v) in zip(bom["vulnerabilities"], findings, strict=True):
        assert entry["id"] == v["id"]
        [affects] = entry["affects"]
        assert by_ref[affects["ref"]]["name"] == (svc["product"] or svc["name"])
        analysis = entry["analysis"]
        assert (analysis["state"], analysis.get("justification")) == state[v["status"]]
        if v["status"] == "fixed-by-distribution":
            assert v["distribution"]["fixed_version"] in analysis["detail"]
        if v["status"] == "suppressed":
            assert "ALPACA" in analysis["detail"] and "owner ops" in analysis["detail"]
    assert {e["analysis"]["state"] for e in bom["vulnerabilities"]} >= {
        "exploitable", "resolved", "not_affected"
    }  # fmt: skip


def test_dash_writes_one_format_to_stdout_and_the_summary_to_stderr(
    reports: Path, scan_xml: Path, db: Path, rules: Path
) -> None:
    proc = flan("report", scan_xml, "--db", db, "--suppressions", rules, "-f", "sarif", "-o", "-")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == (reports / "report.sarif").read_bytes()
    assert "Total: " in proc.stderr.decode()
    refused = flan("report", scan_xml, "--db", db, "-o", "-", "-f", "json", "-f", "md")
    assert refused.returncode == 2 and refused.stdout == b""
    assert "exactly one --format" in refused.stderr.decode()


def test_format_follows_the_extension_and_a_mismatch_is_refused(
    scan_xml: Path, db: Path, tmp_path: Path
) -> None:
    for name, check in (
        ("flan.sarif", lambda data: validate_sarif(json.loads(data))),
        ("vex.cdx.json", lambda data: validate_cyclonedx(json.loads(data))),
        ("report.json", lambda data: json.loads(data)["format_version"]),
        ("report.html", lambda data: data.startswith(b"<!DOCTYPE html>") or 1 / 0),
    ):
        proc = flan("report", scan_xml, "--db", db, "-q", "-o", tmp_path / name)
        assert proc.returncode == 0, proc.stderr.decode()
        assert proc.stdout.decode().splitlines() == [str(tmp_path / name)]
        assert (tmp_path / name).is_file()  # the file itself, not a directory of that name
        check((tmp_path / name).read_bytes())
    proc = flan("report", scan_xml, "--db", db, "-f", "json", "-o", tmp_path / "other.html")
    assert proc.returncode == 2
    message = proc.stderr.decode().strip().splitlines()[-1]
    assert message.startswith("flan: error: ") and "other.html" in message and "json" in message
    assert not (tmp_path / "other.html").exists()
