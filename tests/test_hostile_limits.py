"""Bounded resources on tiny hostile inputs (issue 13, item 7). Each input is generated on the
fly in a temporary directory (tests/hostile_gen.py) and fed through the real CLI in a child
process whose address space is capped at 2 GiB (so a regression fails here instead of taking
the machine's memory); the child's own peak RSS (wait4) must stay small, and where a limit is
hit the error is one line naming the file. Speed figures: bench/bench_hostile.py."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import hostile_gen as gen

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "nmap-xml-samples"
FLAN = [sys.executable, "-m", "flanscan"]
CAP = 2 << 30  # address space of the child: a guard, not the bound asserted
BOUND_MB = 300  # peak RSS every hostile input must stay under


@dataclass
class Run:
    returncode: int
    stderr: str
    maxrss_mb: float


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def measured(args: list[str], cwd: Path, timeout: float = 300) -> Run:
    """flan in a child process: its exit code, stderr and its own peak RSS (wait4)."""
    err = cwd / "stderr.txt"
    with err.open("w") as errf:
        proc = subprocess.Popen([*FLAN, *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=errf,
                                preexec_fn=_cap)  # fmt: skip
        watchdog = threading.Timer(timeout, proc.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            watchdog.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode != -9, f"flan {args[0]} killed after {timeout:g} s"
    return Run(proc.returncode, err.read_text(), usage.ru_maxrss / 1024)


def _refused(run: Run, path: Path, phrase: str) -> None:
    lines = run.stderr.strip().splitlines()
    assert run.returncode == 2, run.stderr[-2000:]
    assert len(lines) == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert path.name in lines[0] and phrase in lines[0], lines[0]
    assert run.maxrss_mb < BOUND_MB, f"peak RSS {run.maxrss_mb:.0f} MB"


def test_nvd_feed_of_deeply_nested_arrays(tmp_path: Path) -> None:
    feed = gen.nested_arrays_feed(tmp_path / "nested.json")
    run = measured(["db", "import", "--db", str(tmp_path / "v.sqlite3"), str(feed)], tmp_path)
    _refused(run, feed, "nested deeper than 64 levels")
    assert not (tmp_path / "v.sqlite3").exists()


def test_gzip_bomb_feed(tmp_path: Path) -> None:
    feed = gen.gzip_of_spaces(tmp_path / "spaces.json.gz")
    assert feed.stat().st_size < 2 << 20
    run = measured(["db", "import", "--db", str(tmp_path / "v.sqlite3"), str(feed)], tmp_path)
    _refused(run, feed, "compression bomb")


def test_zip_bomb_osv_archive(tmp_path: Path) -> None:
    archive = gen.zip_bomb(tmp_path / "all.zip")
    assert archive.stat().st_size < 3 << 20
    run = measured(["db", "import", "--db", str(tmp_path / "v.sqlite3"), str(archive)], tmp_path)
    _refused(run, archive, "inflates to more than 16 MiB")


def test_shard_directory_claiming_a_huge_count(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "shard-0-of-99999999").mkdir(parents=True)
    run = measured(["merge", str(run_dir), "--no-db", "--no-history"], tmp_path)
    _refused(run, run_dir, "at most 10000")


def test_yaml_alias_bomb_in_suppressions(tmp_path: Path) -> None:
    rules = gen.yaml_alias_bomb(tmp_path / "rules.yaml")
    assert rules.stat().st_size < 100_000
    run = measured(["report", str(SAMPLES / "1_hosts.xml"), "--no-db", "--suppressions",
                    str(rules), "-o", str(tmp_path / "out")], tmp_path)  # fmt: skip
    _refused(run, rules, "YAML aliases")


def test_one_gigabyte_of_xml_whitespace(tmp_path: Path) -> None:
    xml = gen.xml_whitespace(tmp_path / "ws.xml")
    run = measured(["report", str(xml), "--no-db", "-f", "json", "-o", str(tmp_path / "out")],
                   tmp_path, timeout=600)  # fmt: skip
    xml.unlink()  # 1 GiB: not kept until the end of the session
    assert run.returncode == 0, run.stderr[-2000:]
    assert "cut short" not in run.stderr  # read to its end, not mistaken for a truncated file
    assert run.maxrss_mb < BOUND_MB, f"peak RSS {run.maxrss_mb:.0f} MB"
    assert (tmp_path / "out" / "report.json").is_file()


def test_distribution_inheritance_is_linear_in_the_ports_of_a_host(tmp_path: Path) -> None:
    # One host with N open ports: the release a service inherits from the host's other services
    # must be worked out once per host, not once per service (which made 10,000 ports 497 s).
    from flanscan._distro._apply import _context
    from flanscan._distro._banner import DistroBuild, detect_build
    from flanscan._model import ServiceObservation
    from flanscan._parse import NmapXmlFile

    calls = 0

    def counting(service: ServiceObservation) -> DistroBuild | None:
        nonlocal calls
        calls += 1
        return detect_build(service)

    n = 2000
    (host,) = list(NmapXmlFile(gen.many_ports(tmp_path / "ports.xml", n)).hosts())
    assert len(host.services) == n
    for service in host.services:
        _context(host, service, counting)
    assert calls <= 2 * n, f"{calls} build detections for {n} services"


def test_limits_leave_real_feeds_alone(nvd_sample: Path, tmp_path: Path) -> None:
    run = measured(["db", "import", "--db", str(tmp_path / "v.sqlite3"), str(nvd_sample)],
                   tmp_path)  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
