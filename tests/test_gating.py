"""Safe gating: --fail-on refuses to gate without current vulnerability data, staleness is a
warning and a JSON field, and `flan report` rebuilds a run with what the run used (rules,
database, history, thresholds) without replacing the scan's own reports. Through the real CLI:
real Nmap against an SSH banner on loopback, a real database imported from the NVD sample
(whose data is about two weeks old: stale at the default --max-db-age of 7 days)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _banner import BannerServer

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
SAMPLE = SHARED / "nmap-xml-samples" / "1_hosts_banner.xml"  # 2 critical findings in the sample
FLAN = [sys.executable, "-m", "flanscan"]
FRESH = ("--max-db-age", "365")  # the NVD sample's data counts as current

needs_nmap = pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")


def _flan(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLAN, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})  # fmt: skip


def _errors(r: subprocess.CompletedProcess[str]) -> list[str]:
    assert "Traceback" not in r.stderr, r.stderr
    return [line for line in r.stderr.splitlines() if line.startswith("flan: error:")]


def _json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "vulndb.sqlite3"
    nvd = SHARED / "nvd-sample" / "nvdcve-2.0-sample.json"
    subprocess.run([*FLAN, "db", "import", "--db", str(path), str(nvd)], check=True,
                   capture_output=True)  # fmt: skip
    return path


def test_fail_on_without_a_database_is_exit_2(tmp_path: Path) -> None:
    missing = tmp_path / "none.sqlite3"
    r = _flan("report", str(SAMPLE), "-o", str(tmp_path), "--fail-on", "high",
              env={"FLAN_DB": str(missing)})  # fmt: skip
    assert r.returncode == 2
    assert _errors(r) == [
        f"flan: error: --fail-on: no vulnerability database at {missing}, so nothing could "
        "reach the threshold: build it with `flan db update` (or `flan db import FILES` "
        "offline), or point FLAN_DB or --db at one"
    ]
    assert not list(tmp_path.iterdir())
    r = _flan("report", str(SAMPLE), "-o", str(tmp_path), "--fail-on", "high", "--no-db")
    assert r.returncode == 2 and "--fail-on with --no-db" in _errors(r)[0]


def test_fail_on_with_stale_data_is_exit_2_and_current_data_gates(tmp_path: Path, db: Path) -> None:
    r = _flan("report", str(SAMPLE), "--db", str(db), "-o", str(tmp_path), "--fail-on", "high")
    assert r.returncode == 2
    (line,) = _errors(r)
    assert f"--fail-on refused: the vulnerability database {db} is " in line
    assert "days old (--max-db-age 7)" in line and "raise --max-db-age" in line
    r = _flan("report", str(SAMPLE), "--db", str(db), "-o", str(tmp_path), "-f", "json",
              "--fail-on", "critical", *FRESH)  # fmt: skip
    assert r.returncode == 1, r.stderr
    assert not _errors(r)
    vulndb = _json(tmp_path / "report.json")["vulnerability_database"]
    assert vulndb["stale"] is False and vulndb["max_age_days"] == 365
    assert 7 < vulndb["age_days"] < 365


def test_stale_data_is_a_warning_and_a_json_field(tmp_path: Path, db: Path) -> None:
    r = _flan("report", str(SAMPLE), "--db", str(db), "-o", str(tmp_path), "-f", "json")
    assert r.returncode == 0, r.stderr
    warnings = [w for w in r.stderr.splitlines() if "--max-db-age 7" in w]
    assert len(warnings) == 1 and warnings[0].startswith("warning: the vulnerability database")
    vulndb = _json(tmp_path / "report.json")["vulnerability_database"]
    assert vulndb["stale"] is True and vulndb["age_days"] > 7
    assert "run `flan db update`" in vulndb["note"]


def test_min_severity_keeps_only_findings_that_severe(tmp_path: Path, db: Path) -> None:
    r = _flan("report", str(SAMPLE), "--db", str(db), "-o", str(tmp_path / "all.json"),
              "-f", "json", *FRESH)  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = _flan("report", str(SAMPLE), "--db", str(db), "-o", str(tmp_path / "crit.json"),
              "-f", "json", "--min-severity", "critical", *FRESH)  # fmt: skip
    assert r.returncode == 0, r.stderr
    every, critical = (_json(tmp_path / n)["summary"] for n in ("all.json", "crit.json"))
    assert every["critical"] == critical["critical"] == 2 and every["high"] > 0
    assert critical["high"] == critical["medium"] == critical["low"] == 0


@needs_nmap
def test_scan_with_fail_on_and_no_database_stops_before_scanning(tmp_path: Path) -> None:
    run = tmp_path / "run"
    r = _flan("scan", "127.0.0.1", "--output-dir", str(run), "--fail-on", "kev",
              env={"FLAN_DB": str(tmp_path / "none.sqlite3")})  # fmt: skip
    assert r.returncode == 2 and "--fail-on: no vulnerability database" in _errors(r)[0]
    assert not run.exists()


# --- a rebuild uses what the run used -------------------------------------------------------


@pytest.fixture
def ssh_port() -> Iterator[int]:
    """An SSH banner (OpenSSH 8.0: several CVEs in the NVD sample) on loopback."""
    with BannerServer(b"SSH-2.0-OpenSSH_8.0\r\n") as server:
        yield server.port


@needs_nmap
def test_report_rebuilds_a_run_with_its_rules_database_and_history(
    tmp_path: Path, db: Path, ssh_port: int
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "suppressions:\n  - cve: CVE-2023-38408\n    address: 127.0.0.1\n"
        "    reason: agent forwarding is off\n    owner: infra\n    expires: 2099-01-01\n"
    )
    history = tmp_path / "history.sqlite3"
    common = ["--ports", str(ssh_port), "--db", str(db), "--suppressions", str(rules),
              "--history", str(history), "--min-severity", "medium", "-f", "json",
              *FRESH]  # fmt: skip
    for name in ("run1", "run2"):
        r = _flan("scan", "127.0.0.1", "--output-dir", str(tmp_path / name), *common)
        assert r.returncode == 0, r.stderr
    run = tmp_path / "run2"
    inputs = _json(run / "run.json")["report_inputs"]
    assert inputs["db"] == str(db) and inputs["suppressions"] == str(rules)
    assert inputs["history"] == str(history) and inputs["min_severity"] == "medium"
    scanned = _json(run / "report.json")
    assert scanned["summary"]["by_status"].get("suppressed") == 1
    assert scanned["changes"] is not None

    # No options: the run's own database, rules, history and thresholds; never its report.
    before = (run / "report.json").read_bytes()
    r = _flan("report", str(run), "-f", "json", env={"FLAN_DB": str(tmp_path / "none")})
    assert r.returncode == 0, r.stderr
    assert f"{run / 'rebuilt'}/report.json" in r.stdout
    assert (run / "report.json").read_bytes() == before
    rebuilt = _json(run / "rebuilt" / "report.json")
    assert rebuilt["summary"] == scanned["summary"]
    assert rebuilt["changes"]["since_run"] == scanned["changes"]["since_run"]
    assert rebuilt["vulnerability_database"]["path"] == str(db)

    # Into the run directory: refused without --force, one line, nothing replaced.
    r = _flan("report", str(run), "-f", "json", "-o", str(run))
    assert r.returncode == 2
    assert _errors(r) == [
        f"flan: error: {run / 'report.json'}: the scan's own report; write the rebuild "
        "elsewhere (-o DIR) or pass --force to replace it"
    ]
    assert (run / "report.json").read_bytes() == before
    # Told otherwise: no database, and --force.
    r = _flan("report", str(run), "-f", "json", "-o", str(run), "--force", "--no-db")
    assert r.returncode == 0, r.stderr
    assert _json(run / "report.json")["summary"]["by_status"] == {}
    # --fail-on gates the rebuilt report as a scan's.
    r = _flan("report", str(run), "-f", "json", "-o", str(tmp_path / "gate"), "--fail-on", "high")
    assert r.returncode == 1, r.stderr


def test_run_record_keeps_report_inputs_and_reads_older_files() -> None:
    from flanscan._records import ReportInputs, RunRecord

    inputs = ReportInputs(db="/var/lib/flan/vulndb.sqlite3", suppressions="/etc/flan/rules.yaml",
                          history="postgresql://flan:***@db/flan", min_severity="high")  # fmt: skip
    record = RunRecord(run_id="r1", report_inputs=inputs)
    assert RunRecord.from_json(record.to_json()).report_inputs == inputs
    older = RunRecord(run_id="r0").to_json()
    assert "report_inputs" not in older and RunRecord.from_json(older).report_inputs is None


@needs_nmap
def test_a_copied_run_whose_database_and_rules_are_gone(
    tmp_path: Path, db: Path, ssh_port: int
) -> None:
    moved = tmp_path / "moved.sqlite3"
    shutil.copy(db, moved)
    rules = tmp_path / "rules.yaml"
    rules.write_text("suppressions: []\n")
    run = tmp_path / "run"
    r = _flan("scan", "127.0.0.1", "--ports", str(ssh_port), "--db", str(moved), "-f", "json",
              "--suppressions", str(rules), "--output-dir", str(run), *FRESH)  # fmt: skip
    assert r.returncode == 0, r.stderr
    moved.unlink()
    rules.unlink()
    r = _flan("report", str(run), "-f", "json", env={"FLAN_DB": str(db)})
    assert r.returncode == 0, r.stderr
    assert f"warning: the run's vulnerability database {moved} is gone" in r.stderr
    assert f"warning: the run's exception rules {rules} are gone" in r.stderr
    rebuilt = _json(run / "rebuilt" / "report.json")
    assert rebuilt["vulnerability_database"]["path"] == str(db)
    assert rebuilt["summary"]["critical"] > 0
