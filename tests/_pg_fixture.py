"""A real PostgreSQL server for the history tests, started from the installed binaries.

`pg_server` (session) runs initdb + pg_ctl into a fresh temporary directory (as the `postgres`
user when the tests run as root), listening on 127.0.0.1 at a free port only; `pg_url` gives
each test its own empty database. Skipped, with the reason, when the binaries are missing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def _pg_bin() -> Path | None:
    for d in PG_BIN_DIRS:
        if (d / "initdb").exists() and (d / "pg_ctl").exists():
            return d
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_user(argv: list[str]) -> tuple[list[str], str | None]:
    """PostgreSQL refuses to run as root: run it as `postgres` then (its dir owned by it)."""
    if os.geteuid() != 0:
        return argv, None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return argv, "running as root and there is no `postgres` user to run the server"
    return ["runuser", "-u", "postgres", "--", *argv], None


class PgServer:
    def __init__(self, bin_dir: Path, data: Path, port: int) -> None:
        self.bin_dir, self.data, self.port = bin_dir, data, port

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://flan@127.0.0.1:{self.port}/{dbname}"


class PgUnavailable(RuntimeError):
    """PostgreSQL cannot be started here (binaries or the `postgres` user missing)."""


@contextmanager
def temporary_postgres() -> Iterator[PgServer]:
    """A throwaway PostgreSQL server on 127.0.0.1 (trust auth, user `flan`), removed on exit.
    Also used by bench/bench_history.py."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        raise PgUnavailable("PostgreSQL binaries (initdb, pg_ctl) not found: install postgresql")
    _probe, why = _as_user(["true"])
    if why:
        raise PgUnavailable(why)
    base = Path(tempfile.mkdtemp(prefix="flan-pg-"))
    data = base / "data"
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(base, pg.pw_uid, pg.pw_gid)
    port = _free_port()
    initdb, _ = _as_user(
        [str(bin_dir / "initdb"), "-D", str(data), "-U", "flan", "--auth=trust", "-E", "UTF8"]
    )
    res = subprocess.run(initdb, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise PgUnavailable(f"initdb failed: {res.stderr.strip()[-300:]}")
    opts = (
        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={base} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    start, _ = _as_user(
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w",
         "-t", "60", "start"]
    )  # fmt: skip
    res = subprocess.run(start, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        log = (base / "log").read_text(errors="replace") if (base / "log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"PostgreSQL did not start: {res.stderr.strip()} {log[-500:]}")
    try:
        yield PgServer(bin_dir, data, port)
    finally:
        stop, _ = _as_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
        subprocess.run(stop, capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server for the whole session (skipped, with the reason, if unavailable)."""
    try:
        with temporary_postgres() as server:
            yield server
    except PgUnavailable as exc:
        print(f"\nPostgreSQL tests skipped: {exc}", file=sys.__stderr__, flush=True)
        pytest.skip(str(exc))


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database on the test server."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield pg_server.url(name)
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(params=["sqlite", "postgresql"])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test against both backends: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "history.sqlite3")
    return str(request.getfixturevalue("pg_url"))
