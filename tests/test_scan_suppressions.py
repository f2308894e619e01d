"""`flan scan -iL FILE` picks up flan-suppressions.yaml beside the targets file (real nmap on
127.0.0.1 only)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

FLAN = [sys.executable, "-m", "flanscan"]

pytestmark = pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")


def _scan(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLAN, "scan", "-iL", str(tmp_path / "ips.txt"), "--no-db", "--format", "json",
         "--output-dir", str(tmp_path / "run"), *extra, "--", "-p", "1"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def test_rules_beside_the_targets_file_apply(tmp_path: Path) -> None:
    (tmp_path / "ips.txt").write_text("127.0.0.1\n")
    (tmp_path / "flan-suppressions.yaml").write_text(
        "- cve: CVE-1999-0001\n  reason: accepted by the audit\n  owner: secops\n"
        "  address: 127.0.0.1\n"
    )
    proc = _scan(tmp_path)
    assert proc.returncode == 0, proc.stderr
    # A file picked up without being asked for is named, with its rule count.
    named = [line for line in proc.stderr.splitlines() if "flan-suppressions.yaml" in line]
    assert len(named) == 1 and "1 exception rule " in named[0], proc.stderr
    notes = json.loads((tmp_path / "run" / "report.json").read_text())["notes"]
    assert any("CVE-1999-0001" in n and "unused" in n for n in notes), notes


def test_explicit_rules_win_and_bad_default_rules_name_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "ips.txt").write_text("127.0.0.1\n")
    (tmp_path / "flan-suppressions.yaml").write_text(
        "- cve: CVE-1999-0001\n  reason: x\n  owner: y\n  expires: someday\n"
    )
    proc = _scan(tmp_path)
    assert proc.returncode == 2
    assert "flan-suppressions.yaml:4" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()  # refused before anything was scanned
    other = tmp_path / "other.yaml"
    other.write_text("- cve: CVE-1999-0002\n  reason: x\n  owner: y\n  allow_all: true\n")
    proc = _scan(tmp_path, "--suppressions", str(other))
    assert proc.returncode == 0, proc.stderr
    notes = json.loads((tmp_path / "run" / "report.json").read_text())["notes"]
    assert any("CVE-1999-0002" in n for n in notes) and not any("CVE-1999-0001" in n for n in notes)


def test_missing_database_file_is_refused_before_scanning(tmp_path: Path) -> None:
    (tmp_path / "ips.txt").write_text("127.0.0.1\n")
    proc = subprocess.run(
        [*FLAN, "scan", "-iL", str(tmp_path / "ips.txt"), "--db", str(tmp_path / "no.sqlite3"),
         "--output-dir", str(tmp_path / "run"), "--", "-p", "1"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "no.sqlite3" in proc.stderr and "flan db" in proc.stderr
    assert not (tmp_path / "run").exists()
