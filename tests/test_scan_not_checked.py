"""Targets Nmap leaves out are named, listed as not checked and exit 3: through the real CLI and
real Nmap. The name is under the reserved .invalid TLD (RFC 6761: it never resolves); the only
other target is loopback, and the test checks Nmap was asked for nothing else."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flanscan._scan.nmapout import NmapOutputParser, Skipped

FLAN = [sys.executable, "-m", "flanscan", "scan", "--no-db", "--format", "json", "--format", "md"]
NAME = "flan-test-target.invalid"


def test_parser_reads_nmap_skip_lines() -> None:
    parser = NmapOutputParser()
    assert parser.feed(f'Failed to resolve "{NAME}".') == Skipped(NAME, "the name does not resolve")
    assert parser.feed("Skipping host 127.0.0.9 due to host timeout") == Skipped(
        "127.0.0.9", "Nmap skipped it after its host timeout"
    )


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
def test_unresolved_name_is_named_not_checked_and_exits_3(tmp_path: Path) -> None:
    run = tmp_path / "run"
    r = subprocess.run([*FLAN, NAME, "127.0.0.1", "--ports", "1", "--output-dir", str(run)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 3, r.stderr
    assert f"warning: target {NAME} was not checked: the name does not resolve" in r.stderr
    assert "Traceback" not in r.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["incomplete_targets"] == [NAME]
    asked = set()
    for worker in record["workers"]:
        asked.update(worker["targets"])
        words = shlex.split(worker["command"])
        assert words[-1] in (NAME, "127.0.0.1")  # the one target of each worker, last
    assert asked == {NAME, "127.0.0.1"}
    report = json.loads((run / "report.json").read_text())
    assert report["scan"]["incomplete_targets"] == [NAME]
    md = (run / "report.md").read_text()
    assert "Not checked" in md and NAME in md
