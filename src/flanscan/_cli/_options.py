"""Options shared by the commands that build reports (`flan scan`, `flan report`, `flan merge`),
declared once so their names, checks and help texts cannot drift apart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from flanscan._errors import UsageError
from flanscan._pipeline import CONFIDENCE_CHOICES, FAIL_ON_CHOICES
from flanscan._render import FORMATS

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_FORMATS = ("html", "json")
SEVERITIES = ("low", "medium", "high", "critical")


def _apply(options: list[Callable[[F], F]], func: F) -> F:
    for option in reversed(options):  # reversed: --help lists them in the order written
        func = option(func)
    return func


def format_option(func: F) -> F:
    """`--format/-f`, repeatable."""
    return click.option(
        "--format",
        "-f",
        "formats",
        multiple=True,
        type=click.Choice(FORMATS, case_sensitive=False),
        help="Report format (repeatable; default: html and json).",
    )(func)


def analysis_options(*, suppressions_default: str = "") -> Callable[[F], F]:
    """`--db`, `--no-db`, `--suppressions`, `--show-product-only`."""
    suppressions_help = "Exception rules (owner, reason, expiry) for accepted findings"
    suppressions_help += f" (default: {suppressions_default})." if suppressions_default else "."

    def decorate(func: F) -> F:
        return _apply(
            [
                click.option(
                    "--db",
                    "db_path",
                    type=click.Path(path_type=Path, dir_okay=False),
                    default=None,
                    help="Vulnerability database to use "
                    "(default: FLAN_DB or the user cache directory).",
                ),
                click.option(
                    "--no-db",
                    is_flag=True,
                    help="Do not match vulnerabilities; list services only.",
                ),
                click.option(
                    "--suppressions",
                    type=click.Path(path_type=Path, exists=True, dir_okay=False),
                    default=None,
                    help=suppressions_help,
                ),
                click.option(
                    "--show-product-only",
                    is_flag=True,
                    help="List CVEs matched on the product alone (version unknown), "
                    "not just their count.",
                ),
                click.option(
                    "--min-confidence",
                    type=click.Choice(CONFIDENCE_CHOICES),
                    default="medium",
                    show_default=True,
                    help="Least source confidence a finding needs to be reported, alerted on "
                    "and counted by --fail-on (high: NVD and overrides; medium: also CVE 5 "
                    "records and distribution data; possible: also description text).",
                ),
            ],
            func,
        )

    return decorate


def delivery_options(*, history_default: str) -> Callable[[F], F]:
    """`--history`, `--notify`, `--notify-min-severity`, `--fail-on`."""

    def decorate(func: F) -> F:
        return _apply(
            [
                click.option(
                    "--history",
                    metavar="URL_OR_PATH",
                    default=None,
                    help="Run history: an SQLite file or a postgresql:// URL "
                    f"(default: {history_default}).",
                ),
                click.option(
                    "--notify",
                    multiple=True,
                    metavar="URL",
                    help="Send an alert about new findings to URL (repeatable): https:// "
                    "(JSON webhook), slack+https://, smtp:// or smtps://.",
                ),
                click.option(
                    "--notify-min-severity",
                    type=click.Choice(SEVERITIES),
                    default="high",
                    show_default=True,
                    help="Least severity that triggers an alert.",
                ),
                click.option(
                    "--fail-on",
                    type=click.Choice(FAIL_ON_CHOICES),
                    default=None,
                    help="Exit with status 1 when an open finding is at least this severe "
                    "(kev: in CISA KEV).",
                ),
            ],
            func,
        )

    return decorate


def check_db_flags(db_path: Path | None, no_db: bool) -> None:
    """--db and --no-db exclude each other."""
    if no_db and db_path is not None:
        raise UsageError("--db and --no-db cannot be used together: drop one")
