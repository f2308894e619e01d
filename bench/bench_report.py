"""`flan report` of N synthetic hosts against the full-size generated database, one process per
format; prints wall time and peak memory (the process's max RSS) of each.

Targets (issue 14): 100,000 hosts, every text format (json, html, md, csv, tex) under 60 s and
1 GB; 10,000 hosts under 10 s. The hosts are bench/synth.py's Nmap XML (common services, old
and current versions, Debian/Ubuntu builds), matched by the real matcher against the database
that bench/gen_feeds.py + `flan db import` build (about 300,000 CVEs; see bench/bench_db.py).

`--baseline SRC` runs the same commands with another checkout's code (its `src/` first on
PYTHONPATH) in the same rounds, prints the time and memory ratios, and checks that both wrote
byte-identical reports (what "no report line changes" means).

    .venv/bin/python bench/gen_feeds.py && .venv/bin/flan db import --fresh \\
        --db bench/out/vulndb.sqlite3 bench/out/feeds          # once
    .venv/bin/python bench/bench_report.py 100000 [--formats json,csv] [--baseline /tmp/old]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synth import synth_hosts, write_nmap_xml

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "out"
TEXT_FORMATS = ("json", "html", "md", "csv", "tex")
RUN_CLI = "import sys; from flanscan._cli import main; sys.argv[0] = 'flan'; main()"


def run_report(
    xml: Path, db: Path, fmt: str, out: Path, src: Path | None
) -> tuple[float, float, str, float]:
    """Wall seconds, peak RSS (MiB), sha256 of the report, and CPU seconds of one `flan report`
    process (on a shared machine the CPU time is what the run costs; wall time adds waiting)."""
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = str(src / "src")
    command = [sys.executable, "-c", RUN_CLI, "report", str(xml), "--db", str(db)]
    command += ["-f", fmt, "-o", str(out)]
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        sys.exit(f"{' '.join(command)} failed (wait status {status})")
    digest = hashlib.sha256()
    with out.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    cpu = usage.ru_utime + usage.ru_stime
    return wall, usage.ru_maxrss / 1024, digest.hexdigest(), cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hosts", nargs="?", type=int, default=10_000)
    parser.add_argument("--db", type=Path, default=OUT / "vulndb.sqlite3")
    parser.add_argument("--formats", default=",".join(TEXT_FORMATS))
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    args = parser.parse_args()
    if not args.db.is_file():
        sys.exit(f"{args.db}: no database; build it as this script's docstring says")
    OUT.mkdir(parents=True, exist_ok=True)
    xml = OUT / f"synth-{args.hosts}.xml"
    if not xml.exists():
        write_nmap_xml(synth_hosts(args.hosts), xml, "nmap -sS -sV --top-ports 1000 198.18.0.0/15")
    limit_s = 60.0 if args.hosts > 10_000 else 10.0
    print(f"{args.hosts} hosts ({xml.stat().st_size / 1e6:.0f} MB of XML), database {args.db}")
    ok = True
    for fmt in args.formats.split(","):
        ours = run_report(xml, args.db, fmt, OUT / f"report-{args.hosts}.{fmt}", None)
        line = (
            f"  {fmt:5s} {ours[0]:6.1f} s (CPU {ours[3]:5.1f} s)  {ours[1]:6.0f} MiB  "
            f"{(OUT / f'report-{args.hosts}.{fmt}').stat().st_size / 1e6:7.1f} MB"
        )
        passed = ours[0] < limit_s and ours[1] < 1024
        if args.baseline is not None:
            old_out = OUT / f"report-{args.hosts}-baseline.{fmt}"
            old = run_report(xml, args.db, fmt, old_out, args.baseline)
            same = old[2] == ours[2]
            line += (
                f"   baseline {old[0]:6.1f} s (CPU {old[3]:5.1f} s) {old[1]:6.0f} MiB  "
                f"ratio time {ours[0] / old[0]:.2f} CPU {ours[3] / old[3]:.2f}"
                f" memory {ours[1] / old[1]:.2f}  {'identical' if same else 'DIFFERENT'}"
            )
            passed = passed and same
            old_out.unlink()
        if fmt in TEXT_FORMATS:
            ok = ok and passed
            line += f"   target < {limit_s:.0f} s, < 1024 MiB: {'ok' if passed else 'MISSED'}"
        print(line, flush=True)
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
