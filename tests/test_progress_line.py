"""The live progress line: at most 80 columns, and an ETA that counts down and is dropped once
it ran out (never a stale number); checked on the line and on a real `flan scan` in a
pseudo-terminal of 80 columns."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from _banner import BannerServer

from flanscan._scan.display import describe, progress_line
from flanscan._scan.progress import ScanProgress

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def test_line_fits_80_columns_whatever_the_numbers() -> None:
    huge = ScanProgress(
        hosts_total=65_536, hosts_done=65_535, open_ports=999_999, services=99_999,
        elapsed=36_000, eta=35_999, phase="discovering ports, detecting services",
    )  # fmt: skip
    line = progress_line(huge)
    assert len(line) <= 78  # the spinner and a space take the other two columns
    assert line.endswith("65535/65536 hosts, 999999 open, 99999 svc, 10:00:00, ETA 9:59:59")
    assert line.startswith("discovering…: ")  # shortened, not dropped
    short = ScanProgress(hosts_total=4, hosts_done=1, phase="scanning", eta=30, elapsed=5)
    assert progress_line(short) == "scanning: 1/4 hosts, 0 open, 0 svc, 00:05, ETA 00:30"


def test_eta_counts_down_and_is_never_stale() -> None:
    snap = ScanProgress(hosts_total=2, elapsed=10, eta=30, phase="scanning")
    assert describe(snap, since=12).endswith("00:22, ETA 00:18")
    assert "ETA" not in describe(snap, since=31)  # ran out: no number that is no longer true
    patient = ScanProgress(hosts_total=2, elapsed=10, eta=3600, phase="scanning")
    assert "ETA" not in describe(patient, since=61)  # no new estimate for a minute
    assert "ETA" not in describe(ScanProgress(hosts_total=2, eta=None))
    done = ScanProgress(hosts_total=2, hosts_done=2, eta=5, finished=True, phase="finished")
    assert "ETA" not in describe(done)


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
def test_live_display_of_a_real_scan_fits_an_80_column_terminal(tmp_path: Path) -> None:
    with BannerServer() as server:
        out, status = _scan_in_terminal(tmp_path, server.port)
    assert os.waitstatus_to_exitcode(status) == 0, out.decode(errors="replace")
    text = ANSI.sub("", out.decode(errors="replace"))
    lines = [seg for line in text.replace("\r\n", "\n").split("\n") for seg in line.split("\r")]
    progress = [line for line in lines if " hosts, " in line]
    assert progress, text
    assert all(len(line.rstrip()) <= 80 for line in progress), progress
    assert any("1/1 hosts, 1 open" in line for line in progress), progress
    assert [line for line in lines if line.strip()][-1].strip() == str(
        tmp_path / "run" / "report.html"
    )


def _scan_in_terminal(tmp_path: Path, port: int) -> tuple[bytes, int]:
    pid, fd = pty.fork()
    if pid == 0:  # the child: flan on an 80x24 terminal
        os.environ.update(FLAN_DB=str(tmp_path / "none.sqlite3"), TERM="xterm", COLUMNS="80")
        os.execv(sys.executable, [sys.executable, "-m", "flanscan", "scan", "--no-db", "-q",
                                  "--output-dir", str(tmp_path / "run"), "127.0.0.1", "--",
                                  "-p", str(port), "--version-intensity", "0"])  # fmt: skip
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    out = b""
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return out, status


def test_plain_display_lines_fit_too(tmp_path: Path) -> None:
    if shutil.which("nmap") is None:
        pytest.skip("nmap is not installed")
    with BannerServer() as server:
        port = server.port
        proc = subprocess.run(
            [sys.executable, "-m", "flanscan", "scan", "--no-db", "--output-dir",
             str(tmp_path / "run"), "127.0.0.1", "--", "-p", str(port), "--version-intensity",
             "0"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    progress = [line for line in proc.stderr.splitlines() if " hosts, " in line]
    assert progress and all(len(line) <= 80 for line in progress), progress
    # The summary's lines fit as well, and the paths still end stdout.
    assert all(len(line) <= 80 for line in proc.stdout.splitlines()[:-2])
    assert proc.stdout.splitlines()[-1] == str(tmp_path / "run" / "report.html")
