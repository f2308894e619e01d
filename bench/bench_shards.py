"""Benchmark: the lab scanned as 1, 2 and 4 shards in parallel processes on this machine.

Every shard runs `flan scan --shard I/N` inside the lab's scanner namespace and uploads to an S3
server (moto) on that namespace's loopback; `flan merge` builds the report. Printed per
configuration: wall time of the shards, of the merge, and whether the merged report's services,
locations and vulnerability ids equal those of the unsharded scan.

    .venv/bin/python bench/bench_shards.py [--ports all] [--db FILE]

Needs root (network namespaces), as the lab does. On a 2-core machine more shards mostly add
Nmap start-up and -sV work at once: the figures say what sharding costs when it cannot spread
over machines, not what it gains on a cluster.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "src")]

from test_fleet_lab import (  # noqa: E402
    comparable,
    merge,
    read_report,
    scan_shards,
    scan_unsharded,
    start_namespace_s3,
)

from testlab._lab import Lab, requirement_problems  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ports", choices=["top1000", "all"], default="top1000")
    parser.add_argument("--db", help="vulnerability database (default: none, services only)")
    parser.add_argument("--shards", default="1,2,4", help="shard counts to run (default 1,2,4)")
    args = parser.parse_args()
    problems = requirement_problems()
    if problems:
        print("lab unavailable: " + "; ".join(problems), file=sys.stderr)
        return 2
    extra = ["--ports", args.ports, *(["--db", args.db] if args.db else ["--no-db"])]
    counts = [int(c) for c in args.shards.split(",")]
    with Lab() as lab, tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        work = Path(tmp)
        s3 = start_namespace_s3(lab)
        try:
            t_single = scan_unsharded(lab, work / "single", extra)
            reference = comparable(read_report(work / "single"))
            print(f"lab: {len(lab.targets)} hosts, profile {args.ports}, "
                  f"{len(reference['services'])} services")  # fmt: skip
            print(f"{'configuration':<22} {'shards wall s':>13} {'merge s':>8}  equal to unsharded")
            print(f"{'unsharded (flan scan)':<22} {t_single:>13.1f} {'-':>8}  (reference)")
            for count in counts:
                run_id = f"bench-{count}"
                t_scan = scan_shards(lab, s3, count, run_id, work, extra)
                t0 = time.monotonic()
                result = merge(lab, s3, run_id, work / f"merged-{count}",
                               [*extra[2:], "--no-history"])  # fmt: skip
                t_merge = time.monotonic() - t0
                if result.returncode != 0:
                    print(f"{count} shards: merge failed ({result.returncode}): {result.stderr}")
                    return 1
                same = comparable(read_report(work / f"merged-{count}")) == reference
                label = f"{count} shard(s) parallel"
                print(f"{label:<22} {t_scan:>13.1f} {t_merge:>8.1f}  {'yes' if same else 'NO'}")
        finally:
            s3.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
