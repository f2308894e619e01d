"""One-line errors only (issue 13, item 9, except target notation): inputs that used to end in a
traceback with exit 1, fed through the real CLI. Each ends in exit 2 with one line on stderr
(or, where the scan or merge itself went through, its exit code and one named warning). The
corpus is tests/data/hostile/; scans touch only 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
HOSTILE = REPO / "tests" / "data" / "hostile"
SAMPLE = REPO.parent / "shared" / "nmap-xml-samples" / "1_hosts.xml"
FLAN = [sys.executable, "-m", "flanscan"]
NOTIFY_URLS = [
    line.strip()
    for line in (HOSTILE / "notify" / "urls.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#")
]


def _flan(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLAN, *args], cwd=cwd, env=dict(os.environ), capture_output=True,
                          text=True, timeout=300)  # fmt: skip


def _one_error(result: subprocess.CompletedProcess[str], code: int = 2) -> str:
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code and len(lines) == 1, result.stderr
    assert lines[0].startswith("flan: error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize("url", NOTIFY_URLS)
def test_bad_notify_urls_are_refused_before_scanning(url: str, tmp_path: Path) -> None:
    result = _flan(["scan", "127.0.0.1", "--no-db", "--notify", url, "--", "-p", "1"], tmp_path)
    line = _one_error(result)
    assert "--notify" in line
    for secret in ("secret-token", ":pass@"):
        assert secret not in line
    assert not (tmp_path / "flan-results").exists()


@pytest.mark.parametrize("case", sorted(p.name for p in (HOSTILE / "run-json").iterdir()))
def test_bad_run_json_is_a_named_warning(case: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "xml").mkdir(parents=True)
    shutil.copy(SAMPLE, run / "xml" / "scan-01.xml")
    shutil.copy(HOSTILE / "run-json" / case, run / "run.json")
    result = _flan(["report", str(run), "--no-db", "-f", "json", "-o", str(tmp_path / "out")],
                   tmp_path)  # fmt: skip
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    named = [line for line in result.stderr.splitlines() if "run.json" in line]
    assert len(named) == 1 and named[0].startswith("warning: "), result.stderr
    assert json.loads((tmp_path / "out" / "report.json").read_text())["services"] is not None


def _shard(run: Path, index: int, count: int, run_json: dict[str, object]) -> None:
    shard = run / f"shard-{index}-of-{count}"
    (shard / "xml").mkdir(parents=True)
    shutil.copy(SAMPLE, shard / "xml" / "scan-01.xml")
    (shard / "shard.json").write_text(json.dumps({"run_id": "r", "targets": ["127.0.0.1-4"]}))
    (shard / "done.json").write_text(json.dumps({"status": "complete"}))
    (shard / "run.json").write_text(json.dumps(run_json))


def test_naive_and_aware_times_across_shards_merge(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _shard(run, 0, 2, {"start": "2026-01-01T00:00:00", "end": "2026-01-01T00:05:00"})
    _shard(run, 1, 2, {"start": "2026-01-01T00:01:00+00:00", "end": "2026-01-01T00:02:00Z"})
    result = _flan(["merge", str(run), "--no-db", "--no-history", "-f", "json"], tmp_path)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, result.stderr
    scan = json.loads((run / "report.json").read_text())["scan"]
    assert scan["start"].startswith("2026-01-01T00:00:00")


def _corrupt(path: Path) -> Path:
    path.write_bytes(b"SQLite format 3\x00" + b"\xa5" * 8000)
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["report", str(SAMPLE), "--db", "{db}", "-o", "{tmp}/out"],
        ["history", "--history", "{db}"],
        ["diff", "1", "2", "--history", "{db}"],
        ["db", "status", "--db", "{db}"],
        ["db", "import", "--db", "{db}", str(SAMPLE)],
        ["scan", "127.0.0.1", "--no-db", "--history", "{db}", "--", "-p", "1"],
    ],
)
def test_corrupt_sqlite_files_are_one_line(args: list[str], tmp_path: Path) -> None:
    db = _corrupt(tmp_path / "x.sqlite3")
    before = db.read_bytes()
    filled = [a.replace("{db}", str(db)).replace("{tmp}", str(tmp_path)) for a in args]
    line = _one_error(_flan(filled, tmp_path))
    assert str(db) in line or db.name in line, line
    assert db.read_bytes() == before  # never "repaired" or replaced


@pytest.mark.parametrize(
    "args",
    [
        ["report", str(SAMPLE), "--no-db", "-o", "/proc/flan-test-out"],
        ["report", str(SAMPLE), "--no-db", "-f", "json", "-o", "/proc/version/report.json"],
        ["scan", "127.0.0.1", "--no-db", "--output-dir", "/proc/flan-test-run", "--", "-p", "1"],
        ["report", str(SAMPLE), "--no-db", "-o", "/sys/flan-test-out"],
    ],
)
def test_unwritable_output_paths_are_one_line(args: list[str], tmp_path: Path) -> None:
    _one_error(_flan(args, tmp_path))


def test_full_output_directory_is_one_line(tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(full)],
                             capture_output=True, check=False)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        result = _flan(["report", str(SAMPLE), "--no-db", "-f", "html", "-o", str(full)], tmp_path)
        line = _one_error(result)
        assert "No space left on device" in line, line
        assert not [p for p in full.iterdir() if p.name.endswith(".tmp")]  # no partial file
    finally:
        subprocess.run(["umount", str(full)], check=False)
