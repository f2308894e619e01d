"""The two storage backends behind one small interface: SQLite (default) and PostgreSQL.

SQL is written once with `?` placeholders; `_pg_sql` rewrites it for psycopg, the only place
where the parameter styles differ. Bulk loads use executemany (SQLite) or COPY (PostgreSQL).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from flanscan._errors import EnvironmentProblem, UsageError, db_failure
from flanscan._safefile import check_file_target
from flanscan._secrets import mask_url

Row = tuple[Any, ...]

# Arbitrary constant shared by every flan process: serialises migrations and run numbering.
_PG_LOCK_KEY = 0x464C414E  # "FLAN"
_STREAM_ROWS = 10_000  # rows fetched at a time by PostgresDatabase.stream
_cursor_ids = itertools.count()  # server-side cursor names: streams may be nested


def redact_url(url: str) -> str:
    """The URL without its password (in the user part or the query), fit for messages."""
    return mask_url(url)


class Database:
    """A connection to the history database with the few operations the store needs."""

    dialect: str
    location: str  # for messages (no secrets)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        raise NotImplementedError

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        """The rows of a query without holding them all; run nothing else until it is spent."""
        raise NotImplementedError

    def insert_many(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[None]:
        """A write transaction that also serialises writers (migrations, run numbering)."""
        raise NotImplementedError

    def reclaim_space(self) -> None:
        """Give the space of dropped tables back to the file system, if the backend keeps it."""

    def close(self) -> None:
        raise NotImplementedError


def _refuse_foreign(conn: sqlite3.Connection, path: Path) -> None:
    """A SQLite file with tables but no flan history in it (a vulnerability database, another
    program's data) given as --history is refused, never extended with flan's tables."""
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    names = {str(r[0]) for r in rows}
    if names and "schema_version" not in names:
        conn.close()
        what = (
            "a Flan Scan vulnerability database"
            if {"meta", "cve"} <= names
            else "a SQLite database of something else"
        )
        raise UsageError(
            f"history database {path} is {what}, not a flan history; left untouched: give "
            "--history a new file or an existing flan history"
        )


class SqliteDatabase(Database):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.location = str(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode: transactions are opened explicitly with BEGIN IMMEDIATE.
            self._conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            _refuse_foreign(self._conn, path)  # before WAL mode rewrites the file's header
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise EnvironmentProblem(
                f"cannot open history database {path}: {db_failure(exc)}; pass --history with "
                "a writable path"
            ) from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(sql, tuple(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(self._conn.execute(sql, tuple(params)).fetchall())

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        cur = self._conn.execute(sql, tuple(params))
        while batch := cur.fetchmany(10_000):
            yield from batch

    def insert_many(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        marks = ", ".join("?" for _ in columns)
        self._conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    @contextmanager
    def _tx(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def transaction(self) -> AbstractContextManager[None]:
        return self._tx()

    def reclaim_space(self) -> None:
        # SQLite keeps freed pages in the file. Best effort: another process reading the store
        # keeps VACUUM from running, and later runs reuse the pages anyway.
        try:
            self._conn.execute("VACUUM")
        except sqlite3.Error:
            pass

    def close(self) -> None:
        self._conn.close()


def _pg_sql(sql: str) -> str:
    """Rewrite qmark SQL for psycopg's format style (our SQL never holds a literal `?`)."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        from flanscan._extras import require_extra

        require_extra("postgres")
        import psycopg  # imported here: SQLite users never pay for it

        self.location = redact_url(url)
        try:
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise EnvironmentProblem(
                f"cannot connect to history database {self.location}: {reason}; "
                "check the --history URL and that the server is running"
            ) from exc

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._conn.execute(_pg_sql(sql), tuple(params))

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = self._conn.execute(_pg_sql(sql), tuple(params))
        return list(cur.fetchall())

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[Row]:
        # psycopg's ordinary cursor would fetch the whole result first; streaming comes in
        # chunks with libpq 17+. An older libpq (Debian 12's, in the container image) streams
        # row by row only, 3 times slower for a fleet's diff in pure-Python psycopg: a
        # server-side cursor fetches as many rows at a time instead, within a transaction (it
        # lives as long as one), planned for the whole result as the plain query is.
        from psycopg import pq

        if pq.version() >= 170000:
            with self._conn.cursor() as cur:
                yield from cur.stream(_pg_sql(sql), tuple(params), size=_STREAM_ROWS)
            return
        with self._conn.transaction():
            self._conn.execute("SET LOCAL cursor_tuple_fraction = 1.0")
            with self._conn.cursor(name=f"flan_stream_{next(_cursor_ids)}") as cur:
                cur.itersize = _STREAM_ROWS
                cur.execute(_pg_sql(sql), tuple(params))
                yield from cur

    def insert_many(
        self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
    ) -> None:
        with (
            self._conn.cursor() as cur,
            cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)

    @contextmanager
    def _tx(self) -> Iterator[None]:
        with self._conn.transaction():
            self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK_KEY,))
            yield

    def transaction(self) -> AbstractContextManager[None]:
        return self._tx()

    def close(self) -> None:
        self._conn.close()


def is_postgres_url(text: str) -> bool:
    return text.startswith(("postgresql://", "postgres://"))


def connect(url_or_path: str | Path) -> Database:
    """Open the backend named by a `postgresql://` URL, a `sqlite:///` URL or a file path."""
    text = str(url_or_path)
    if is_postgres_url(text):
        return PostgresDatabase(text)
    if text.startswith("sqlite:///"):
        text = text[len("sqlite://") :]
    elif "://" in text:
        raise EnvironmentProblem(
            f"unsupported history location {redact_url(text)}: use a file path or a "
            "postgresql:// URL"
        )
    path = Path(text)
    check_file_target(path, "history database")  # /dev/stdout, a directory: one line, not a mess
    return SqliteDatabase(path)
