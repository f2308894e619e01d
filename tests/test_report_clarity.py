"""Report clarity through the real CLI: severity counts split by status at the top, services of
unknown version under "Needs a manual version check", local and client-side findings marked and
ranked after the network-reachable ones, Markdown readable as plain text."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_summary_remediation import LAB_XML, TRACKER

from flanscan._vulndb import import_paths

OPEN = ("confirmed", "unconfirmed-distribution-build")


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory, nvd_sample: Path) -> Path:
    path = tmp_path_factory.mktemp("clarity-db") / "vulndb.sqlite3"
    import_paths(path, [nvd_sample / "nvdcve-2.0-sample.json", TRACKER])
    return path


def build(xml: Path, db: Path, out: Path) -> tuple[dict[str, Any], str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "flanscan", "report", str(xml), "--db", str(db), "-q",
         "-o", str(out), "-f", "json", "-f", "md", "-f", "html"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads((out / "report.json").read_text())
    return data, (out / "report.md").read_text(), (out / "report.html").read_text()


def section(md: str, title: str) -> str:
    return md.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0].strip()


def test_local_and_client_side_findings_are_marked_and_ranked_last(
    db: Path, tmp_path: Path
) -> None:
    xml = tmp_path / "scan.xml"
    xml.write_text(LAB_XML.read_text().replace("9.2p1 Debian 2+deb12u10", "9.2p1 Debian 2+deb12u1"))
    data, md, _ = build(xml, db, tmp_path)
    ssh = next(s for s in data["services"] if s["product"] == "OpenSSH")
    exposure = {v["id"]: (v["exposure"], v["exposure_reason"]) for v in ssh["vulnerabilities"]}
    # "ssh-add in OpenSSH before 9.3 adds smartcard keys ..." (network vector): a client program.
    assert exposure["CVE-2023-28531"] == ("client-side", "client program ssh-add")
    assert exposure["CVE-2023-51384"] == ("local", "CVSS AV:L")  # AV:L in its CVSS vector
    assert exposure["CVE-2024-6387"] == ("network", None)  # regreSSHion: the server itself
    opened = [v for v in ssh["vulnerabilities"] if v["status"] in OPEN]
    ranks = [["network", "client-side", "local"].index(v["exposure"]) for v in opened]
    assert ranks == sorted(ranks) and ranks[0] == 0 and ranks[-1] > 0
    row = next(line for line in md.splitlines() if "CVE-2023-28531" in line and "|" in line)
    assert "confirmed; client-side (client program ssh-add)" in row
    # Markdown stays readable: tokens in code spans, no backslash before ordinary punctuation.
    assert "`198.18.0.11:22/tcp (ssh1.flanlab.test)`" in md
    assert not re.search(r"\\[().#+!{}^-]", md)


def test_summary_by_status_and_the_manual_version_check(
    nmap_samples: Path, db: Path, tmp_path: Path
) -> None:
    data, md, html = build(nmap_samples / "fullscan.xml", db, tmp_path)
    # The scope heads every report: the targets (five named at most), hosts up and down.
    header = md.split("\n\n")[1]
    targets = data["scan"]["targets"]
    assert header.startswith("Scope: " + ", ".join(targets[:5]))
    assert f"{len(data['hosts'])} hosts up, {data['scan']['hosts_down']} down" in header
    assert header in html
    summary = section(md, "Summary")
    header = summary.splitlines()[0]
    statuses = [
        "confirmed", "unconfirmed: distribution build", "fixed by distribution", "not affected",
        "suppressed",
    ]  # fmt: skip
    assert header == "| Severity | " + " | ".join(statuses) + " |"
    rows = [line.strip("|").split("|") for line in summary.splitlines()[2:] if line.startswith("|")]
    totals = [sum(int(r[i + 1]) for r in rows) for i in range(len(statuses))]
    by_status = data["summary"]["by_status"]
    keys = ["confirmed", "unconfirmed-distribution-build", "fixed-by-distribution",
            "not-affected", "suppressed"]  # fmt: skip
    assert totals == [by_status.get(k, 0) for k in keys]
    assert sum(totals) > 0
    unknown = [s for s in data["services"] if s["version"] is None and not s["remediation"]]
    assert unknown, "fullscan.xml has services Nmap did not put a version on"
    manual = section(md, "Needs a manual version check")
    others = section(md, "Services with no known vulnerabilities")
    for svc in unknown:
        title = svc["product"] or svc["name"]
        assert f"| {title} " in manual, title
        assert f"| {title} " not in others, title
    assert 'id="manual-check"' in html and "Needs a manual version check" in html
    known = [s for s in data["services"] if s["version"] and not s["remediation"]]
    for svc in known:
        assert f"| {svc['product'] or svc['name']} {svc['version']}" in others


def test_one_row_per_cve_with_the_status_of_each_location(db: Path, tmp_path: Path) -> None:
    xml = tmp_path / "scan.xml"
    xml.write_text(LAB_XML.read_text().replace("9.2p1 Debian 2+deb12u10", "9.2p1 Debian 2+deb12u1"))
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "suppressions:\n"
        "  - cve: CVE-2024-6387\n"
        "    address: 198.18.0.12\n"
        "    reason: LoginGraceTime 0 on this host\n"
        "    owner: ops\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "flanscan", "report", str(xml), "--db", str(db), "-q",
         "--suppressions", str(rules), "-o", str(tmp_path), "-f", "json", "-f", "md",
         "-f", "html", "-f", "tex"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "report.json").read_text())
    ssh = next(s for s in data["services"] if s["product"] == "OpenSSH")
    entries = [v for v in ssh["vulnerabilities"] if v["id"] == "CVE-2024-6387"]
    assert {v["status"] for v in entries} == {"confirmed", "suppressed"}  # two in the model
    md = (tmp_path / "report.md").read_text()
    service = section(md, "Vulnerable services").split("### OpenSSH", 1)[1].split("\n### ", 1)[0]
    rows = [line for line in service.splitlines() if line.startswith("| [CVE-2024-6387]")]
    assert len(rows) == 1  # one row for the CVE in the service ...
    expected = (
        "confirmed at 198.18.0.11:22/tcp (ssh1.flanlab.test); "
        "suppressed at 198.18.0.12:22/tcp (ssh2.flanlab.test)"
    )
    assert expected in rows[0]  # ... with the status of each location
    html = (tmp_path / "report.html").read_text()
    assert expected in html
    assert (
        expected.replace("_", r"\_") in (tmp_path / "report.tex").read_text()
        or expected in (tmp_path / "report.tex").read_text()
    )
    # The suppressed location is still in Appendix B with its rule.
    assert "LoginGraceTime 0 on this host" in section(md, "Appendix B: suppressed findings")
