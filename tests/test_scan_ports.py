"""`flan scan --ports` with an Nmap port list, and the hints for URLs and host:port targets:
through the real CLI, real Nmap against real servers on loopback."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _banner import BannerServer

from flanscan._nmapopts import PortListError, PortRange, parse_port_list

FLAN = [sys.executable, "-m", "flanscan", "scan", "--no-db", "--format", "json"]


@pytest.fixture
def banner_ports() -> Iterator[list[int]]:
    """Two SSH-banner servers on loopback, on ports the kernel picks."""
    with BannerServer() as one, BannerServer() as two:
        yield [one.port, two.port]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_port_list_parser_reads_nmap_numeric_notation() -> None:
    assert parse_port_list("22,80,8000-8100") == (
        PortRange(None, 22, 22), PortRange(None, 80, 80), PortRange(None, 8000, 8100),
    )  # fmt: skip
    assert parse_port_list("T:22,U:53,161,1024-") == (
        PortRange("tcp", 22, 22), PortRange("udp", 53, 53), PortRange("udp", 161, 161),
        PortRange("udp", 1024, 65535),
    )  # fmt: skip
    for bad in ("", "22,", "http", "70000", "90-80", "22;80", "top100"):
        with pytest.raises(PortListError):
            parse_port_list(bad)


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
def test_ports_list_scans_exactly_those_ports(tmp_path: Path, banner_ports: list[int]) -> None:
    low, high = sorted(banner_ports)
    closed = _free_port()
    spec = f"{low},{closed},{high}-{high}"
    run = tmp_path / "run"
    r = subprocess.run([*FLAN, "127.0.0.1", "--ports", spec, "--output-dir", str(run)],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    record = json.loads((run / "run.json").read_text())
    assert record["ports"] == spec and record["profile"] == spec
    commands = [w["command"] for w in record["workers"]]
    assert commands and all(f"-p {spec}" in c and "-sV" in c for c in commands)
    report = json.loads((run / "report.json").read_text())
    found = {loc["port"] for svc in report["services"] for loc in svc["locations"]}
    assert found == {low, high}
    assert report["scan"]["ports"] == spec


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--ports", "22,http"], "--ports '22,http': 'http' is not a port or range; give top1000"),
        (["--ports", "top100"], "--ports 'top100': 'top100' is not a port or range"),
        (["--ports", "22", "--", "-p", "80"], "--ports 22 and the Nmap flags after `--` both"),
    ],
)
def test_bad_port_lists_are_refused_before_scanning(
    tmp_path: Path, args: list[str], expected: str
) -> None:
    run = tmp_path / "run"
    r = subprocess.run([*FLAN, "127.0.0.1", "--output-dir", str(run), *args],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and expected in r.stderr, r.stderr
    assert not run.exists()


@pytest.mark.parametrize(
    ("target", "hint"),
    [
        ("127.0.0.1:8080", "host:port is not a target: scan the host, e.g. "
         "`flan scan 127.0.0.1 --ports 8080`"),
        ("[::1]:22", "e.g. `flan scan ::1 --ports 22`"),
        ("https://localhost:8443/login", "a URL is not a target: scan the host, e.g. "
         "`flan scan localhost --ports 8443`"),
        ("http://localhost/", "e.g. `flan scan localhost`"),
    ],
)  # fmt: skip
def test_urls_and_host_port_get_a_hint(tmp_path: Path, target: str, hint: str) -> None:
    r = subprocess.run([*FLAN, target, "--output-dir", str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=60)  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and hint in r.stderr, r.stderr
    assert "IPv6" not in r.stderr
