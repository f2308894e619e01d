"""The embedded vulnerability database: NVD CVE 2.0 records, CISA KEV, FIRST EPSS (and more
sources through `sources/`), in one SQLite file built by `flan db update` or `flan db import`.

Public interface:
- `VulnDb.open(path)`: read-only; implements `flanscan._lookup.VulnLookup` (`candidates`,
  `vulnerabilities`), plus `summary()` and `status()`.
- `default_db_path()`, `resolve_db_path(path)`, `db_exists(path)`.
- `import_paths(db_path, paths)`, `update_db(db_path)`: atomic builds.
"""

from __future__ import annotations

from flanscan._vulndb._build import BuildResult, check_database, import_paths, update_db
from flanscan._vulndb._paths import DB_FILENAME, ENV_DB, db_exists, default_db_path, resolve_db_path
from flanscan._vulndb._progress import NULL_PROGRESS, Progress, ProgressTask
from flanscan._vulndb._store import STALE_DAYS, DbStatus, SourceStatus, VulnDb

__all__ = [
    "DB_FILENAME",
    "ENV_DB",
    "NULL_PROGRESS",
    "STALE_DAYS",
    "BuildResult",
    "DbStatus",
    "Progress",
    "ProgressTask",
    "SourceStatus",
    "VulnDb",
    "check_database",
    "db_exists",
    "default_db_path",
    "import_paths",
    "resolve_db_path",
    "update_db",
]
