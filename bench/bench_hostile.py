"""Time and peak memory of flan on the hostile inputs of issue 13 (item 7); prints one line each.

Each input is generated into a temporary directory (tests/hostile_gen.py), then the real CLI runs
in a child process capped at 3 GiB of address space (a guard for the machine); its own peak RSS
comes from wait4. Expected after the fix: every refused input stops in about a second under
100 MB, 1 GiB of XML whitespace is read under 100 MB, and one host with 10,000 open ports is
reported in seconds (linear), where it took 497 s before (quadratic).

    .venv/bin/python bench/bench_hostile.py [PORTS]
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import hostile_gen as gen  # noqa: E402

FLAN = [sys.executable, "-m", "flanscan"]
CAP = 3 << 30
TIMEOUT = 900.0


def _cap() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CAP, CAP))


def run(args: list[str], cwd: Path) -> tuple[int, float, float, str]:
    """(exit code, seconds, peak RSS in MB, last stderr line) of one flan command."""
    err = cwd / "stderr.txt"
    t0 = time.perf_counter()
    with err.open("w") as errf:
        proc = subprocess.Popen([*FLAN, *args], cwd=cwd, stdout=subprocess.DEVNULL,
                                stderr=errf, preexec_fn=_cap)  # fmt: skip
        watchdog = threading.Timer(TIMEOUT, proc.kill)
        watchdog.start()
        _, status, usage = os.wait4(proc.pid, 0)
        watchdog.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    lines = err.read_text(errors="replace").strip().splitlines()
    return proc.returncode, seconds, usage.ru_maxrss / 1024, (lines[-1] if lines else "")


def main() -> int:
    ports = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    samples = REPO.parent / "shared"
    with tempfile.TemporaryDirectory(prefix="flan-bench-hostile-") as tmp:
        d = Path(tmp)
        db = d / "nvd.sqlite3"
        subprocess.run([*FLAN, "db", "import", "--db", str(db), str(samples / "nvd-sample")],
                       check=True, capture_output=True)  # fmt: skip
        (d / "run" / "shard-0-of-99999999").mkdir(parents=True)
        cases: list[tuple[str, Callable[[], list[str]]]] = [
            ("NVD feed, 100,000 nested arrays (200 KB)", lambda: ["db", "import", "--db",
             str(d / "a.sqlite3"), str(gen.nested_arrays_feed(d / "nested.json"))]),
            ("gzip bomb feed, 1 GiB of spaces (1 MB)", lambda: ["db", "import", "--db",
             str(d / "b.sqlite3"), str(gen.gzip_of_spaces(d / "spaces.json.gz"))]),
            ("zip bomb OSV archive, 2 GiB member (2 MB)", lambda: ["db", "import", "--db",
             str(d / "c.sqlite3"), str(gen.zip_bomb(d / "all.zip"))]),
            ("merge of shard-0-of-99999999", lambda: ["merge", str(d / "run"), "--no-db",
             "--no-history"]),
            ("YAML alias bomb suppressions (94 KB)", lambda: ["report",
             str(samples / "nmap-xml-samples" / "1_hosts.xml"), "--no-db", "--suppressions",
             str(gen.yaml_alias_bomb(d / "rules.yaml")), "-o", str(d / "o1")]),
            ("Nmap XML with 1 GiB of whitespace", lambda: ["report",
             str(gen.xml_whitespace(d / "ws.xml")), "--no-db", "-f", "json", "-o",
             str(d / "o2")]),
            (f"one host, {ports:,} open ports, with the DB", lambda: ["report",
             str(gen.many_ports(d / "ports.xml", ports)), "--db", str(db), "-f", "json", "-o",
             str(d / "o3")]),
        ]  # fmt: skip
        print(f"{'input':48} {'exit':>4} {'seconds':>8} {'peak MB':>8}  message")
        for label, make in cases:
            args = make()
            code, seconds, rss, line = run(args, d)
            print(f"{label:48} {code:>4} {seconds:>8.1f} {rss:>8.0f}  {line[:90]}")
            (d / "ws.xml").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
