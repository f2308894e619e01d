"""The terminal summary and the remediation (what to upgrade to), through the real CLI: the lab's
saved XML and the real NVD sample, KEV catalogue and Debian tracker fixture in a real database."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from flanscan._model import (
    Finding,
    FindingStatus,
    Location,
    MatchEvidence,
    Report,
    ScanSummary,
    ServiceFinding,
    ServiceReport,
    Vulnerability,
)
from flanscan._remediation import remediation_of
from flanscan._render._tex import escape_tex
from flanscan._summary import render_summary
from flanscan._vulndb import import_paths

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "src" / "flanscan" / "schemas" / "report.schema.json"
LAB_XML = REPO / "tests" / "data" / "lab" / "all-ports.xml"
TRACKER = REPO / "tests" / "data" / "distro" / "debian-tracker.json"
ESC = "\x1b"


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, nvd_sample: Path) -> Path:
    path = tmp_path_factory.mktemp("summary-db") / "vulndb.sqlite3"
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
def old_ssh_xml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lab's scan with its OpenSSH banners one Debian update behind (deb12u1): a build the
    tracker says later updates fix."""
    path = tmp_path_factory.mktemp("old-ssh") / "scan.xml"
    text = LAB_XML.read_text()
    assert "9.2p1 Debian 2+deb12u10" in text
    path.write_text(text.replace("9.2p1 Debian 2+deb12u10", "9.2p1 Debian 2+deb12u1"))
    return path


def flan(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flanscan", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def report_json(xml: Path, db: Path, out: Path, *extra: str) -> tuple[str, dict[str, Any]]:
    proc = flan("report", xml, "--db", db, "-f", "json", "-o", out / "report.json", *extra)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout, json.loads((out / "report.json").read_text())


def services_by_product(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["product"]: s for s in data["services"] if s["product"]}


def test_summary_lists_what_to_fix_worst_first(old_ssh_xml: Path, db: Path, tmp_path: Path) -> None:
    stdout, data = report_json(old_ssh_xml, db, tmp_path)
    lines = stdout.splitlines()
    assert lines[-1] == str(tmp_path / "report.json")  # the path still ends the output
    assert all(len(line) <= 80 for line in lines[:-1]), lines
    assert ESC not in stdout
    vulnerable = [s for s in data["services"] if s["remediation"] is not None]
    assert len(vulnerable) >= 2
    heads = [line for line in lines if re.match(r"^[A-Z]+ +\S", line) and ":" not in line[:9]]
    # One block per vulnerable service, in the report's (worst first) order, led by its worst.
    assert [h.split()[0] for h in heads] == [s["worst_severity"].upper() for s in vulnerable]
    ssh = services_by_product(data)["OpenSSH"]
    block = stdout.split("OpenSSH 9.2p1", 1)[1].split("\n\n", 1)[0]
    opened = {v["id"] for v in ssh["vulnerabilities"] if v["status"] == "confirmed"}
    fixed = {v["id"] for v in ssh["vulnerabilities"] if v["status"] == "fixed-by-distribution"}
    assert opened and fixed
    assert f"open   {len(opened)} CVEs:" in block
    assert f"{len(opened)} confirmed; {len(fixed)} fixed by distribution" in block
    for loc in ssh["locations"]:
        assert f"{loc['address']}:22/tcp" in block
    # The fix line is the JSON's remediation text, wrapped to the terminal.
    assert " ".join(block.split("\n  fix ", 1)[1].split()) == ssh["remediation"]["text"]
    total = stdout.split("Total: ", 1)[1].split(str(tmp_path), 1)[0]
    total = " ".join(total.split())
    assert total.startswith(f"{len(vulnerable)} of {len(data['services'])} services vulnerable")
    assert f"on {data['summary']['hosts']} hosts" in total


def test_summary_names_kev_entries(nmap_samples: Path, db: Path, tmp_path: Path) -> None:
    stdout, data = report_json(nmap_samples / "fullscan.xml", db, tmp_path)
    kev = {
        v["id"]
        for s in data["services"]
        for v in s["vulnerabilities"]
        if v["kev"] is not None and v["status"] in ("confirmed", "unconfirmed-distribution-build")
    }
    assert kev
    kev_lines = [line for line in stdout.splitlines() if line.startswith("  KEV")]
    assert {c.rstrip(",") for line in kev_lines for c in line.split()[1:]} == kev
    assert f"{len(kev)} in CISA KEV" in " ".join(stdout.split())


def test_quiet_prints_only_the_paths(old_ssh_xml: Path, db: Path, tmp_path: Path) -> None:
    proc = flan("report", old_ssh_xml, "--db", db, "-f", "json", "-f", "md", "-o", tmp_path, "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [str(tmp_path / "report.md"), str(tmp_path / "report.json")]


def test_remediation_in_json_follows_the_ranges(
    old_ssh_xml: Path, db: Path, tmp_path: Path
) -> None:
    _, data = report_json(old_ssh_xml, db, tmp_path)
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))
    services = services_by_product(data)
    ssh = services["OpenSSH"]["remediation"]
    # Open: < 9.3, < 9.6, < 9.8 and <= 9.8 (CVE-2025-26465): only a version after 9.8 fixes all.
    ranges = [
        e["version_range"]
        for v in services["OpenSSH"]["vulnerabilities"]
        if v["status"] == "confirmed"
        for e in v["evidence"]
    ]
    assert "<= 9.8" in " ".join(ranges)
    assert (ssh["fixed_version"], ssh["later_than"]) == ("9.8", True)
    assert ssh["text"].startswith("upgrade to a version later than 9.8")
    # Distribution build: the tracker's highest fixed version among the open findings.
    [debian] = ssh["distribution"]
    fixes = {
        v["id"]: v["distribution"]["fixed_version"]
        for v in services["OpenSSH"]["vulnerabilities"]
        if v["status"] == "confirmed"
    }
    assert debian["fixed_version"] == "1:9.2p1-2+deb12u5" == max(fixes.values())
    assert set(debian["vulnerabilities"]) == set(fixes)
    assert (debian["distribution"], debian["release"], debian["source_package"]) == (
        "debian",
        "bookworm",
        "openssh",
    )
    # vsftpd 3.0.3: `< 3.0.4` is fixed by 3.0.4 itself.
    ftp = services["vsftpd"]["remediation"]
    assert (ftp["fixed_version"], ftp["later_than"], ftp["distribution"]) == ("3.0.4", False, [])
    assert ftp["text"] == "upgrade to 3.0.4 or later"
    # Services with nothing open have no remediation.
    assert all(s["remediation"] is None for s in data["services"] if s["worst_severity"] is None)


