"""The pipeline wiring on real captured lab XML and the real NVD sample: XML -> report -> files."""

from __future__ import annotations

import http.server
import json
import os
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from flanscan._errors import FlanError, ParseError, UsageError
from flanscan._model import FindingStatus
from flanscan._pipeline import (
    ReportOptions,
    check_report_options,
    fail_on_reached,
    report_from_xml,
    report_run,
    write_reports,
)
from flanscan._vulndb import import_paths

LAB_XML = Path(__file__).parent / "data" / "lab" / "default.xml"


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory, nvd_sample: Path) -> Path:
    path = tmp_path_factory.mktemp("pipeline-db") / "vulndb.sqlite3"
    import_paths(
        path,
        [
            nvd_sample / "nvdcve-2.0-sample.json",
            nvd_sample / "known_exploited_vulnerabilities.json",
        ],
    )
    return path


def _open_ids(report_services: object) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for svc in report_services:  # type: ignore[attr-defined]
        for sf in svc.findings:
            out.setdefault(sf.finding.status.value, set()).add(sf.finding.id)
    return out


def test_suppression_that_matched_is_not_reported_unused(tmp_path: Path, sample_db: Path) -> None:
    base = report_from_xml([LAB_XML], ReportOptions(db_path=sample_db))
    vsftpd = [s for s in base.services if s.product == "vsftpd"]
    assert vsftpd and vsftpd[0].open_findings, "the lab's vsftpd should have an open finding"
    cve = vsftpd[0].open_findings[0].finding.id
    address = vsftpd[0].locations[0].address
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        "suppressions:\n"
        f"  - cve: {cve}\n    address: {address}\n    reason: accepted\n    owner: ops\n"
        "  - cve: CVE-1999-0001\n    reason: never matches\n    owner: ops\n    allow_all: true\n"
    )
    report = report_from_xml([LAB_XML], ReportOptions(db_path=sample_db, suppressions=rules))
    statuses = _open_ids(report.services)
    assert cve in statuses.get(FindingStatus.SUPPRESSED.value, set())
    assert cve not in statuses.get(FindingStatus.CONFIRMED.value, set())
    unused = [n for n in report.notes if "unused" in n]
    assert len(unused) == 1, report.notes
    assert "CVE-1999-0001" in unused[0] and "rules.yaml:6" in unused[0]  # the rule starts on line 6


def test_no_database_reports_services_and_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLAN_DB", str(tmp_path / "absent.sqlite3"))
    report = report_from_xml([LAB_XML], ReportOptions(db_path=None, use_db=True))
    assert report.vulndb is None
    assert report.vulndb_note and "flan db update" in report.vulndb_note
    assert report.services and all(not s.findings for s in report.services)


def test_explicit_missing_database_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"absent\.sqlite3"):
        report_from_xml([LAB_XML], ReportOptions(db_path=tmp_path / "absent.sqlite3"))


def test_bad_xml_paths_are_named(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match="nothing-here"):
        report_from_xml([tmp_path / "nothing-here"], ReportOptions(use_db=False))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ParseError, match="no Nmap XML"):
        report_from_xml([tmp_path / "empty"], ReportOptions(use_db=False))


def test_fail_on_thresholds_follow_the_findings(sample_db: Path) -> None:
    report = report_from_xml([LAB_XML], ReportOptions(db_path=sample_db))
    worst = max(
        (sf.finding.severity for s in report.services for sf in s.open_findings), default=None
    )
    assert worst is not None
    kev = any(sf.finding.vulnerability.kev for s in report.services for sf in s.open_findings)
    assert fail_on_reached(report, "kev") is kev
    assert fail_on_reached(report, worst.label) is True
    assert fail_on_reached(report, None) is False
    with pytest.raises(UsageError):
        fail_on_reached(report, "severe")


def test_report_run_writes_formats_records_history_and_diffs(
    tmp_path: Path, sample_db: Path
) -> None:
    results = tmp_path / "flan-results"
    # two real lab captures: the top-1000 scan, then the all-ports scan (finds Redis 6379)
    for name, xml in (("run-1", LAB_XML), ("run-2", LAB_XML.with_name("all-ports.xml"))):
        (results / name / "xml").mkdir(parents=True)
        (results / name / "xml" / "worker-0.xml").write_bytes(xml.read_bytes())
    options = ReportOptions(formats=("json", "md"), db_path=sample_db, fail_on="medium")
    first = report_run(results / "run-1", None, options)
    assert [p.name for p in first.report_paths] == ["report.json", "report.md"]
    assert (Path(os.environ["XDG_DATA_HOME"]) / "flanscan" / "history.sqlite3").exists()
    assert first.exit_code == 1  # the lab has medium-or-worse open findings
    first_json = json.loads((results / "run-1" / "report.json").read_text())
    assert first_json["changes"] is None  # nothing earlier to compare with
    second = report_run(results / "run-2", None, options)
    assert second.run_id and second.run_id != first.run_id
    changes = json.loads((results / "run-2" / "report.json").read_text())["changes"]
    new_ports = {i["location"]["port"] for i in changes["items"] if i["kind"] == "new-port"}
    assert 6379 in new_ports  # Redis is outside the top 1000 ports


def test_write_reports_single_file_output(tmp_path: Path, sample_db: Path) -> None:
    report = report_from_xml([LAB_XML], ReportOptions(db_path=sample_db))
    out = write_reports(report, ["csv"], tmp_path / "out.csv")
    assert out == [tmp_path / "out.csv"]
    assert out[0].read_text().count("\n") > 1


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[dict[str, object]]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_first_run_alerts_once_with_everything_it_found(tmp_path: Path, sample_db: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        run = tmp_path / "flan-results" / "run-1"
        (run / "xml").mkdir(parents=True)
        (run / "xml" / "worker-0.xml").write_bytes(LAB_XML.read_bytes())
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        options = ReportOptions(
            formats=("json",), db_path=sample_db, notify=(url,), notify_min_severity="high"
        )
        outcome = report_run(run, None, options)
    finally:
        server.shutdown()
    assert outcome.exit_code == 0, outcome.messages
    assert len(_Receiver.bodies) == 1  # one message per run, never one per finding
    report = json.loads((run / "report.json").read_text())
    high = {
        v["id"]
        for s in report["services"]
        for v in s["vulnerabilities"]
        if v["status"] == "confirmed" and v["severity"] in ("high", "critical")
    }
    assert high, "the lab scan should have high or critical confirmed findings"
    sent = json.dumps(_Receiver.bodies[0])
    assert all(cve in sent for cve in high)


def test_unreachable_history_is_refused_before_a_scan(sample_db: Path) -> None:
    options = ReportOptions(db_path=sample_db, history="postgresql://flan@127.0.0.1:1/none")
    with pytest.raises(FlanError, match=r"127\.0\.0\.1:1\b"):
        check_report_options(options)


def test_history_failure_after_a_scan_still_writes_the_reports(
    tmp_path: Path, sample_db: Path
) -> None:
    run = tmp_path / "run"
    (run / "xml").mkdir(parents=True)
    (run / "xml" / "worker-0.xml").write_bytes(LAB_XML.read_bytes())
    options = ReportOptions(
        formats=("json",), db_path=sample_db, history="postgresql://flan@127.0.0.1:1/none"
    )
    outcome = report_run(run, None, options)
    assert outcome.exit_code == 4
    assert any(m.startswith("history not recorded:") for m in outcome.messages)
    assert outcome.report_paths == [run / "report.json"]
    assert json.loads((run / "report.json").read_text())["services"]
