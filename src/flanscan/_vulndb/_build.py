"""Building and updating the database atomically: copy or create `<db>.new`, import, check, swap.

Whatever fails (a download cut, a corrupt gzip, truncated JSON, a wrong feed version), the
error names the file and the previous database stays in place, untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flanscan._errors import VulnDbError
from flanscan._safefile import open_append_nofollow
from flanscan._vulndb._affected import refresh_description_index
from flanscan._vulndb._files import probe_file
from flanscan._vulndb._paths import download_dir, lock_path, new_db_path
from flanscan._vulndb._progress import NULL_PROGRESS, Progress
from flanscan._vulndb._schema import SCHEMA_VERSION, create_schema, schema_version
from flanscan._vulndb.sources import (
    ImportFile,
    RemoteFile,
    Source,
    all_sources,
    now_iso,
    read_state,
)

IMPORT_KINDS = (
    "NVD CVE 2.0 JSON feeds or records, the CISA KEV JSON, an EPSS CSV, "
    "the Debian security tracker JSON or data/CVE/list, Ubuntu OSV records (all.zip or JSON), "
    "CVE JSON 5 records or archives (cvelistV5, vulnrichment), or nvd-data-overrides"
)


@dataclass(frozen=True)
class BuildResult:
    """What an import or update did."""

    path: Path
    changed: bool  # False when everything was already up to date (no new database)
    files: tuple[tuple[str, str], ...] = ()  # (source, file) imported
    skipped: tuple[str, ...] = ()  # files in given directories that no source claims
    notes: tuple[str, ...] = field(default_factory=tuple)


@contextlib.contextmanager
def db_lock(db_path: Path) -> Iterator[None]:
    """Exclusive lock so that two updates/imports of the same database never collide."""
    db_path.parent.mkdir(parents=True, exist_ok=True)
    lock = lock_path(db_path)
    with open_append_nofollow(lock) as fh:  # a symlink planted at the lock's name is refused
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise VulnDbError(
                f"{db_path}: another `flan db update` or `flan db import` is running "
                f"(lock {lock}); wait for it to finish"
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _existing_schema(db_path: Path) -> int | None:
    if not db_path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            return schema_version(conn)
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def _sqlite_tables(db_path: Path) -> set[str] | None:
    """The table names of a SQLite file, or None when it is not a readable SQLite database."""
    try:
        with db_path.open("rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                return None
        conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        finally:
            conn.close()
    except (OSError, sqlite3.Error):
        return None
    return {str(r[0]) for r in rows}


def check_replaceable(db_path: Path) -> None:
    """Refuse to build over anything but a Flan Scan vulnerability database (or nothing): a
    history database or a text file given as --db by mistake must never be replaced."""
    if not db_path.exists() and not db_path.is_symlink():
        return
    if db_path.is_file():
        tables = _sqlite_tables(db_path)
        if tables is not None and {"meta", "cve"} <= tables:
            return
        if tables is None:
            what = "not a SQLite database"
        elif "runs" in tables and "schema_version" in tables:
            what = "a Flan Scan history database"
        else:
            what = "a SQLite database of something else"
    else:
        what = "not a regular file"
    raise VulnDbError(
        f"{db_path}: {what}, not a vulnerability database; left untouched: give --db a new "
        "file name or the path of a Flan Scan vulnerability database"
    )


def _open_current(db_path: Path) -> sqlite3.Connection | None:
    """The current database read-only, if it is one this version can extend."""
    if _existing_schema(db_path) != SCHEMA_VERSION:
        return None
    return sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)


def check_database(conn: sqlite3.Connection, path: Path) -> None:
    """Integrity and consistency checks run before a new database is swapped in."""
    result = conn.execute("PRAGMA quick_check").fetchone()[0]
    if result != "ok":
        raise VulnDbError(f"{path}: integrity check failed ({result}); nothing was changed")
    if schema_version(conn) != SCHEMA_VERSION:
        raise VulnDbError(f"{path}: schema version missing after build; nothing was changed")
    orphans = conn.execute(
        "SELECT count(*) FROM cve_product p WHERE NOT EXISTS"
        " (SELECT 1 FROM cve c WHERE c.id = p.cve_id)"
    ).fetchone()[0]
    if orphans:
        raise VulnDbError(f"{path}: {orphans} index rows point at no CVE; nothing was changed")


def _build_locked(
    db_path: Path,
    files: dict[str, list[ImportFile]],
    *,
    fresh: bool,
    progress: Progress,
) -> None:
    check_replaceable(db_path)  # again under the lock: the file may have changed meanwhile
    new = new_db_path(db_path)
    new.unlink(missing_ok=True)  # left over from an interrupted run (we hold the lock)
    existing = _existing_schema(db_path)
    if not fresh and existing == SCHEMA_VERSION:
        progress.note(f"copying {db_path} to update it")
        shutil.copyfile(db_path, new)
    elif not fresh and db_path.exists():
        # Another schema (or not a database at all): it cannot be extended, only replaced.
        progress.note(f"{db_path} has schema {existing}, not {SCHEMA_VERSION}: building anew")
    sources = all_sources()
    conn = sqlite3.connect(new)
    try:
        # The file is private until swapped in: no journal needed (on failure it is deleted).
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("PRAGMA cache_size = -65536")  # 64 MiB: memory is shared with the parsers
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("BEGIN")
        create_schema(conn, [s.ddl for s in sources if s.ddl])
        for source in sources:
            if files.get(source.name):
                source.import_files(conn, files[source.name], progress)
        refresh_description_index(conn)
        conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('built_at', ?)", (now_iso(),))
        conn.commit()
        pages, free = (
            conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count")
        )
        if free > pages // 4:
            conn.execute("VACUUM")  # incremental updates leave free pages behind
        check_database(conn, new)
        conn.close()
        with new.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(new, db_path)
    except BaseException as exc:
        conn.close()
        new.unlink(missing_ok=True)
        if isinstance(exc, sqlite3.Error):
            raise VulnDbError(
                f"{new}: building the database failed ({exc}); nothing was changed"
            ) from exc
        raise


def _expand(paths: Sequence[Path]) -> list[tuple[Path, bool]]:
    """Files to import: (path, named explicitly). Directories are walked recursively."""
    out: list[tuple[Path, bool]] = []
    for path in paths:
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.is_file()
                and not p.name.endswith(".meta")  # NVD checksums, read beside their feed
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            out.extend((p, False) for p in found)
        elif path.is_file():
            out.append((path, True))
        else:
            raise VulnDbError(f"{path}: no such file or directory")
    return out


def _sibling_meta(path: Path) -> RemoteFile | None:
    """An NVD `.meta` copied along with a feed file: lets an import record (and check) it."""
    name = path.name
    for suffix in (".json.gz", ".json"):
        if name.startswith("nvdcve-2.0-") and name.endswith(suffix):
            meta = path.with_name(name[: -len(suffix)] + ".meta")
            if meta.is_file():
                from flanscan._vulndb.sources.nvd import parse_meta

                fields = parse_meta(meta.read_text(errors="replace"))
                return RemoteFile(
                    source="nvd",
                    name=name[: -len(suffix)] + ".json.gz",
                    url=str(path),
                    sha256=fields.get("sha256", "").lower() or None,
                    last_modified=fields.get("lastModifiedDate"),
                )
    return None


def classify(paths: Sequence[Path]) -> tuple[dict[str, list[ImportFile]], list[str]]:
    """Assign each file to the source that recognises its content."""
    sources = all_sources()
    files: dict[str, list[ImportFile]] = {s.name: [] for s in sources}
    skipped: list[str] = []
    expanded = _expand(paths)
    for path, explicit in expanded:
        probe = probe_file(path)
        owner: Source | None = next((s for s in sources if s.sniff(probe)), None)
        if owner is None:
            if explicit:
                raise VulnDbError(f"{path}: not a file Flan Scan can import ({IMPORT_KINDS})")
            skipped.append(str(path))
            continue
        remote = _sibling_meta(path) if owner.name == "nvd" else None
        expect = remote.sha256 if remote is not None else None
        files[owner.name].append(ImportFile(path, remote, expect_sha256=expect))
    return files, skipped


def import_paths(
    db_path: Path,
    paths: Sequence[Path],
    *,
    fresh: bool = False,
    progress: Progress = NULL_PROGRESS,
) -> BuildResult:
    """`flan db import`: add files copied by hand to the database (or build it), atomically."""
    if not paths:
        raise VulnDbError(f"nothing to import: give {IMPORT_KINDS} (files or directories)")
    check_replaceable(db_path)
    files, skipped = classify([Path(p) for p in paths])
    if not any(files.values()):
        raise VulnDbError(
            f"none of {', '.join(str(p) for p in paths)} holds data Flan Scan can import "
            f"({IMPORT_KINDS})"
        )
    with db_lock(db_path):
        _build_locked(db_path, files, fresh=fresh, progress=progress)
    return BuildResult(
        path=db_path,
        changed=True,
        files=tuple((s, str(f.path)) for s, fs in files.items() for f in fs),
        skipped=tuple(skipped),
    )


def update_db(
    db_path: Path,
    *,
    urls: dict[str, str] | None = None,
    only: Sequence[str] | None = None,
    progress: Progress = NULL_PROGRESS,
    timeout: float = 60.0,
    keep_downloads: bool = False,
) -> BuildResult:
    """`flan db update`: download what changed, then build and swap in a new database.

    `urls` overrides a source's base URL (default: the source's `url_env` variable, then its
    built-in URL). Downloads resume from partial files left by an interrupted run.
    """
    # Imported here: the offline commands (report, import, status) never load httpx.
    from flanscan._vulndb._download import HttpFetcher, download, file_sha256, make_client

    urls = urls or {}
    sources = [s for s in all_sources() if only is None or s.name in only]
    dest = download_dir(db_path)
    check_replaceable(db_path)
    with db_lock(db_path):
        current = _open_current(db_path)
        fresh = current is None
        try:
            plans: dict[str, list[RemoteFile]] = {}
            states = {s.name: read_state(current, s.name) for s in sources}
        finally:
            if current is not None:
                current.close()
        files: dict[str, list[ImportFile]] = {}
        fetched: list[Path] = []
        with make_client(timeout) as client:
            fetcher = HttpFetcher(client)
            for source in sources:
                base = urls.get(source.name) or os.environ.get(source.url_env) or source.default_url
                plans[source.name] = source.plan(fetcher, base, states[source.name])
            for source in sources:
                for remote in plans[source.name]:
                    path = download(client, remote, dest, progress)
                    fetched.append(path)
                    if remote.sha256 is None:
                        sha = file_sha256(path)
                        known = states[source.name].files.get(remote.name)
                        if known is not None and known.sha256 == sha and not fresh:
                            continue  # same content as last time
                        remote = dataclasses.replace(remote, sha256=sha)
                    files.setdefault(source.name, []).append(ImportFile(path, remote))
        if not files:
            _cleanup(fetched, keep_downloads)
            return BuildResult(path=db_path, changed=False, notes=("already up to date",))
        _build_locked(db_path, files, fresh=fresh, progress=progress)
        _cleanup(fetched, keep_downloads)
    return BuildResult(
        path=db_path,
        changed=True,
        files=tuple(
            (s, f.remote.name if f.remote else str(f.path)) for s, fs in files.items() for f in fs
        ),
    )


def download_feeds(
    dest: Path,
    *,
    urls: dict[str, str] | None = None,
    only: Sequence[str] | None = None,
    progress: Progress = NULL_PROGRESS,
    timeout: float = 60.0,
) -> list[Path]:
    """`flan db update --download-only DIR`: every file a full build imports, downloaded into
    `dest` for `flan db import DIR` on a machine without internet access; no database is read
    or written. Interrupted downloads resume, as for an update."""
    from flanscan._safefile import check_dir_target
    from flanscan._vulndb._download import HttpFetcher, download, make_client

    check_dir_target(dest, "download directory")
    urls = urls or {}
    sources = [s for s in all_sources() if only is None or s.name in only]
    fetched: list[Path] = []
    with make_client(timeout) as client:
        fetcher = HttpFetcher(client)
        plans = {
            s.name: s.plan(
                fetcher,
                urls.get(s.name) or os.environ.get(s.url_env) or s.default_url,
                read_state(None, s.name),  # no database: everything a fresh build needs
            )
            for s in sources
        }
        for source in sources:
            fetched.extend(
                download(client, remote, dest, progress) for remote in plans[source.name]
            )
    return fetched


def _cleanup(paths: list[Path], keep: bool) -> None:
    if keep:
        return
    for path in paths:
        path.unlink(missing_ok=True)
