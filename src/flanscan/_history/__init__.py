"""Scan history: every run recorded (SQLite by default, PostgreSQL for teams) and what changed.

store = open_history("flan-results/history.sqlite3")   # or "postgresql://..."
run_id = store.record(report, run_dir=".../20260101T000000Z")
prev = store.previous_run(report)
changes = diff_runs(store, prev.id, run_id) if prev else None
changes = diff_reports(old_report, new_report)          # without a store
"""

from flanscan._history._diff import IN_KEV, NOT_IN_KEV, diff_reports
from flanscan._history._migrations import SCHEMA_VERSION
from flanscan._history._store import (
    HISTORY_FILE_NAME,
    HistoryStore,
    RunRef,
    default_history,
    default_history_path,
    diff_runs,
    open_history,
)

__all__ = [
    "HISTORY_FILE_NAME",
    "IN_KEV",
    "NOT_IN_KEV",
    "SCHEMA_VERSION",
    "HistoryStore",
    "RunRef",
    "default_history",
    "default_history_path",
    "diff_reports",
    "diff_runs",
    "open_history",
]
