"""`flan scan` end to end: real Nmap against the lab's real daemons (and a few checks that stop
before any packet is sent). Expected products, versions and ports come from the lab manifest."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _interrupt import default_sigint

from testlab import Lab

REPO = Path(__file__).resolve().parent.parent
FLAN = [sys.executable, "-m", "flanscan", "scan", "--no-db"]
TOP1000_PORTS = {21, 22, 80, 5432}  # lab ports inside Nmap's top 1000 (6379, 11211 are not)


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A run directory that the unprivileged user `nobody` may write too."""
    base = Path(tempfile.mkdtemp(prefix="flan-scan-test-"))
    base.chmod(0o777)
    yield base / "run"
    shutil.rmtree(base, ignore_errors=True)


def _flan(lab: Lab, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return lab.exec([*FLAN, *args], capture_output=True, text=True, timeout=600, **kwargs)


def _report(run: Path) -> dict[str, Any]:
    data = json.loads((run / "report.json").read_text())
    assert isinstance(data, dict)
    return data


def _found(report: dict[str, Any]) -> dict[tuple[str, int, str], tuple[str | None, str | None]]:
    """(address, port, protocol) -> (product, version) from a JSON report."""
    return {
        (loc["address"], loc["port"], loc["protocol"]): (svc["product"], svc["version"])
        for svc in report["services"]
        for loc in svc["locations"]
    }


def _expected(lab: Lab, ports: set[int] | None = None) -> dict[tuple[str, int, str], Any]:
    return {
        (loc.address, loc.service.port, loc.service.protocol): (
            loc.service.nmap_product,
            loc.service.nmap_version,
        )
        for loc in lab.service_locations()
        if ports is None or loc.service.port in ports
    }


def _matches(found: dict[Any, Any], expected: dict[Any, Any]) -> bool:
    """Same locations and products; versions equal where the manifest knows Nmap's version."""
    if set(found) != set(expected):
        return False
    return all(
        found[k][0] == product and (version is None or found[k][1] == version)
        for k, (product, version) in expected.items()
    )


def _run_json(run: Path) -> dict[str, Any]:
    data = json.loads((run / "run.json").read_text())
    assert isinstance(data, dict)
    return data


# --- lab scans ---------------------------------------------------------------------------------


def test_default_profile_splits_targets_over_workers_and_merges(lab: Lab, run_dir: Path) -> None:
    r = _flan(lab, "--workers", "2", "--format", "json", "--output-dir", str(run_dir), *lab.targets)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == str(run_dir / "report.json")
    xml_files = sorted((run_dir / "xml").glob("*.xml"))
    assert [p.name for p in xml_files] == ["scan-01.xml", "scan-02.xml"]
    scanned = []
    for path in xml_files:
        root = ET.parse(path).getroot()
        scanned.append({a.get("addr") for a in root.iter("address") if a.get("addrtype") == "ipv4"})
        assert "-sV" in root.get("args", "") and "-sS" in root.get("args", "")
    assert scanned[0] and scanned[1] and not scanned[0] & scanned[1]
    assert scanned[0] | scanned[1] == set(lab.targets)
    # the merged report holds what both workers found: every lab service in the top 1000 ports
    found = _found(_report(run_dir))
    assert {k: v[0] for k, v in found.items()} == {
        k: v[0] for k, v in _expected(lab, TOP1000_PORTS).items()
    }
    run = _run_json(run_dir)
    assert run["status"] == "complete"
    assert run["profile"] == "top1000" and run["ports"] == "top-1000"
    assert [w["status"] for w in run["workers"]] == ["done", "done"]
    assert set(run["targets"]) == set(lab.targets)


def test_ports_all_finds_services_outside_the_top_1000(lab: Lab, run_dir: Path) -> None:
    hosts = [h for h in lab.hosts if any(s.port in (6379, 11211) for s in h.services)]
    assert hosts, "the lab manifest has no service outside the top 1000"
    targets = [h.ipv4 for h in hosts]
    r = _flan(lab, "--ports", "all", "--format", "json", "--output-dir", str(run_dir), *targets)
    assert r.returncode == 0, r.stderr
    found = _found(_report(run_dir))
    expected = {k: v for k, v in _expected(lab).items() if k[0] in targets}
    assert {(11211, "tcp"), (6379, "tcp")} <= {(k[1], k[2]) for k in expected}
    assert _matches(found, expected)  # products and versions as the manifest says, all found
    names = {p.name for p in (run_dir / "xml").glob("*.xml")}
    assert any(n.startswith("discovery-") for n in names)
    assert any(n.startswith("service-") for n in names)
    run = _run_json(run_dir)
    assert run["ports"] == "1-65535"
    commands = " ".join(run["nmap_commands"])
    assert "-p T:1-65535" in commands and "-sV -Pn" in commands


# A port with no entry in Nmap's nmap-services: only the full pass of --ports all looks there.
UNKNOWN_PORT = 47123


def _nmap_known_tcp_ports() -> set[int]:
    nmap = shutil.which("nmap")
    assert nmap is not None
    services = Path(nmap).resolve().parent.parent / "share" / "nmap" / "nmap-services"
    ports = set()
    for line in services.read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and not line.startswith("#") and words[1].endswith("/tcp"):
            ports.add(int(words[1].split("/")[0]))
    return ports


def test_ports_all_full_pass_finds_a_service_on_a_port_nmap_does_not_know(
    lab: Lab, run_dir: Path
) -> None:
    assert UNKNOWN_PORT not in _nmap_known_tcp_ports()
    db = next(h for h in lab.hosts if any(s.port == 6379 for s in h.services))
    host = lab.set_banner_host("SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n", port=UNKNOWN_PORT)
    try:
        r = _flan(lab, "--ports", "all", "--format", "json", "--output-dir", str(run_dir),
                  host.ipv4, db.ipv4)  # fmt: skip
    finally:
        lab.clear_banner_host()
    assert r.returncode == 0, r.stderr
    found = _found(_report(run_dir))
    assert found[(host.ipv4, UNKNOWN_PORT, "tcp")] == ("OpenSSH", "9.2p1 Debian 2+deb12u3")
    expected = {k: v for k, v in _expected(lab).items() if k[0] == db.ipv4}
    assert _matches({k: v for k, v in found.items() if k[0] == db.ipv4}, expected)
    # The quick pass (Nmap's known ports) did not see the port; the full pass did.
    xml = run_dir / "xml"
    known = " ".join(p.read_text() for p in xml.glob("discovery-known-*.xml"))
    full = " ".join(p.read_text() for p in xml.glob("discovery-[0-9]*.xml"))
    assert f'portid="{UNKNOWN_PORT}"' not in known
    assert f'portid="{UNKNOWN_PORT}"' in full
    assert _run_json(run_dir)["status"] == "complete"


def test_nmap_flags_after_double_dash_pass_through(lab: Lab, run_dir: Path) -> None:
    files = next(h for h in lab.hosts if h.udp_services)
    udp = files.udp_services[0]
    tcp_outside = next(s for s in files.services if s.port not in TOP1000_PORTS)
    r = _flan(
        lab, "--format", "json", "--output-dir", str(run_dir), files.ipv4,
        "--", "-sU", "-sS", "-p", f"U:{udp.port},T:{tcp_outside.port}", "--version-intensity", "0",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    found = _found(_report(run_dir))
    assert (files.ipv4, udp.port, "udp") in found
    assert found[(files.ipv4, tcp_outside.port, "tcp")][0] == tcp_outside.nmap_product
    assert set(found) == {(files.ipv4, udp.port, "udp"), (files.ipv4, tcp_outside.port, "tcp")}
    (command,) = _run_json(run_dir)["nmap_commands"]
    assert f"-sU -sS -p U:{udp.port},T:{tcp_outside.port} --version-intensity 0" in command


def test_ipv6_targets_get_nmap_dash_6(lab: Lab, run_dir: Path) -> None:
    host = next(h for h in lab.hosts if h.ipv6 and h.services)
    assert host.ipv6 is not None
    r = _flan(lab, "--format", "json", "--output-dir", str(run_dir), host.ipv6)
    assert r.returncode == 0, r.stderr
    found = _found(_report(run_dir))
    expected = {
        (loc.address, loc.service.port, loc.service.protocol): (
            loc.service.nmap_product, loc.service.nmap_version)
        for loc in lab.service_locations(ipv6=True) if loc.address == host.ipv6
    }  # fmt: skip
    assert _matches(found, expected)
    assert " -6 " in _run_json(run_dir)["nmap_commands"][0]


def test_not_root_falls_back_to_a_connect_scan_and_says_so_once(lab: Lab, run_dir: Path) -> None:
    host = next(h for h in lab.hosts if any(s.port == 21 for s in h.services))
    # The venv's interpreter lives under /root; `nobody` runs Debian's python3 on the same code.
    site = next((REPO / ".venv" / "lib").glob("python3*/site-packages"))
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{site}"}
    argv = ["/usr/bin/python3", "-m", "flanscan", "scan", "--no-db", "--format", "json",
            "--output-dir", str(run_dir), host.ipv4]  # fmt: skip
    r = lab.exec(argv, user="nobody", capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("TCP connect scan (-sT)") == 1
    (xml,) = (run_dir / "xml").glob("*.xml")
    assert ET.parse(xml).getroot().find("scaninfo").get("type") == "connect"  # type: ignore[union-attr]
    run = _run_json(run_dir)
    assert run["scan_type"] == "-sT" and run["privileged"] is False
    found = _found(_report(run_dir))
    assert found[(host.ipv4, 21, "tcp")][0] == host.service("vsftpd").nmap_product


def test_interrupted_scan_keeps_xml_reports_what_finished_and_exits_3(
    lab: Lab, run_dir: Path
) -> None:
    proc = lab.popen(
        [*FLAN, "--ports", "all", "--format", "json", "--output-dir", str(run_dir), *lab.targets],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,  # as in a terminal, even when the suite runs in the background
    )
    # Interrupt once service detection has written XML: its host is then half done.
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size > 0 for p in (run_dir / "xml").glob("service-*.xml")):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail("no service-detection process wrote XML within 60 s")
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    assert "interrupted" in err
    assert out.strip().splitlines()[-1] == str(run_dir / "report.json")
    run = _run_json(run_dir)
    assert run["status"] == "interrupted"
    assert "interrupted" in {w["status"] for w in run["workers"]}
    assert run["incomplete_targets"]
    started = [w for w in run["workers"] if w["status"] != "not-started"]
    assert any(w["xml"] for w in started)
    for worker in started:
        if worker["xml"] is not None:  # what Nmap wrote is kept as it wrote it
            assert (run_dir / worker["xml"]).stat().st_size > 0
        else:  # stopped before Nmap wrote anything: no file, its targets not checked
            assert worker["status"] in ("interrupted", "failed")
            assert not (run_dir / "xml" / f"{worker['name']}.xml").exists()
            assert set(worker["targets"]) <= set(run["incomplete_targets"])
    report = _report(run_dir)
    assert report["scan"]["incomplete_targets"] == run["incomplete_targets"]
    assert _nmaps_in(run_dir) == []  # no Nmap left running


def _nmaps_in(run: Path) -> list[int]:
    """Pids of Nmap processes working in the run directory (their current directory)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if (proc / "comm").read_text().strip() == "nmap" and (proc / "cwd").resolve() == run:
                pids.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return pids


# --- checks before scanning (no packet sent) ----------------------------------------------------


def _flan_here(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FLAN, *args], capture_output=True, text=True, timeout=120, cwd=REPO, **kwargs
    )


def test_nmap_missing_is_one_line_and_exit_2(run_dir: Path) -> None:
    env = {**os.environ, "PATH": str(run_dir.parent)}  # a PATH without nmap
    r = _flan_here("--output-dir", str(run_dir), "127.0.0.1", env=env)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "nmap is not installed" in lines[0] and "apt-get install nmap" in lines[0]
    assert not run_dir.exists()


def test_bad_target_file_stops_before_scanning(run_dir: Path) -> None:
    ips = run_dir.parent / "ips.txt"
    ips.write_text("127.0.0.1\n# fine\n127.0.0.300\n")
    r = _flan_here("-iL", str(ips), "--output-dir", str(run_dir))
    assert r.returncode == 2
    assert r.stderr.strip() == f"flan: error: {ips}:3: '127.0.0.300': not a valid IPv4 address" + (
        " (Octet 300 (> 255) not permitted in '127.0.0.300')"
    )
    assert not run_dir.exists()


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
def test_flag_nmap_refuses_is_a_usage_error(run_dir: Path) -> None:
    # Nmap quits while parsing its arguments: nothing is sent.
    r = _flan_here("--output-dir", str(run_dir), "127.0.0.1", "--", "--max-os-tries", "99")
    assert r.returncode == 2, r.stderr
    assert "nmap refused to run: Bogus --max-os-tries argument" in r.stderr


def test_flags_flan_owns_are_refused(run_dir: Path) -> None:
    r = _flan_here("--output-dir", str(run_dir), "127.0.0.1", "--", "-oX", "x.xml")
    assert r.returncode == 2
    assert "flan writes Nmap's XML" in r.stderr
    assert not run_dir.exists()


def test_help_documents_exit_codes_and_pass_through() -> None:
    r = subprocess.run([sys.executable, "-m", "flanscan", "scan", "--help"],
                       capture_output=True, text=True, check=True)  # fmt: skip
    assert "[-- NMAP_FLAGS...]" in r.stdout
    for code in ("0  done", "2  usage or environment error", "3  scan incomplete"):
        assert code in r.stdout


def test_a_failing_worker_leaves_the_others_and_exits_3(lab: Lab, run_dir: Path) -> None:
    proc = lab.popen(
        [*FLAN, "--workers", "2", "--format", "json", "--output-dir", str(run_dir), *lab.targets],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    victim = None
    deadline = time.monotonic() + 60
    while victim is None and time.monotonic() < deadline:
        for pid in _nmaps_in(run_dir):
            if "xml/scan-01.xml" in Path(f"/proc/{pid}/cmdline").read_text():
                victim = pid
        time.sleep(0.05)
    assert victim is not None, "worker scan-01 never started"
    os.kill(victim, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 3, err
    assert "failed" in err
    run = _run_json(run_dir)
    status = {w["name"]: w for w in run["workers"]}
    assert status["scan-01"]["status"] == "failed" and status["scan-02"]["status"] == "done"
    assert run["status"] == "incomplete"
    assert run["incomplete_targets"] == status["scan-01"]["targets"]
    # the other worker's hosts are in the report
    found = _found(_report(run_dir))
    survivors = set(status["scan-02"]["targets"])
    expected = {k for k in _expected(lab, TOP1000_PORTS) if k[0] in survivors}
    assert expected and expected <= set(found)
    assert out.strip().splitlines()[-1] == str(run_dir / "report.json")
