"""Benchmark: record a run of 10,000 hosts with 50,000 findings into SQLite and PostgreSQL, and
diff two such runs. Prints each time; the target is under 10 s each. With `--hosts 100000
--findings 500000` (issue 14): recording both runs and diffing them under 60 s per backend, and
the whole process (both reports in memory included) under 1 GB peak.

    .venv/bin/python bench/bench_history.py                 # starts a throwaway PostgreSQL
    .venv/bin/python bench/bench_history.py --postgres postgresql://flan@127.0.0.1:5432/flan
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO))

from flanscan._history import diff_reports, diff_runs, open_history  # noqa: E402
from flanscan._history._diff import diff_rows  # noqa: E402
from flanscan._model import Report  # noqa: E402
from testlab.synthetic import fleet_ports, make_report  # noqa: E402

TARGET_S = 10.0


def runs(hosts: int, findings: int) -> tuple[Report, Report]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    scope = ("198.18.0.0/15",)
    old = make_report(fleet_ports(hosts, findings, seed=1), targets=scope, start=start)
    new = make_report(
        fleet_ports(hosts, findings, seed=2, changed=0.05),
        targets=scope,
        start=start + timedelta(days=7),
    )
    return old, new


def timed(label: str, results: list[tuple[str, float]]) -> contextlib.AbstractContextManager[None]:
    @contextlib.contextmanager
    def cm() -> Iterator[None]:
        t0 = time.perf_counter()
        c0 = time.process_time()
        yield
        elapsed = time.perf_counter() - t0
        cpu = time.process_time() - c0  # this process only (not PostgreSQL's server)
        results.append((label, elapsed))
        flag = "ok" if elapsed < TARGET_S else f"SLOWER than {TARGET_S:.0f} s"
        print(f"{label:<44} {elapsed:7.2f} s (CPU {cpu:6.2f} s)  {flag}", flush=True)

    return cm()


def bench_backend(
    name: str,
    url: str,
    old: Report,
    new: Report,
    results: list[tuple[str, float]],
    compare: bool = False,
) -> None:
    with open_history(url) as store:
        with timed(f"{name}: record run 1", results):
            old_id = store.record(old)
        with timed(f"{name}: record run 2", results):
            new_id = store.record(new)
        with timed(f"{name}: diff the two runs", results):
            changes = diff_runs(store, old_id, new_id)
    total = sum(s for label, s in results[-3:])
    results.append((f"{name}: record both + diff", total))
    print(f"{name + ': record both + diff':<44} {total:7.2f} s  ({len(changes.items)} changes)")
    if not compare:
        return
    # The same diff the way it was done before issue 14 (every row read back, compared in
    # Python), in the same run on the same store, for the ratio (it raises the peak memory).
    with open_history(url) as store:
        t0, c0 = time.perf_counter(), time.process_time()
        plain = diff_rows(store.load_rows(old_id), store.load_rows(new_id))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert plain == changes
    ratio = results[-2][1] / wall
    print(f"{name + ': diff reading every row (before)':<44} {wall:7.2f} s (CPU {cpu:6.2f} s)"
          f"  ratio SQL diff / before {ratio:.2f}")  # fmt: skip


@contextlib.contextmanager
def postgres(url: str | None) -> Iterator[str | None]:
    if url:
        yield url
        return
    from tests._pg_fixture import PgUnavailable, temporary_postgres

    try:
        with temporary_postgres() as server:
            yield server.url()
    except PgUnavailable as exc:
        print(f"PostgreSQL skipped: {exc}")
        yield None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=10_000)
    parser.add_argument("--findings", type=int, default=50_000)
    parser.add_argument("--postgres", help="use this server instead of a throwaway one")
    parser.add_argument(
        "--compare-before",
        action="store_true",
        help="also time the diff done the former way (every row read back), for the ratio",
    )
    args = parser.parse_args()

    t0 = time.perf_counter()
    old, new = runs(args.hosts, args.findings)
    n = sum(len(sf.locations) for s in old.services for sf in s.findings)
    print(f"synthetic runs: {args.hosts} hosts, {n} findings each "
          f"(built in {time.perf_counter() - t0:.1f} s)")  # fmt: skip
    results: list[tuple[str, float]] = []
    with timed("in memory: diff_reports", results):
        diff_reports(old, new)
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = str(Path(tmp) / "history.sqlite3")
        bench_backend("SQLite", sqlite, old, new, results, args.compare_before)
    with postgres(args.postgres) as url:
        if url:
            bench_backend("PostgreSQL", url, old, new, results, args.compare_before)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory (max RSS of this process, both reports included): {peak:.0f} MiB")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    if args.hosts >= 100_000:  # issue 14: record + diff of two fleet runs
        slow = [label for label, s in results if label.endswith("+ diff") and s >= 60]
        slow += ["memory"] if peak >= 1024 else []
    else:
        slow = [label for label, s in results if s >= TARGET_S and not label.endswith("+ diff")]
    print("all under target" if not slow else f"over target: {', '.join(slow)}")
    return 1 if slow else 0


if __name__ == "__main__":
    raise SystemExit(main())
