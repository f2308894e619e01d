"""Start-up time of the command line: `flan --help`, `flan report --help`, and `flan report` of a
2-host Nmap XML file without a database (and with one, given `--db`). Target (issue 14): each
`--help` under 150 ms.

Each command runs RUNS times in a fresh process; the median and the best wall time are printed
(the machine is shared: the median says what a user waits, the best what the code costs).
`--compare FLAN` times another installation's `flan` in the same rounds (e.g. main's) and
prints the ratio ours/theirs.

    .venv/bin/python bench/bench_startup.py [--runs 15] [--compare OTHER_FLAN] [--db DB]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLAN = REPO / ".venv" / "bin" / "flan"
TARGET_MS = 150.0

TWO_HOSTS = """<?xml version="1.0" encoding="UTF-8"?>
<nmaprun scanner="nmap" args="nmap -sV 127.0.0.1-2" start="1764000000" version="7.93">
<host><status state="up"/><address addr="127.0.0.1" addrtype="ipv4"/><ports>
<port protocol="tcp" portid="22"><state state="open"/>
<service name="ssh" product="OpenSSH" version="9.2p1" method="probed" conf="10">
<cpe>cpe:/a:openbsd:openssh:9.2p1</cpe></service></port></ports></host>
<host><status state="up"/><address addr="127.0.0.2" addrtype="ipv4"/><ports>
<port protocol="tcp" portid="80"><state state="open"/>
<service name="http" product="nginx" version="1.22.1" method="probed" conf="10"/></port>
</ports></host>
<runstats><finished time="1764000060" exit="success"/><hosts up="2" down="0" total="2"/>
</runstats></nmaprun>
"""


def wall_ms(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(
        command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    return (time.perf_counter() - start) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--compare", type=Path, help="another `flan` to time in the same rounds")
    parser.add_argument("--db", type=Path, help="also time `flan report` of 2 hosts with this DB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        xml = Path(tmp) / "two.xml"
        xml.write_text(TWO_HOSTS)
        env = {**os.environ, "FLAN_DB": str(Path(tmp) / "none.sqlite3")}
        cases = {
            "flan --help": ["--help"],
            "flan report --help": ["report", "--help"],
            "flan report (2 hosts, json)": ["report", str(xml), "--no-db", "-f", "json", "-o", tmp],
        }
        if args.db:
            cases["flan report (2 hosts, json, db)"] = [
                *("report", str(xml), "--db", str(args.db), "-f", "json", "-o", tmp)
            ]
        flans = {"ours": FLAN} | ({"compare": args.compare} if args.compare else {})
        times: dict[tuple[str, str], list[float]] = {}
        for flan in flans.values():  # warm the page cache once
            subprocess.run([str(flan), "--help"], check=True, stdout=subprocess.DEVNULL)
        for _ in range(args.runs):  # interleaved rounds: load changes hit both alike
            for case, argv in cases.items():
                for who, flan in flans.items():
                    times.setdefault((case, who), []).append(wall_ms([str(flan), *argv], env))
    ok = True
    for case in cases:
        ours = times[(case, "ours")]
        line = f"{case:30s} median {statistics.median(ours):6.0f} ms, best {min(ours):5.0f} ms"
        if args.compare:
            theirs = times[(case, "compare")]
            ratio = statistics.median(ours) / statistics.median(theirs)
            line += f"   compare: median {statistics.median(theirs):6.0f} ms (ratio {ratio:.2f})"
        if "--help" in case:
            passed = statistics.median(ours) < TARGET_MS
            ok = ok and passed
            line += f"   target < {TARGET_MS:.0f} ms: {'ok' if passed else 'MISSED'}"
        print(line)
    print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}, {args.runs} runs each")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
