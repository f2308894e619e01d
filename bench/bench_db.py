"""Benchmark `flan db import` on a full-size feed set, and matching against the result.

    .venv/bin/python bench/gen_feeds.py            # once: bench/out/feeds (~300,000 CVEs)
    .venv/bin/python bench/bench_db.py [FEED_DIR] [--db PATH] [--services 10000]

Prints: import wall time (target < 3 min on 2 cores), peak memory of the import process tree
(target < 1 GB), database size (target < 1.5 GB), and the time to match N services after the
database is open (target < 1 s for 10,000).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FLAN = REPO / ".venv" / "bin" / "flan"

# Services as Nmap reports them: (product, CPE vendor:product, versions seen in the field).
SERVICES = [
    ("OpenSSH", "openbsd:openssh", ["7.4", "7.9p1", "8.2p1", "8.9p1", "9.2p1", "9.6p1", "9.8p1"]),
    ("nginx", "igor_sysoev:nginx", ["1.14.2", "1.18.0", "1.22.1", "1.24.0", "1.26.2"]),
    ("Apache httpd", "apache:http_server", ["2.4.6", "2.4.29", "2.4.41", "2.4.49", "2.4.62"]),
    ("vsftpd", "vsftpd_project:vsftpd", ["2.3.4", "3.0.3", "3.0.5"]),
    ("lighttpd", "lighttpd:lighttpd", ["1.4.45", "1.4.59", "1.4.69"]),
    ("Squid http proxy", "squid-cache:squid", ["3.5.27", "4.13", "5.7", "6.6"]),
    ("ISC BIND", "isc:bind", ["9.11.5", "9.16.1", "9.18.19", "9.18.28"]),
    ("Redis key-value store", "redis:redis", ["5.0.7", "6.0.16", "7.0.15", "7.2.4"]),
    ("Memcached", "memcached:memcached", ["1.5.6", "1.6.14", "1.6.21"]),
    ("Dovecot imapd", "dovecot:dovecot", ["2.3.4", "2.3.16", "2.3.19"]),
    ("MySQL", "mysql:mysql", ["5.5.62", "5.7.42", "8.0.35"]),
    ("PostgreSQL DB", "postgresql:postgresql", ["9.6.0", "12.17", "15.5", None]),
    ("Microsoft IIS httpd", "microsoft:internet_information_services", ["7.5", "8.5", "10.0"]),
    ("ProFTPD", "proftpd:proftpd", ["1.3.5", "1.3.6", "1.3.8"]),
    ("Exim smtpd", "exim:exim", ["4.89", "4.92", "4.96"]),
    ("Samba smbd", "samba:samba", ["3.X - 4.X", "4.6.2", "4.17.12"]),
    ("Apache Tomcat", "apache:tomcat", ["8.5.32", "9.0.30", "10.1.16"]),
    ("Jenkins", "jenkins:jenkins", ["2.426.2", "2.440"]),
]


def tree_rss(root: int) -> int:
    """Resident memory (bytes) of `root` and all its descendants, from /proc."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/statm") as fh:
                rss[int(entry)] = int(fh.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
        parents[int(entry)] = int(fields[1])
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(p for p, parent in parents.items() if parent == pid)
    return total


def run_import(feeds: Path, db: Path) -> tuple[float, int, int]:
    """Wall time, peak tree RSS (sampled), and peak single-process RSS of `flan db import`."""
    db.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.Popen([str(FLAN), "db", "import", "--fresh", "--db", str(db), str(feeds)])
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss(proc.pid))
        time.sleep(0.2)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"flan db import failed with exit code {proc.returncode}")
    single = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return wall, peak, single


