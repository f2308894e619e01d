"""Where the vulnerability database and its downloads live."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DB_FILENAME = "vulndb.sqlite3"
ENV_DB = "FLAN_DB"


def default_db_path() -> Path:
    """The database path: `$FLAN_DB` if set, else `vulndb.sqlite3` in the user's cache dir (XDG)."""
    env = os.environ.get(ENV_DB)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("flanscan")) / DB_FILENAME


def resolve_db_path(path: str | os.PathLike[str] | None) -> Path:
    """An explicit `--db PATH` wins over `$FLAN_DB`, which wins over the cache-dir default."""
    return Path(path).expanduser() if path is not None else default_db_path()


def db_exists(path: str | os.PathLike[str] | None = None) -> bool:
    """True when a database file exists at `path` (default: `default_db_path()`)."""
    return resolve_db_path(path).is_file()


def download_dir(db_path: Path) -> Path:
    """Downloads (and resumable partial files) are kept beside the database they feed."""
    return db_path.parent / "downloads"


def new_db_path(db_path: Path) -> Path:
    """The file an update builds before swapping it in."""
    return db_path.with_name(db_path.name + ".new")


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")
