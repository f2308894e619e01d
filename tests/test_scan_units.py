"""Scan engine parts without the lab: pass-through flags, Nmap output parsing, displays."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from _banner import BannerServer

from flanscan._errors import UsageError
from flanscan._scan import ScanOptions, ScanProgress, check_scan, default_workers
from flanscan._scan.display import PlainDisplay, describe
from flanscan._scan.nmapargs import PassThrough
from flanscan._scan.nmapout import (
    Done,
    NmapOutputParser,
    OpenPort,
    PortLine,
    PortScanDone,
    Stats,
    Timing,
)
from flanscan._scan.tuning import available_memory_mb, choose
from flanscan._targets import parse_target


def test_pass_through_flags_are_split_into_options() -> None:
    extra = PassThrough.parse(["-sU", "-p", "U:161", "-T4", "--min-rate=50", "-6", "-Pn"])
    assert [o.name for o in extra.options] == ["-sU", "-p", "-T", "--min-rate", "-6", "-Pn"]
    assert extra.udp and extra.ipv6
    assert extra.port_spec == "U:161"
    assert extra.tcp_scan_type is None
    assert extra.words == ["-sU", "-p", "U:161", "-T4", "--min-rate=50", "-6", "-Pn"]
    # service phase: no port spec, no host discovery, no -6 (the engine adds it per host)
    assert extra.service_words() == ["-sU", "-T4", "--min-rate=50"]
    # discovery phase: no probes or scripts, no port spec
    scripted = PassThrough.parse(["--script", "banner", "-sT", "-p22", "--version-all"])
    assert scripted.discovery_words() == ["-sT"]
    assert scripted.tcp_scan_type == "-sT"
    assert scripted.port_spec == "22"


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["-oX", "x.xml"], "flan writes Nmap's XML"),
        (["-oA", "base"], "flan writes Nmap's XML"),
        (["-iL", "hosts.txt"], "give targets as arguments"),
        (["--exclude", "127.0.0.2"], "--exclude-file"),
        (["127.0.0.1"], "is not an option"),
        (["-p"], "needs a value"),
    ],
)
def test_pass_through_refuses_what_flan_owns(args: list[str], problem: str) -> None:
    with pytest.raises(UsageError, match=problem):
        PassThrough.parse(args)


def test_default_workers_grow_with_cores_but_not_beyond_hosts() -> None:
    assert default_workers(1, cores=8) == 1
    assert default_workers(300, cores=2) == 8
    assert default_workers(300, cores=16) == 32
    assert default_workers(None, cores=2) == 8


def test_tuning_follows_hosts_and_memory() -> None:
    big = choose(256, cores=2, available_mb=16_000)
    assert (big.workers, big.min_parallelism) == (8, 96)  # 32 hosts x 3 services each
    assert choose(256, cores=16, available_mb=16_000).workers == 9  # 1 GB / 90 MB per Nmap
    small_memory = choose(256, cores=16, available_mb=800)
    assert small_memory.workers == 2 and small_memory.min_parallelism == 100
    few = choose(8, cores=2, available_mb=16_000)
    assert (few.workers, few.min_parallelism) == (1, 24)
    assert choose(2, cores=2, available_mb=16_000).min_parallelism is None  # Nmap's 10 is enough
    assert choose(256, cores=2, available_mb=16_000, user_timing=True).min_parallelism is None
    assert choose(256, cores=2, available_mb=16_000, workers=64).min_parallelism == 12
    assert available_memory_mb() > 0


def test_tuning_staggers_port_scans_only_where_nmap_filters_by_address_alone() -> None:
    # 32 hosts a worker: Nmap's capture filter names no host, so the 8 workers would read each
    # other's replies: at most 2 start and port-scan at once.
    assert choose(256, cores=2, available_mb=16_000).port_scans_at_once == 2
    assert choose(256, cores=2, available_mb=16_000, user_timing=True).port_scans_at_once == 2
    # 20 hosts or fewer a worker: the filter names them, every worker starts at once.
    assert choose(256, cores=2, available_mb=16_000, workers=13).port_scans_at_once == 13
    assert choose(64, cores=2, available_mb=16_000).port_scans_at_once == 8
    assert choose(8, cores=2, available_mb=16_000).port_scans_at_once == 1


@pytest.fixture
def banner_server() -> Iterator[int]:
    with BannerServer() as server:
        yield server.port


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
def test_output_parser_reads_a_real_nmap_run(banner_server: int) -> None:
    port = banner_server
    out = subprocess.run(
        [
            "nmap",
            "-sT",
            "-sV",
            "-Pn",
            "-n",
            "-v",
            "--stats-every",
            "10ms",
            "-p",
            str(port),
            "127.0.0.1",
            "-oX",
            "/dev/null",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    parser = NmapOutputParser()
    events = [e for e in (parser.feed(line) for line in out.splitlines()) if e is not None]
    assert OpenPort("127.0.0.1", port, "tcp") in events
    rows = [e for e in events if isinstance(e, PortLine)]
    assert [(r.address, r.port, r.state, r.service, r.identified) for r in rows] == [
        ("127.0.0.1", port, "open", "ssh", True)
    ]
    assert events[-1] == Done(1, 1)
    assert any(isinstance(e, Stats) for e in events)
    assert PortScanDone("Connect Scan") in events


def test_output_parser_lines() -> None:
    parser = NmapOutputParser()
    assert parser.feed(
        "Stats: 0:00:01 elapsed; 3 hosts completed (2 up), 2 undergoing SYN Stealth Scan"
    ) == Stats(3, 2, 2)
    assert parser.feed(
        "SYN Stealth Scan Timing: About 76.90% done; ETC: 10:57 (0:01:05 remaining)"
    ) == Timing("SYN Stealth Scan", 76.9, 65.0)
    assert parser.feed("Service scan Timing: About 0.00% done") == Timing("Service scan", 0.0, None)
    assert parser.feed("Discovered open port 22/tcp on fd00:f1a5::11") == OpenPort(
        "fd00:f1a5::11", 22, "tcp"
    )
    parser.feed("Nmap scan report for ssh1.flanlab.test (198.18.0.11)")
    parser.feed("PORT   STATE SERVICE VERSION")
    assert parser.feed("80/tcp open  http?") == PortLine(
        "198.18.0.11", 80, "tcp", "open", "http?", identified=False
    )
    assert parser.feed("Nmap done: 256 IP addresses (3 hosts up) scanned in 5.20 seconds") == Done(
        256, 3
    )
    assert parser.feed(
        "Completed SYN Stealth Scan at 10:58, 13.52s elapsed (32000 total ports)"
    ) == PortScanDone("SYN Stealth Scan")
    # host discovery counts hosts, not ports: the port scan is still to come
    assert parser.feed("Completed Ping Scan at 10:58, 0.03s elapsed (32 total hosts)") is None


def test_plain_display_prints_a_few_lines() -> None:
    stream = io.StringIO()
    display = PlainDisplay(stream, heartbeat=3600)
    display.note("not running as root")
    for done in range(5):
        display.update(ScanProgress(hosts_total=5, hosts_done=done, phase="scanning"))
    final = ScanProgress(hosts_total=5, hosts_done=5, open_ports=7, services=6, elapsed=75,
                         phase="finished", finished=True)  # fmt: skip
    display.close(final)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "flan: note: not running as root",
        "flan: scanning: 0/5 hosts, 0 open, 0 svc, 00:00",
        f"flan: scan finished: {describe(final)}",
    ]
    assert lines[-1].endswith("5/5 hosts, 7 open, 6 svc, 01:15")


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
@pytest.mark.parametrize(
    ("targets", "ports", "flags", "problem"),
    [
        (["127.0.0.1"], "top1000", ["-6"], "-6 scans IPv6 only"),
        (["127.0.0.1"], "all", ["-p", "22"], "names TCP ports"),
        (["127.0.0.1"], "all", ["-p", "22,U:161"], "names TCP ports"),
        (["127.0.0.1"], "all", ["--top-ports", "100"], "remove --top-ports"),
        (["127.0.0.1"], "all", ["-sU"], "say which UDP ports"),
        (["127.0.0.1"], "fast", [], "give top1000, all or an Nmap port list"),
    ],
)
def test_check_scan_refuses_contradictions_without_side_effects(
    tmp_path: Path, targets: list[str], ports: str, flags: list[str], problem: str
) -> None:
    options = ScanOptions(
        targets=tuple(parse_target(t, "arg") for t in targets),
        output_dir=tmp_path / "run",
        ports=ports,
        extra_args=tuple(flags),
    )
    with pytest.raises(UsageError, match=problem):
        check_scan(options)
    assert not (tmp_path / "run").exists()


def test_check_scan_refuses_an_empty_scan_and_a_used_run_dir(tmp_path: Path) -> None:
    target = parse_target("127.0.0.1", "arg")
    with pytest.raises(UsageError, match="every target is excluded"):
        check_scan(ScanOptions(targets=(target,), excludes=(target,), output_dir=tmp_path))
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(UsageError, match="already holds a run"):
        check_scan(ScanOptions(targets=(target,), output_dir=tmp_path))


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="the SYN scan (raw packets) needs root")
def test_workers_of_large_host_groups_start_two_at_a_time(tmp_path: Path) -> None:
    # 3 workers of 21-22 loopback hosts (more than Nmap names in its capture filter): the third
    # starts only once one of the first two reported its port scan done (or held 5 s).
    run = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-m", "flanscan", "scan", "--no-db", "--quiet", "--format", "json",
         "--workers", "3", "--output-dir", str(run), "127.0.2.0/26", "--", "-p", "9"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    workers = json.loads((run / "run.json").read_text())["workers"]
    assert [w["status"] for w in workers] == ["done"] * 3
    start = [datetime.fromisoformat(w["start"]) for w in workers]
    # The first two are started together; Nmap's own start-up (its probe database and scripts)
    # alone takes longer than 0.15 s, so a third started without waiting would be much closer.
    assert (start[1] - start[0]).total_seconds() < 0.5
    assert (start[2] - max(start[:2])).total_seconds() >= 0.15
    for name in ("scan-01", "scan-02"):
        log = (run / "logs" / f"{name}.log").read_text()
        assert "Completed SYN Stealth Scan" in log


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
@pytest.mark.skipif(os.geteuid() != 0, reason="the SYN scan (raw packets) needs root")
@pytest.mark.parametrize("user_flags", [[], ["--min-hostgroup", "30"]])
def test_ports_all_discovery_host_groups(tmp_path: Path, user_flags: list[str]) -> None:
    # flan caps the discovery passes' host groups at 20 (Nmap's capture filter then names the
    # hosts); a user's own host-group flag replaces that cap: Nmap refuses a minimum above
    # the maximum, so adding both would stop the scan.
    run = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-m", "flanscan", "scan", "--no-db", "--quiet", "--format", "json",
         "--ports", "all", "--output-dir", str(run), "127.0.0.1", "--", *user_flags],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    workers = json.loads((run / "run.json").read_text())["workers"]
    discovery = [w for w in workers if w["phase"] == "discovery"]
    assert [w["name"] for w in discovery] == ["discovery-known-01", "discovery-01"]
    for worker in discovery:
        assert worker["status"] == "done"
        has_cap = "--max-hostgroup 20" in worker["command"]
        assert has_cap == (not user_flags), worker["command"]
        if user_flags:
            assert "--min-hostgroup 30" in worker["command"]