def test_remediation_in_every_text_format(old_ssh_xml: Path, db: Path, tmp_path: Path) -> None:
    proc = flan("report", old_ssh_xml, "--db", db, "-q", "-o", tmp_path,
                *(a for f in ("json", "csv", "md", "html", "tex") for a in ("-f", f)))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "report.json").read_text())
    texts = {s["product"]: s["remediation"]["text"] for s in data["services"] if s["remediation"]}
    rows = list(csv.DictReader(io.StringIO((tmp_path / "report.csv").read_text())))
    for product, text in texts.items():
        assert {r["fix"] for r in rows if r["product"] == product} == {text}
        md = (tmp_path / "report.md").read_text()
        assert f"**Fix:** {text}" in re.sub(r"\\(.)", r"\1", md)  # Markdown's escapes undone
        assert f"<b>Fix:</b> {text}" in (tmp_path / "report.html").read_text()
        assert r"\textbf{Fix:} " + escape_tex(text) in (tmp_path / "report.tex").read_text()
    assert all(r["fix"] == "" for r in rows if r["product"] not in texts)


def _finding(cve: str, *ranges: str, status: FindingStatus = FindingStatus.CONFIRMED) -> Finding:
    evidence = tuple(MatchEvidence("cpe:2.3:a:x:y:*", r, detected_version="2.0") for r in ranges)
    return Finding(Vulnerability(cve), status=status, evidence=evidence)


def _service(*findings: Finding, product: str = "Y") -> ServiceReport:
    loc = Location("127.0.0.1", 80, "tcp")
    return ServiceReport(
        "http", product, "2.0", (), (loc,), tuple(ServiceFinding(f, (loc,)) for f in findings)
    )


def test_remediation_reads_each_kind_of_bound() -> None:
    # Excluded end: that version fixes; included end: a later one; none: not known.
    assert remediation_of(_service(_finding("CVE-1", "< 2.5"))).text == "upgrade to 2.5 or later"
    both = remediation_of(_service(_finding("CVE-1", "< 2.5"), _finding("CVE-2", "<= 2.5")))
    assert both.text == "upgrade to a version later than 2.5"
    higher = remediation_of(_service(_finding("CVE-1", ">= 1.0, <= 2.1"), _finding("CVE-2", "< 3")))
    assert higher.text == "upgrade to 3 or later"
    none = remediation_of(_service(_finding("CVE-1", "any version")))
    assert none.text == "no fixed version known"
    partial = remediation_of(_service(_finding("CVE-1", "any version"), _finding("CVE-2", "< 2.5")))
    assert partial.text == "upgrade to 2.5 or later (no fixed version known for CVE-1)"
    branch = remediation_of(
        _service(_finding("CVE-1", "fixed in 1.9, 2.4, 3.1 (per release branch)"))
    )
    assert branch.upgrade_to == "2.4"
    # Closed findings (suppressed, fixed by the distribution) need no fix.
    closed = _finding("CVE-1", "< 9", status=FindingStatus.SUPPRESSED)
    assert remediation_of(_service(closed, _finding("CVE-2", "< 2.5"))).upgrade_to == "2.5"
    assert not remediation_of(_service(closed)).needed


def test_summary_keeps_hostile_text_on_one_short_line() -> None:
    hostile = "Evil\x1b[2J\x1b]0;owned\x07 " + "x" * 200 + "\u202eabc"
    svc = _service(_finding("CVE-2024-0001", "< 2.5"), product=hostile)
    report = Report(ScanSummary(), (svc,))
    text = render_summary(report)
    assert ESC not in text and "\x07" not in text and "\u202e" not in text
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "\nTotal: 1 of 1 services vulnerable" in text
    assert "\n  fix    upgrade to 2.5 or later\n" in text
    assert text.startswith("UNKNOWN  Evil[2J]0;owned xxx")  # no score: severity unknown
