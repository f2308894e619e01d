"""Typed errors raised by the library; only the CLI turns them into messages and exit codes."""

from __future__ import annotations

import sqlite3

# The statuses errors carry; _status.py lists them all and decides their precedence.
from flanscan._status import ExitStatus


class FlanError(Exception):
    """Base class: a user-facing problem with a one-line message naming the input and the fix."""

    exit_code: ExitStatus = ExitStatus.USAGE


class UsageError(FlanError):
    """Bad command-line input or bad input file (targets, suppressions, ...)."""


class EnvironmentProblem(FlanError):
    """Something the machine lacks: nmap not installed, no permission, unreachable store."""


class ParseError(FlanError):
    """An input file that cannot be read as what it claims to be (XML, feed, rules)."""


class VulnDbError(FlanError):
    """The vulnerability database is missing, corrupt, or an update failed."""


class ScanIncomplete(FlanError):
    """A scan that did not finish; raw XML of what ran is kept."""

    exit_code = ExitStatus.SCAN_INCOMPLETE


class DeliveryError(FlanError):
    """An alert or upload failed after retries; local results are kept."""

    exit_code = ExitStatus.DELIVERY


def db_failure(exc: BaseException) -> str:
    """One line for a database failure; a damaged SQLite file is called corrupt."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, sqlite3.DatabaseError) and (
        "malformed" in text or "not a database" in text or "corrupt" in text
    ):
        return f"the database file is corrupt ({text}); restore it from a backup or move it away"
    if isinstance(exc, sqlite3.Error):
        return f"{type(exc).__name__}: {text}"
    return text