def bench_incremental(feeds: Path, db: Path, count: int = 5000) -> None:
    """Time an incremental import (what `flan db update` does with the `modified` feed)."""
    import gzip
    import json

    from flanscan._vulndb._files import open_feed
    from flanscan._vulndb._jsonstream import iter_array_items

    source = sorted(feeds.glob("nvdcve-2.0-2*.json.gz"))[-2]
    with open_feed(source) as stream:
        items = iter_array_items(stream, "vulnerabilities")
        assert items is not None
        changed = []
        for item in items:
            item["cve"]["lastModified"] = "2099-01-01T00:00:00.000"
            changed.append(item)
            if len(changed) == count:
                break
    modified = db.parent / "nvdcve-2.0-modified.json.gz"
    doc = {"format": "NVD_CVE", "version": "2.0", "vulnerabilities": changed}
    modified.write_bytes(gzip.compress(json.dumps(doc).encode()))
    start = time.perf_counter()
    subprocess.run([str(FLAN), "db", "import", "--db", str(db), str(modified)], check=True)
    elapsed = time.perf_counter() - start
    modified.unlink()
    print(f"incremental:  {count} changed CVEs merged into the full database in {elapsed:.1f} s")


def make_services(count: int) -> list[object]:
    from flanscan._model import ServiceObservation

    rng = random.Random(7)
    services = []
    for n in range(count):
        product, cpe, versions = rng.choice(SERVICES)
        version = rng.choice(versions)
        cpes = (f"cpe:/a:{cpe}:{version}",) if version else (f"cpe:/a:{cpe}",)
        services.append(
            ServiceObservation(
                address=f"127.0.{n // 250}.{n % 250 + 1}",
                port=rng.choice([21, 22, 25, 53, 80, 443, 3306, 5432, 6379, 8080, 11211]),
                protocol="tcp",
                product=product,
                version=version,
                cpes=cpes,
            )
        )
    return services


def bench_matching(db_path: Path, count: int) -> None:
    from flanscan._vulndb import VulnDb

    services = make_services(count)
    with VulnDb.open(db_path) as db:
        try:
            from flanscan._match import match_service
        except ImportError:
            match_service = None  # type: ignore[assignment]
        start = time.perf_counter()
        findings = 0
        if match_service is not None:
            for service in services:
                findings += len(match_service(service, db))  # type: ignore[arg-type]
            what = "flanscan._match.match_service"
        else:
            for service in services:
                vendor, product = service.cpes[0].split(":")[2:4]  # type: ignore[attr-defined]
                ids = [c.cve_id for c in db.candidates(vendor, product)]
                findings += len(db.vulnerabilities(ids))
            what = "candidates() + vulnerabilities() (matcher not available)"
        elapsed = time.perf_counter() - start
    print(f"matching:     {count} services in {elapsed:.3f} s ({what}; {findings} findings)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("feeds", nargs="?", type=Path, default=REPO / "bench" / "out" / "feeds")
    parser.add_argument("--db", type=Path, default=REPO / "bench" / "out" / "vulndb.sqlite3")
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--skip-import", action="store_true", help="reuse an existing --db")
    args = parser.parse_args()
    if not args.skip_import:
        if not args.feeds.is_dir():
            sys.exit(f"{args.feeds}: no feed set; run bench/gen_feeds.py first")
        gz = sum(p.stat().st_size for p in args.feeds.glob("*.json.gz"))
        print(f"feeds:        {args.feeds} ({gz / 1e6:.0f} MB gzip), {os.cpu_count()} CPUs")
        wall, peak, single = run_import(args.feeds, args.db)
        print(f"import time:  {wall:.1f} s (target < 180 s)")
        print(
            f"peak memory:  {peak / 2**20:.0f} MiB for the process tree, sampled every 0.2 s "
            f"(largest single process {single / 2**20:.0f} MiB; target < 1024 MiB)"
        )
        bench_incremental(args.feeds, args.db)
    size = args.db.stat().st_size
    print(f"db size:      {size / 2**20:.0f} MiB (target < 1536 MiB)")
    from flanscan._vulndb import VulnDb

    with VulnDb.open(args.db) as db:
        status = db.status()
    print(
        f"db content:   {status.cve_count} CVEs, {status.without_configurations} without "
        f"configurations, {status.rejected_count} rejected kept out, {status.products} products"
    )
    bench_matching(args.db, args.services)


if __name__ == "__main__":
    main()
