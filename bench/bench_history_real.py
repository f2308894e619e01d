"""Benchmark: history record + diff of two real N-host reports against the full-size generated
database, on SQLite and PostgreSQL; prints wall and CPU time, peak memory and size on disk.

Target (issue 14): 100,000 hosts, recording both runs and diffing them under 60 s and 1 GB per
backend. The runs are bench/synth.py's Nmap XML matched by the real matcher against the
database bench/gen_feeds.py + `flan db import` build (about 300,000 CVEs): about 19 million
finding-locations per run. The second run is the first a week later: every 20th host changed
a service's version, every 50th closed a port, every 100th went away, 1 % more hosts.

Each run's report is built once in its own process and recorded into both backends there; each
diff runs in a fresh process. Peak memory is the process's peak RSS during that step alone
(reset through /proc/self/clear_refs): the record's figure includes the report it records, which
the scan holds anyway (the report build's own peak is printed beside it). PostgreSQL's CPU is
the server's, not counted in the flan process's CPU time: see the wall time.

`--baseline SRC` runs the same steps with another checkout's code (e.g. the former layout, one
row per finding and location: `git archive 3644bc4 src | tar -x -C /tmp/before`), checks that
both give the same changes, then opens the baseline's stores with this checkout (which migrates
them, timed) and diffs them again: the same changes again.

    .venv/bin/python bench/gen_feeds.py && .venv/bin/flan db import --fresh \\
        --db bench/out/vulndb.sqlite3 bench/out/feeds          # once
    .venv/bin/python bench/bench_history_real.py 100000 [--baseline /tmp/before]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from synth import CATALOGUE, synth_hosts, write_nmap_xml  # noqa: E402

from flanscan._model import HostObservation  # noqa: E402

ARGS = "nmap -sS -sV --top-ports 1000 198.18.0.0/15"
_PRODUCTS = {p.product: p for p in CATALOGUE}


def second_run(n_hosts: int) -> Iterator[HostObservation]:
    """The first run's hosts a week later, with changes (see the module docstring)."""
    for i, host in enumerate(synth_hosts(n_hosts + n_hosts // 100)):
        if i < n_hosts and i % 100 == 99:
            continue
        services = list(host.services)
        if i % 20 == 0 and services:
            svc = services[0]
            product = _PRODUCTS.get(svc.product or "")
            if product is not None and len(product.versions) > 1:
                at = product.versions.index(svc.version) if svc.version in product.versions else 0
                version = product.versions[(at + 1) % len(product.versions)]
                cpe = f"cpe:/a:{product.vendor_product}" + (f":{version}" if version else "")
                services[0] = dataclasses.replace(svc, version=version, cpes=(cpe,))
        if i % 50 == 0 and len(services) > 1:
            services.pop()
        yield dataclasses.replace(host, services=tuple(services))


# --------------------------------------------------------------------------- child steps


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _peak_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _timed_start() -> tuple[float, float]:
    _reset_peak()
    return time.perf_counter(), time.process_time()


def _figures(start: tuple[float, float]) -> dict[str, float]:
    return {
        "wall": time.perf_counter() - start[0],
        "cpu": time.process_time() - start[1],
        "peak": _peak_mib(),
    }


def _size(url: str) -> int:
    """Bytes on disk of the store (SQLite: file after a WAL checkpoint; PostgreSQL: database)."""
    if url.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(url) as conn:
            row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
            return int(row[0]) if row else 0
    conn = sqlite3.connect(url)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return Path(url).stat().st_size


def child_record(xml: Path, db: Path, days: int, urls: list[str]) -> None:
    from flanscan._history import open_history
    from flanscan._pipeline import ReportOptions, report_from_xml

    start = _timed_start()
    report = report_from_xml([xml], ReportOptions(db_path=db, record_history=False))
    scan = report.scan
    assert scan.start is not None
    report = dataclasses.replace(
        report, scan=dataclasses.replace(scan, start=scan.start + timedelta(days=days))
    )
    pairs = sum(len(sf.locations) for s in report.services for sf in (*s.findings, *s.product_only))
    result: dict[str, object] = {"build": _figures(start), "finding_locations": pairs}
    for url in urls:
        before = _size(url)
        start = _timed_start()
        with open_history(url) as store:
            run_id = store.record(report)
        result[url] = {**_figures(start), "run_id": run_id, "bytes": _size(url) - before}
    print(json.dumps(result))


def child_diff(url: str, old_id: str, new_id: str) -> None:
    from flanscan._history import open_history
    from flanscan._history._format import changes_as_text

    start = _timed_start()
    with open_history(url) as store:
        changes = store.diff(old_id, new_id)
    figures = _figures(start)
    text = changes_as_text(changes)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    print(json.dumps({**figures, "changes": len(changes.items), "digest": digest}))


def child_migrate(url: str, old_id: str, new_id: str) -> None:
    from flanscan._history import open_history

    before = _size(url)
    start = _timed_start()
    with open_history(url):
        pass
    figures = _figures(start)
    print(json.dumps({**figures, "bytes_before": before, "bytes_after": _size(url)}))
    child_diff(url, old_id, new_id)


# --------------------------------------------------------------------------- orchestration


def _child(src: Path, *argv: str, lines: int = 1) -> list[dict[str, object]]:
    env = dict(os.environ, PYTHONPATH=str(src / "src"))
    proc = subprocess.run(
        [sys.executable, __file__, "--child", *argv],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"step {argv[0]} failed:\n{proc.stderr[-3000:]}")
    return [json.loads(line) for line in proc.stdout.strip().splitlines()[-lines:]]


def _mb(n: object) -> str:
    return f"{int(n) / 1e6:7.1f} MB"  # type: ignore[call-overload]


def bench_layout(
    label: str, src: Path, xmls: tuple[Path, Path], db: Path, urls: dict[str, str]
) -> tuple[bool, dict[str, str]]:
    """Record both runs and diff them with the code in `src`; True when within target."""
    print(f"== {label} ({src / 'src'})", flush=True)
    ids: dict[str, list[str]] = {name: [] for name in urls}
    totals: dict[str, float] = dict.fromkeys(urls, 0.0)
    peaks: dict[str, float] = dict.fromkeys(urls, 0.0)
    for n, (xml, days) in enumerate(((xmls[0], 0), (xmls[1], 7))):
        res = _child(src, "record", str(xml), str(db), str(days), *urls.values())[0]
        build = res["build"]
        assert isinstance(build, dict)
        print(
            f"  run {n + 1}: report built {build['wall']:6.1f} s (CPU {build['cpu']:5.1f} s), "
            f"peak {build['peak']:5.0f} MiB, {res['finding_locations']:,} finding-locations"
        )
        for name, url in urls.items():
            step = res[url]
            assert isinstance(step, dict)
            ids[name].append(str(step["run_id"]))
            totals[name] += float(step["wall"])
            peaks[name] = max(peaks[name], float(step["peak"]))
            print(
                f"    {name:10s} record {step['wall']:6.1f} s (CPU {step['cpu']:5.1f} s)  "
                f"peak {step['peak']:5.0f} MiB  on disk +{_mb(step['bytes'])}",
                flush=True,
            )
    ok = True
    digests: dict[str, str] = {}
    for name, url in urls.items():
        res = _child(src, "diff", url, *ids[name])[0]
        totals[name] += float(res["wall"])  # type: ignore[arg-type]
        peaks[name] = max(peaks[name], float(res["peak"]))  # type: ignore[arg-type]
        digests[name] = str(res["digest"])
        within = totals[name] < 60 and peaks[name] < 1024
        ok = ok and within
        print(
            f"    {name:10s} diff   {res['wall']:6.1f} s (CPU {res['cpu']:5.1f} s)  "
            f"peak {res['peak']:5.0f} MiB  {res['changes']} changes (text sha256 "
            f"{res['digest']})\n    {name:10s} record both + diff {totals[name]:6.1f} s wall, "
            f"peak {peaks[name]:5.0f} MiB: target < 60 s, < 1024 MiB "
            f"{'ok' if within else 'MISSED'}",
            flush=True,
        )
    return ok, digests, ids


def bench_migration(urls: dict[str, str], ids: dict[str, list[str]]) -> dict[str, str]:
    """Open stores the baseline wrote with this checkout (migrating them) and diff again."""
    print("== the baseline's stores opened by this checkout (migration), then diffed")
    digests = {}
    for name, url in urls.items():
        migrated, res = _child(REPO, "migrate", url, *ids[name], lines=2)
        digests[name] = str(res["digest"])
        print(
            f"    {name:10s} migrate {migrated['wall']:6.1f} s (CPU {migrated['cpu']:5.1f} s)  "
            f"peak {migrated['peak']:5.0f} MiB  {_mb(migrated['bytes_before'])} -> "
            f"{_mb(migrated['bytes_after'])}\n    {name:10s} diff   {res['wall']:6.1f} s "
            f"(CPU {res['cpu']:5.1f} s)  peak {res['peak']:5.0f} MiB  {res['changes']} changes "
            f"(text sha256 {res['digest']})",
            flush=True,
        )
    return digests


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        step, *rest = sys.argv[2:]
        if step == "record":
            child_record(Path(rest[0]), Path(rest[1]), int(rest[2]), rest[3:])
        elif step == "migrate":
            child_migrate(*rest)
        else:
            child_diff(*rest)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hosts", nargs="?", type=int, default=100_000)
    parser.add_argument("--db", type=Path, default=OUT / "vulndb.sqlite3")
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    if not args.db.is_file():
        sys.exit(f"{args.db}: no database; build it as this script's docstring says")
    OUT.mkdir(parents=True, exist_ok=True)
    xmls = (OUT / f"history-{args.hosts}-1.xml", OUT / f"history-{args.hosts}-2.xml")
    if not xmls[0].exists():
        write_nmap_xml(synth_hosts(args.hosts), xmls[0], ARGS)
    if not xmls[1].exists():
        write_nmap_xml(second_run(args.hosts), xmls[1], ARGS)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{args.hosts} hosts, database {args.db}, load average at the start: {load}")
    layouts = [("this checkout", REPO)]
    if args.baseline is not None:
        layouts.append(("baseline", args.baseline))
    from tests._pg_fixture import PgUnavailable, temporary_postgres

    ok, outputs = True, []
    with tempfile.TemporaryDirectory(prefix="flan-bench-history-") as tmp:
        server_cm = None if args.no_postgres else temporary_postgres()
        try:
            server = server_cm.__enter__() if server_cm is not None else None
        except PgUnavailable as exc:
            print(f"PostgreSQL skipped: {exc}")
            server_cm, server = None, None
        try:
            for n, (label, src) in enumerate(layouts):
                urls = {"SQLite": str(Path(tmp) / f"history-{n}.sqlite3")}
                if server is not None:
                    import psycopg

                    with psycopg.connect(server.url(), autocommit=True) as conn:
                        conn.execute(f"CREATE DATABASE bench_{n}")
                    urls["PostgreSQL"] = server.url(f"bench_{n}")
                passed, digests, ids = bench_layout(label, src, xmls, args.db, urls)
                ok = ok and (passed or n > 0)
                outputs.append(digests)
                if n > 0:
                    outputs.append(bench_migration(urls, ids))
        finally:
            if server_cm is not None:
                server_cm.__exit__(None, None, None)
    if len(outputs) > 1:
        same = all(d == outputs[0]["SQLite"] for out in outputs for d in out.values())
        print(f"changes identical across layouts, backends and the migration: {same}")
        ok = ok and same
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
