"""Paths a user can get wrong end in one line naming the path and the reason, exit 2, and no
traceback: through the real CLI, on real files, devices and kernel pseudo-filesystems."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO.parent / "shared" / "nmap-xml-samples" / "1_hosts.xml"
FLAN = [sys.executable, "-m", "flanscan"]


def _flan(*args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    prefix = ["setpriv", f"--reuid={user}", "--regid=65534", "--clear-groups"] if user else []
    return subprocess.run([*prefix, *FLAN, *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "FLAN_DB": "/nonexistent/vulndb.sqlite3"})  # fmt: skip


def _one_line(r: subprocess.CompletedProcess[str], *expected: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [line for line in r.stderr.splitlines() if line.startswith("flan: error:")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    for part in expected:
        assert part in lines[0], r.stderr


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("/dev/stdout", "/dev/stdout is not a directory"),
        ("/proc/flan-report.json", "/proc is a kernel pseudo-filesystem"),
        ("/proc", "/proc/report.json: cannot write the output file: /proc is a kernel"),
        (str(SAMPLE / "report.json"), f"{SAMPLE} is not a directory"),
    ],
)
def test_report_output_that_cannot_be_written(output: str, expected: str) -> None:
    _one_line(_flan("report", str(SAMPLE), "-f", "json", "-o", output), expected)


def test_report_into_a_directory_without_write_permission() -> None:
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to run flan as another user")
    base = Path(tempfile.mkdtemp(prefix="flan-paths-"))  # pytest's tmp_path is root-only
    try:
        base.chmod(0o755)  # readable, not writable, by `nobody`
        out = base / "out"
        out.mkdir(mode=0o755)
        r = _flan("report", str(SAMPLE), "-f", "json", "-o", str(out), user="nobody")
        _one_line(r, f"{out}/report.json: cannot write the output file: directory {out} is not")
        assert list(out.iterdir()) == []
    finally:
        shutil.rmtree(base)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--output-dir", "/proc/flan-run"], "/proc/flan-run: cannot write the run directory"),
        (["--output-dir", str(SAMPLE / "run")], f"{SAMPLE} is not a directory"),
        (["--history", "/dev/stdout"], "/dev/stdout: cannot write the history database"),
        (["--history", "/tmp"], "/tmp: cannot write the history database: is a directory"),
    ],
)
def test_scan_paths_are_checked_before_scanning(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    if "--output-dir" not in args:
        args = [*args, "--output-dir", str(tmp_path / "run")]
    _one_line(_flan("scan", "--no-db", "127.0.0.1", *args), expected)
    assert not (tmp_path / "run").exists()


def test_report_input_that_is_a_device() -> None:
    _one_line(_flan("report", "/dev/null", "-f", "json"), "/dev/null: a device or pipe, not a file")


def test_history_commands_refuse_a_device() -> None:
    _one_line(_flan("history", "--history", "/dev/null"), "/dev/null: ", "device or pipe")


def test_a_bug_is_exit_70_never_1() -> None:
    # A library function that fails as a bug would: the traceback stays, the status is not the
    # "findings reached --fail-on" of exit 1.
    code = (
        "import sys, flanscan._pipeline as p\n"
        "def boom(*a, **k): raise RuntimeError('simulated bug')\n"
        "p.rebuild_reports = boom\n"
        "from flanscan._cli import main\n"
        "sys.argv = ['flan', *sys.argv[1:]]\n"
        "main()\n"
    )
    r = subprocess.run([sys.executable, "-c", code, "report", str(SAMPLE), "-f", "json"],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 70, r.stderr
    assert "RuntimeError: simulated bug" in r.stderr
    assert r.stderr.strip().splitlines()[-1] == (
        "flan: error: internal error: a bug in flan, not your input (please report it)"
    )
