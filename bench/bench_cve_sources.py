"""Benchmark `flan db import` of full-size CVE 5 and override archives, and matching with every
tier active.

    .venv/bin/python bench/gen_cve_sources.py       # once: bench/out/cve-sources
    .venv/bin/python bench/bench_db.py              # once: the NVD database to grow
    .venv/bin/python bench/bench_cve_sources.py [--base bench/out/vulndb.sqlite3]

Copies the base database (the 300,000-CVE NVD one from bench_db.py; an empty start without
it), then runs `flan db import` of `cvelistV5.zip` and `nvd-data-overrides.tar.gz` in one call.
Prints the import's wall time (target < 5 min), the peak memory of the import process tree
(target < 1 GB), the database's growth, and the time to match 10,000 services (target < 1 s)
after the database is open, with the CVE 5, override, distribution and description tiers.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from bench_db import FLAN, make_services, tree_rss  # noqa: E402


def run_import(db: Path, files: list[Path]) -> tuple[float, int]:
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(FLAN), "db", "import", "--db", str(db), *map(str, files)],
        stdout=subprocess.DEVNULL,
    )
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.2)
    if proc.returncode != 0:
        sys.exit(f"flan db import failed with exit code {proc.returncode}")
    return time.perf_counter() - start, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=Path, default=REPO / "bench/out/cve-sources")
    parser.add_argument("--base", type=Path, default=REPO / "bench/out/vulndb.sqlite3")
    parser.add_argument("--db", type=Path, default=REPO / "bench/out/vulndb-sources.sqlite3")
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--skip-import", action="store_true", help="reuse an existing --db")
    args = parser.parse_args()
    files = [args.sources / "cvelistV5.zip", args.sources / "nvd-data-overrides.tar.gz"]
    if not all(f.is_file() for f in files):
        sys.exit(f"{args.sources}: run bench/gen_cve_sources.py first")
    args.db.unlink(missing_ok=True)
    before = 0
    if args.base.is_file():
        shutil.copyfile(args.base, args.db)
        before = args.db.stat().st_size
    sizes = ", ".join(f"{f.name} {f.stat().st_size / 2**20:.0f} MiB" for f in files)
    print(
        f"archives:     {sizes}; base {args.base if before else 'none'} ({before / 2**20:.0f} MiB)"
    )
    wall, peak = run_import(args.db, files)
    print(f"import time:  {wall:.1f} s (target < 300 s)")
    print(f"peak memory:  {peak / 2**20:.0f} MiB, process tree sampled every 0.2 s (target < 1024)")
    after = args.db.stat().st_size
    grown = (after - before) / 2**20
    print(f"db growth:    {before / 2**20:.0f} -> {after / 2**20:.0f} MiB (+{grown:.0f} MiB)")

    from flanscan._match import Matcher
    from flanscan._vulndb import VulnDb

    services = make_services(args.services)
    with VulnDb.open(args.db) as db:
        for source in db.status().sources:
            f = source.figures
            tiers = ", ".join(f"{t} {c}" for t, c, _ in f.tiers)
            print(f"source:       {source.name}: {f.records} records; {tiers}")
        # As a scan runs by default (--min-confidence medium: the description tier is skipped),
        # then with --min-confidence possible; each from a fresh Matcher (cold caches).
        results = []
        for possible in (False, True):
            matcher = Matcher(db)
            start, cpu = time.perf_counter(), time.process_time()
            found = [matcher.match(s, include_possible=possible) for s in services]  # type: ignore[arg-type]
            elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
            by_source: Counter[str] = Counter(f.match_source.value for fs in found for f in fs)
            results.append((possible, elapsed, cpu, by_source))
    for possible, elapsed, cpu, by_source in results:
        found = ", ".join(f"{k} {v}" for k, v in by_source.most_common())
        level = "possible" if possible else "medium (default)"
        print(
            f"matching:     {args.services} services in {elapsed:.3f} s ({cpu:.3f} s CPU), "
            f"--min-confidence {level} (target < 1 s; findings: {found})"
        )


if __name__ == "__main__":
    main()
