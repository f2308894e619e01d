"""`flan scan` of the lab with the real NVD sample imported, in every format: each report has the
shape its format promises and holds what the lab really runs (products, versions, addresses,
ports from the lab manifest) and the findings the JSON report lists."""

from __future__ import annotations

import csv
import html.parser
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from test_sarif_cyclonedx import validate_cyclonedx, validate_sarif

from flanscan._match.versions import compare_versions, upstream_version
from flanscan._vulndb import import_paths
from testlab import Lab

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "src" / "flanscan" / "schemas" / "report.schema.json"
FORMATS = ("json", "html", "md", "csv", "tex", "pdf", "sarif", "cyclonedx")


@pytest.fixture(scope="module")
def lab_run(lab: Lab, nvd_sample: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    base = Path(tempfile.mkdtemp(prefix="flan-lab-reports-"))
    db = base / "vulndb.sqlite3"
    import_paths(
        db,
        [
            nvd_sample / "nvdcve-2.0-sample.json",
            nvd_sample / "known_exploited_vulnerabilities.json",
        ],
    )
    run = base / "run"
    fmt_args = [a for f in FORMATS for a in ("--format", f)]
    proc = lab.exec(
        [sys.executable, "-m", "flanscan", "scan", "--ports", "all", "--db", str(db),
         *fmt_args, "--output-dir", str(run), *lab.targets],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(run / "report.json")
    (base / "stdout.txt").write_text(proc.stdout)  # the terminal summary, for its own test
    yield run, json.loads((run / "report.json").read_text())
    shutil.rmtree(base, ignore_errors=True)


def _expected(lab: Lab) -> dict[tuple[str, int], tuple[str, str | None]]:
    return {
        (loc.address, loc.service.port): (loc.service.nmap_product, loc.service.nmap_version)
        for loc in lab.service_locations()
        if loc.service.protocol == "tcp"
    }


def _open_findings(report: dict[str, Any]) -> set[tuple[str, str, int]]:
    """(CVE, address, port) of every open finding in the JSON report."""
    return {
        (v["id"], loc["address"], loc["port"])
        for svc in report["services"]
        for v in svc["vulnerabilities"]
        if v["status"] in ("confirmed", "unconfirmed-distribution-build")
        for loc in v["locations"]
    }


def test_json_matches_schema_and_the_lab(lab: Lab, lab_run: tuple[Path, dict[str, Any]]) -> None:
    _, report = lab_run
    jsonschema.validate(report, json.loads(SCHEMA.read_text()))
    found = {
        (loc["address"], loc["port"]): (svc["product"], svc["version"])
        for svc in report["services"]
        for loc in svc["locations"]
        if loc["protocol"] == "tcp"
    }
    expected = _expected(lab)
    assert set(found) == set(expected)
    for key, (product, version) in expected.items():
        assert found[key][0] == product, key
        if version is not None:
            assert found[key][1] == version, key
    # OpenSSH runs on two hosts: one service, both locations, each finding at both
    ssh = [s for s in report["services"] if s["product"] == "OpenSSH"]
    assert len(ssh) == 1 and len(ssh[0]["locations"]) == 2
    assert ssh[0]["vulnerabilities"], "the sample has CVEs for the lab's OpenSSH version"
    assert all(len(v["locations"]) == 2 for v in ssh[0]["vulnerabilities"])
    assert report["summary"]["critical"] + report["summary"]["high"] > 0


def test_terminal_summary_and_remediation_of_the_lab(
    lab_run: tuple[Path, dict[str, Any]],
) -> None:
    """What the terminal says to fix, for the lab's real services: every vulnerable service,
    worst first, with its locations and a fix past every open finding's range."""
    run, report = lab_run
    stdout = (run.parent / "stdout.txt").read_text()
    lines = stdout.splitlines()
    assert all(len(line) <= 80 for line in lines[: -len(FORMATS)]), lines
    vulnerable = [s for s in report["services"] if s["remediation"] is not None]
    assert {s["product"] for s in vulnerable} >= {"OpenSSH"}
    blocks = stdout.split("\n\n")
    for svc, block in zip(vulnerable, blocks, strict=False):
        assert block.startswith(f"{svc['worst_severity'].upper():<8} {svc['product']}"), block
        for loc in svc["locations"]:
            assert f"{loc['address']}:{loc['port']}/tcp" in block
        fix = svc["remediation"]
        assert " ".join(block.split("\n  fix ", 1)[1].split()) == fix["text"]
        # The fix is past the detected version and past every open finding's range end.
        assert fix["fixed_version"] is not None
        detected = upstream_version(svc["version"]).version or svc["version"]
        assert compare_versions(detected, fix["fixed_version"]) == -1, (detected, fix)
        for v in svc["vulnerabilities"]:
            if v["status"] not in ("confirmed", "unconfirmed-distribution-build"):
                continue
            for ev in v["evidence"]:
                for end in re.findall(r"<=? ([^,;\s]+)", ev["version_range"]):
                    assert compare_versions(end, fix["fixed_version"]) in (-1, 0), (end, fix)
    total = " ".join(stdout.split("Total: ", 1)[1].split()).split(str(run))[0]
    assert total.startswith(
        f"{len(vulnerable)} of {len(report['services'])} services vulnerable, on "
        f"{len(report['hosts'])} hosts"
    ), total
    ssh = next(s for s in vulnerable if s["product"] == "OpenSSH")
    # The lab's OpenSSH 9.2p1: the NVD sample's ranges end past it (e.g. `< 9.6`, `< 9.8`).
    assert compare_versions("9.2p1", ssh["remediation"]["fixed_version"]) == -1


def test_sarif_and_cyclonedx_of_the_lab_are_valid(lab_run: tuple[Path, dict[str, Any]]) -> None:
    run, report = lab_run
    log = json.loads((run / "report.sarif").read_text())
    validate_sarif(log)
    located = {(cve, f"{a}:{p}/tcp") for cve, a, p in _open_findings(report)}
    results = {
        (r["ruleId"], r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"])
        for r in log["runs"][0]["results"]
        if "suppressions" not in r
    }
    assert results == located
    bom = json.loads((run / "report.cdx.json").read_text())
    validate_cyclonedx(bom)
    assert len(bom["components"]) == len(report["services"])


class _Html(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_self_contained_and_complete(
    lab: Lab, lab_run: tuple[Path, dict[str, Any]]
) -> None:
    run, report = lab_run
    page = _Html()
    page.feed((run / "report.html").read_text())
    text = " ".join(page.text)
    assert any(tag == "svg" for tag, _ in page.tags)  # the summary chart, inline
    for tag, attrs in page.tags:  # nothing loaded from elsewhere
        assert not (tag in ("script", "img", "iframe") and attrs.get("src")), (tag, attrs)
        assert not (tag == "link" and attrs.get("rel") == "stylesheet"), attrs
    for address, port in _expected(lab):
        assert address in text and str(port) in text
    for cve, _, _ in _open_findings(report):
        assert cve in text


def test_csv_has_a_row_per_finding_and_location(lab_run: tuple[Path, dict[str, Any]]) -> None:
    run, report = lab_run
    rows = list(csv.DictReader(io.StringIO((run / "report.csv").read_text())))
    from_csv = {
        (r["vulnerability"], r["address"], int(r["port"]))
        for r in rows
        if r["vulnerability"] and r["status"] in ("confirmed", "unconfirmed-distribution-build")
    }
    assert from_csv == _open_findings(report)
    locations = {
        (loc["address"], loc["port"]) for s in report["services"] for loc in s["locations"]
    }
    assert {(r["address"], int(r["port"])) for r in rows} == locations


def test_markdown_lists_every_service_and_finding(
    lab: Lab, lab_run: tuple[Path, dict[str, Any]]
) -> None:
    run, report = lab_run
    md = (run / "report.md").read_text()
    assert md.startswith("# ")
    for svc in report["services"]:
        if svc["product"]:
            assert svc["product"].replace("-", "\\-") in md or svc["product"] in md
    for cve, _, _ in _open_findings(report):
        assert cve in md


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="pdftotext (poppler-utils) missing")
def test_pdf_and_tex_render_the_findings(lab_run: tuple[Path, dict[str, Any]]) -> None:
    run, report = lab_run
    pdf_text = subprocess.run(
        ["pdftotext", str(run / "report.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout
    cves = {cve for cve, _, _ in _open_findings(report)}
    assert cves and all(c in pdf_text for c in cves)
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex (texlive-latex-base) missing: the .tex file was not compiled")
    work = run / "tex-build"
    work.mkdir()
    shutil.copy(run / "report.tex", work / "report.tex")
    latex = ["pdflatex", "-no-shell-escape", "-halt-on-error", "-interaction=nonstopmode"]
    subprocess.run([*latex, "report.tex"], cwd=work, capture_output=True, check=True, timeout=300)
    tex_text = subprocess.run(
        ["pdftotext", str(work / "report.pdf"), "-"], capture_output=True, text=True, check=True
    ).stdout
    assert all(c in tex_text for c in cves)
