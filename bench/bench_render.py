"""Render every report format from a synthetic scan of 10,000 hosts; print time and memory.

Target (issue 2, "Speed"): all formats together under 30 s and under 500 MB peak memory.
The report is built once from synthetic Nmap XML by the real parser and builder (bench/synth.py);
each format is then rendered in turn in this one process and written to bench/out/. Peak memory
is the process's maximum resident set size (getrusage), so it covers C libraries (WeasyPrint's
Pango/HarfBuzz) as well as Python objects.

    .venv/bin/python bench/bench_render.py [N_HOSTS]
"""

from __future__ import annotations

import gc
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synth import synth_report

from flanscan._render import FORMATS, render

OUT = Path(__file__).resolve().parent / "out"


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    n_hosts = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    t0 = time.perf_counter()
    report = synth_report(n_hosts, OUT)
    build = time.perf_counter() - t0
    pairs = sum(len(sf.locations) for s in report.services for sf in s.findings)
    locations = sum(len(s.locations) for s in report.services)
    print(
        f"synthetic scan: {len(report.hosts)} hosts, {locations} open ports, "
        f"{len(report.services)} services, "
        f"{sum(len(s.findings) for s in report.services)} findings "
        f"({pairs} finding-locations), built in {build:.1f} s, RSS {maxrss_mb():.0f} MB"
    )
    total = 0.0
    total_cpu = 0.0
    for fmt in FORMATS:
        gc.collect()
        t = time.perf_counter()
        c = time.process_time()
        data = render(report, fmt)
        elapsed = time.perf_counter() - t
        cpu = time.process_time() - c
        total += elapsed
        total_cpu += cpu
        (OUT / f"report-{n_hosts}.{fmt}").write_bytes(data)
        print(
            f"  {fmt:5s} {elapsed:6.2f} s (CPU {cpu:5.2f} s)  {len(data) / 1e6:7.1f} MB  "
            f"peak RSS so far {maxrss_mb():.0f} MB"
        )
        del data
    peak = maxrss_mb()
    ok = total < 30 and peak < 500
    print(f"total render time {total:.2f} s wall, {total_cpu:.2f} s CPU (target < 30 s)")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"peak memory (max RSS, whole run) {peak:.0f} MB (target < 500 MB)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
