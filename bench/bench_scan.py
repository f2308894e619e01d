"""Benchmark: `flan scan --ports all` against the original Flan Scan's command, in the lab.

Prints, in one run on the same lab:
- the floor: the slowest single lab service identified alone (`nmap -sV -Pn -p PORT HOST`);
- the original's command over all lab hosts in one process (`nmap -sV --script=vulners`);
- `flan scan --ports all` over the same hosts (the whole command, report included);
- for context, the original as it shipped: one Nmap per ips.txt line, one after another;
and the services each found, with the ratios against the targets (<= 60 % of the original,
<= 1.3x the floor, every lab service found). The vulners script cannot reach its API inside the
lab (no route out): that is the original's behaviour offline.

Usage (root): .venv/bin/python bench/bench_scan.py [--rounds N] [--lab NAME] [--workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from testlab import Lab  # noqa: E402

Service = tuple[str, int]  # (address, port)


def _timed(lab: Lab, argv: list[str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.monotonic()
    r = lab.exec(argv, capture_output=True, text=True, timeout=1800)
    return time.monotonic() - t0, r


def services_in_xml(text: str) -> dict[Service, str]:
    """(address, port) -> product of every open TCP port Nmap named, from XML text."""
    found: dict[Service, str] = {}
    root = ET.fromstring(text)  # our own Nmap run's output, inside the lab
    for host in root.iter("host"):
        addr = next(a.get("addr", "") for a in host.iter("address") if a.get("addrtype") != "mac")
        for port in host.iter("port"):
            state = port.find("state")
            service = port.find("service")
            if state is not None and state.get("state") == "open" and service is not None:
                if service.get("product"):
                    found[(addr, int(port.get("portid", "0")))] = service.get("product", "")
    return found


def services_in_report(path: Path) -> dict[Service, str]:
    data = json.loads(path.read_text())
    return {
        (loc["address"], loc["port"]): svc["product"]
        for svc in data["services"]
        if svc["product"]
        for loc in svc["locations"]
        if loc["protocol"] == "tcp"
    }


def _shown(found: dict[Service, str], expected: dict[Service, str]) -> str:
    hit = sorted(k for k in expected if found.get(k) == expected[k])
    missed = sorted(k for k in expected if found.get(k) != expected[k])
    text = f"{len(hit)}/{len(expected)}"
    if missed:
        text += " missing " + ", ".join(f"{a}:{p} ({expected[(a, p)]})" for a, p in missed)
    return text


def floor(lab: Lab, expected: dict[Service, str]) -> tuple[float, Service, dict[Service, float]]:
    """The slowest single service identified alone, as Nmap does it with nothing else running."""
    times: dict[Service, float] = {}
    for addr, port in sorted(expected):
        seconds, r = _timed(lab, ["nmap", "-sV", "-Pn", "-p", str(port), addr, "-oX", "-"])
        if services_in_xml(r.stdout).get((addr, port)) != expected[(addr, port)]:
            print(f"  warning: {addr}:{port} not identified alone", file=sys.stderr)
        times[(addr, port)] = seconds
    slowest = max(times, key=lambda k: times[k])
    return times[slowest], slowest, times


def original(lab: Lab, targets: list[str]) -> tuple[float, dict[Service, str]]:
    seconds, r = _timed(lab, ["nmap", "-sV", "--script=vulners", "-oX", "-", *targets])
    return seconds, services_in_xml(r.stdout)


def original_per_line(lab: Lab, targets: list[str]) -> tuple[float, dict[Service, str]]:
    total = 0.0
    found: dict[Service, str] = {}
    for target in targets:
        seconds, r = _timed(lab, ["nmap", "-sV", "--script=vulners", "-oX", "-", target])
        total += seconds
        found.update(services_in_xml(r.stdout))
    return total, found


def flan(
    lab: Lab, targets: list[str], workdir: Path, workers: int | None
) -> tuple[float, float, dict[Service, str]]:
    run = workdir / f"run-{time.monotonic_ns()}"
    argv = [sys.executable, "-m", "flanscan", "scan", "--ports", "all", "--no-db",
            "--format", "json", "--output-dir", str(run)]  # fmt: skip
    if workers:
        argv += ["--workers", str(workers)]
    seconds, r = _timed(lab, [*argv, *targets])
    if r.returncode != 0:
        raise SystemExit(f"flan scan failed ({r.returncode}): {r.stderr}")
    meta = json.loads((run / "run.json").read_text())
    from datetime import datetime

    scan_only = (
        datetime.fromisoformat(meta["end"]) - datetime.fromisoformat(meta["start"])
    ).total_seconds()
    return seconds, scan_only, services_in_report(run / "report.json")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="repeat and report medians")
    parser.add_argument("--lab", help="use this running lab (python -m testlab up) instead")
    parser.add_argument("--workers", type=int, default=None, help="flan scan --workers")
    parser.add_argument("--skip-per-line", action="store_true",
                        help="skip the original-as-shipped (one Nmap per line) timing")  # fmt: skip
    args = parser.parse_args()

    lab = Lab.attach(args.lab) if args.lab else Lab().up()
    try:
        targets = lab.targets
        expected = {
            (loc.address, loc.service.port): loc.service.nmap_product or ""
            for loc in lab.service_locations()
            if loc.service.protocol == "tcp"
        }
        print(f"lab: {len(targets)} hosts, {len(expected)} TCP services; "
              f"Nmap floor, original and flan timed {args.rounds}x")  # fmt: skip
        rows: dict[str, list[float]] = {"floor": [], "original": [], "flan": [], "flan_scan": []}
        per_line: list[float] = []
        with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
            for n in range(1, args.rounds + 1):
                f_s, slowest, times = floor(lab, expected)
                o_s, o_found = original(lab, targets)
                w_s, w_scan, w_found = flan(lab, targets, Path(tmp), args.workers)
                rows["floor"].append(f_s)
                rows["original"].append(o_s)
                rows["flan"].append(w_s)
                rows["flan_scan"].append(w_scan)
                print(f"\nround {n}")
                for (addr, port), seconds in sorted(times.items()):
                    print(
                        f"  alone  {addr}:{port:<5} {expected[(addr, port)]:<22} {seconds:6.2f} s"
                    )
                print(f"  floor (slowest alone, {slowest[0]}:{slowest[1]}): {f_s:6.2f} s")
                print(f"  original, one process:        {o_s:6.2f} s  "
                      f"services {_shown(o_found, expected)}")  # fmt: skip
                print(f"  flan scan --ports all:        {w_s:6.2f} s  "
                      f"(scan {w_scan:.2f} s) services {_shown(w_found, expected)}")  # fmt: skip
                if not args.skip_per_line and n == 1:
                    p_s, p_found = original_per_line(lab, targets)
                    per_line.append(p_s)
                    print(f"  original as shipped, one Nmap per line: {p_s:6.2f} s  "
                          f"services {_shown(p_found, expected)}")  # fmt: skip
        med = {k: statistics.median(v) for k, v in rows.items()}
        all_found = _shown(w_found, expected).startswith(f"{len(expected)}/")
        print(
            f"\nmachine load average (1 min) at the end: {os.getloadavg()[0]:.2f} on "
            f"{os.cpu_count()} cores (other work on the machine slows every figure)"
        )
        print("medians")
        print(f"  floor {med['floor']:.2f} s, original {med['original']:.2f} s, "
              f"flan {med['flan']:.2f} s (scan part {med['flan_scan']:.2f} s)")  # fmt: skip
        r_orig = med["flan"] / med["original"]
        r_floor = med["flan"] / med["floor"]
        print(f"  flan / original = {r_orig:.2f}  (target <= 0.60: "
              f"{'met' if r_orig <= 0.60 else 'NOT met'})")  # fmt: skip
        print(f"  flan / floor    = {r_floor:.2f}  (target <= 1.30: "
              f"{'met' if r_floor <= 1.30 else 'NOT met'})")  # fmt: skip
        print(f"  all lab services found by flan: {'yes' if all_found else 'NO'}")
        if per_line:
            print(f"  flan / original as shipped (one Nmap per line) = "
                  f"{med['flan'] / per_line[0]:.2f}")  # fmt: skip
    finally:
        if not args.lab:
            lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
