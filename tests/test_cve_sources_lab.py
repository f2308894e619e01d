"""The lab's real daemons (real Nmap in the lab's namespaces) against the NVD sample plus the
CVE 5 records, overrides and Debian list of ../shared/cve-sources/: the findings NVD alone
misses are in every report format with their source and confidence, the ruled-out ones are not.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import SHARED
from test_cve_sources import debian_list

from flanscan._vulndb import import_paths
from testlab import Lab

REPO = Path(__file__).resolve().parent.parent
SCHEMA = REPO / "src" / "flanscan" / "schemas" / "report.schema.json"
SOURCES = SHARED / "cve-sources"


@pytest.fixture(scope="module")
def lab_reports(lab: Lab, nvd_sample: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    base = Path(tempfile.mkdtemp(prefix="flan-lab-cve5-"))
    db = base / "vulndb.sqlite3"
    import_paths(
        db,
        [
            nvd_sample / "nvdcve-2.0-sample.json",
            nvd_sample / "known_exploited_vulnerabilities.json",
            SOURCES / "cvelistV5",
            SOURCES / "vulnrichment",
            SOURCES / "nvd-data-overrides",
            debian_list(base / "list"),
        ],
    )
    run = base / "run"
    proc = lab.exec(
        [sys.executable, "-m", "flanscan", "scan", "--ports", "all", "--db", str(db),
         "-f", "json", "-f", "md", "-f", "csv", "-f", "html", "--output-dir", str(run),
         *lab.targets],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    yield run, {"db": db}
    shutil.rmtree(base, ignore_errors=True)


def _by_product(report: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for svc in report["services"]:
        key = f"{svc['product']} {svc['version']}"
        for v in svc["vulnerabilities"]:
            out.setdefault(key, {})[v["id"]] = v
    return out


def test_the_lab_report_has_the_findings_nvd_alone_misses(
    lab_reports: tuple[Path, dict[str, Any]],
) -> None:
    run, _ = lab_reports
    report = json.loads((run / "report.json").read_text())
    jsonschema.validate(report, json.loads(SCHEMA.read_text()))
    found = _by_product(report)
    ssh = next(v for k, v in found.items() if k.startswith("OpenSSH 9.2p1"))
    assert (ssh["CVE-2025-32728"]["match_source"], ssh["CVE-2025-32728"]["confidence"]) == (
        "override",
        "high",
    )
    assert ssh["CVE-2025-32728"]["evidence"][0]["record"].startswith("nvd-data-overrides data/")
    assert "CVE-2024-6409" not in ssh  # never against upstream OpenSSH
    nginx = next(v for k, v in found.items() if k.startswith("nginx 1.22.1"))
    assert {"CVE-2024-7347", "CVE-2025-23419"} <= nginx.keys()
    redis = next(v for k, v in found.items() if k.startswith("Redis key-value store 7.0.15"))
    assert {"CVE-2024-31227", "CVE-2024-31228", "CVE-2025-21605"} <= redis.keys()
    memcached = next(v for k, v in found.items() if k.startswith("Memcached 1.6.18"))
    assert memcached["CVE-2023-46852"]["match_source"] == "adp"
    assert memcached["CVE-2023-46852"]["confidence"] == "medium"
    # The possible tier (description text) is not reported by default.
    assert "CVE-2023-46853" not in memcached
    everything = {cve for cves in found.values() for cve in cves}
    assert "CVE-2024-40898" not in everything  # Windows-only; the lab's hosts are Linux
    for cves in found.values():
        for v in cves.values():
            assert v["match_source"] in ("nvd", "override", "cna", "adp", "distribution")
    md = (run / "report.md").read_text()
    assert "source: anchore nvd-data-overrides; confidence high" in md
    assert "CVE 5 record (CISA ADP)" in md  # Markdown readable as plain text
    assert "record: CVE 5 record CVE-2023-46852.json (CISA ADP" in (run / "report.html").read_text()
    rows = list(csv.DictReader(io.StringIO((run / "report.csv").read_text())))
    row = next(r for r in rows if r["vulnerability"] == "CVE-2025-32728")
    assert (row["match_source"], row["confidence"], row["match"]) == ("override", "high", "exact")


def test_possible_findings_on_request(lab_reports: tuple[Path, dict[str, Any]]) -> None:
    run, extra = lab_reports
    out = run.parent / "possible.json"
    proc = subprocess.run(
        [sys.executable, "-m", "flanscan", "report", str(run), "--db", str(extra["db"]),
         "-f", "json", "-o", str(out), "--min-confidence", "possible"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    found = _by_product(json.loads(out.read_text()))
    memcached = next(v for k, v in found.items() if k.startswith("Memcached 1.6.18"))
    assert memcached["CVE-2023-46853"]["confidence"] == "possible"
    assert memcached["CVE-2023-46853"]["match_source"] == "description"
