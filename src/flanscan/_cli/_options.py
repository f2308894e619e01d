"""Options shared by the commands that build reports (`flan scan`, `flan report`, `flan merge`),
declared once so their names, checks and help texts cannot drift apart."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from flanscan._errors import UsageError
from flanscan._pipeline import (
    CONFIDENCE_CHOICES,
    DEFAULT_MAX_DB_AGE,
    FAIL_ON_CHOICES,
    ReportOptions,
)
from flanscan._render import FORMATS
from flanscan._secrets import mask_text
from flanscan._status import RunOutcome

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_FORMATS = ("html", "json")
HISTORY_DEFAULT = (
    "FLAN_HISTORY, else history.sqlite3 in the user data directory, ~/.local/share/flanscan/"
)
SEVERITIES = ("low", "medium", "high", "critical")


def _apply(options: Sequence[Callable[[F], F]], func: F) -> F:
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


def db_option(func: F) -> F:
    """`--db`: the vulnerability database (the one declaration every command uses)."""
    return click.option(
        "--db",
        "db_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        help="Vulnerability database (default: FLAN_DB, else vulndb.sqlite3 in the user cache "
        "directory).",
    )(func)


def analysis_options(*, suppressions_default: str = "") -> Callable[[F], F]:
    """`--db`, `--no-db`, `--suppressions`, `--show-product-only`, `--min-confidence`,
    `--min-severity`, `--max-db-age`."""
    suppressions_help = "Exception rules (owner, reason, expiry) for accepted findings"
    suppressions_help += f" (default: {suppressions_default})." if suppressions_default else "."

    def decorate(func: F) -> F:
        return _apply(
            [
                db_option,
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
                click.option(
                    "--min-severity",
                    type=click.Choice(SEVERITIES),
                    default=None,
                    help="Least CVSS severity a finding needs to be reported, alerted on and "
                    "counted by --fail-on (default: all; unknown severity is always kept).",
                ),
                click.option(
                    "--max-db-age",
                    type=click.IntRange(min=0),
                    default=DEFAULT_MAX_DB_AGE,
                    show_default=True,
                    metavar="DAYS",
                    help="Vulnerability data older than this is stale: a warning on every "
                    "report, and --fail-on refuses to gate on it (exit 2).",
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
                    "(JSON webhook), slack+https://, smtps:// or smtp:// (the SMTP password "
                    "only over TLS; smtp+insecure:// to allow it in clear).",
                ),
                click.option(
                    "--notify-min-severity",
                    type=click.Choice(SEVERITIES),
                    default="high",
                    show_default=True,
                    help="Least severity that triggers an alert.",
                ),
                fail_on_option,
            ],
            func,
        )

    return decorate


def fail_on_option(func: F) -> F:
    """`--fail-on`: the CI gate."""
    return click.option(
        "--fail-on",
        type=click.Choice(FAIL_ON_CHOICES),
        default=None,
        help="Exit with status 1 when an open finding is at least this severe (kev: in CISA "
        "KEV); exit 2 when there is no vulnerability database or it is older than --max-db-age.",
    )(func)


def check_db_flags(db_path: Path | None, no_db: bool) -> None:
    """--db and --no-db exclude each other."""
    if no_db and db_path is not None:
        raise UsageError("--db and --no-db cannot be used together: drop one")


_REPORT_PARAMS = ("formats", "db_path", "no_db", "suppressions", "show_product_only",
                  "min_confidence", "history", "no_history", "notify", "notify_min_severity",
                  "fail_on", "min_severity", "max_db_age")  # fmt: skip


def _given(name: str) -> bool:
    """Whether the user set this parameter (command line, environment, config file), not
    left it at its default."""
    source = click.get_current_context().get_parameter_source(name)
    return source is not None and source is not click.core.ParameterSource.DEFAULT


def report_options(
    *, delivery: bool, default_formats: bool = True, no_history: bool = False, **defaults: str
) -> Callable[[F], F]:
    """`--format`, the analysis options and (with `delivery`) the history, alert and --fail-on
    options, handed to the command as one `report: ReportOptions`. Without `default_formats`
    no --format leaves `report.formats` empty (the command decides)."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def command(*args: Any, **kwargs: Any) -> Any:
            given = {name: kwargs.pop(name) for name in _REPORT_PARAMS if name in kwargs}
            check_db_flags(given["db_path"], given["no_db"])
            formats = tuple(dict.fromkeys(f.lower() for f in given["formats"]))
            kwargs["report"] = ReportOptions(
                formats=formats or (DEFAULT_FORMATS if default_formats else ()),
                db_path=given["db_path"],
                use_db=not given["no_db"],
                suppressions=given["suppressions"],
                show_product_only=given["show_product_only"],
                min_confidence=given["min_confidence"],
                history=given.get("history"),
                record_history=not given.get("no_history", False),
                notify=given.get("notify", ()),
                notify_min_severity=given.get("notify_min_severity", "high"),
                fail_on=given.get("fail_on"),
                min_severity=given["min_severity"],
                max_db_age=given["max_db_age"],
                given=frozenset(n for n in given if _given(n)),
            )
            return func(*args, **kwargs)

        options = [
            format_option,
            analysis_options(suppressions_default=defaults.get("suppressions", "")),
        ]
        if no_history:
            no_history_help = "Do not record the merged run in the history."
            options.append(click.option("--no-history", is_flag=True, help=no_history_help))
        if delivery:
            options.append(delivery_options(history_default=defaults["history"]))
        else:
            options.append(fail_on_option)
        return _apply(options, cast(F, command))

    return decorate


def quiet_option(func: F) -> F:
    """`--quiet/-q`: no terminal summary, only the report paths (and errors)."""
    return click.option(
        "--quiet",
        "-q",
        is_flag=True,
        help="Print only the report paths, not the summary of what to fix.",
    )(func)


def print_outcome(
    outcome: RunOutcome, *, warnings: Sequence[str] = (), quiet: bool = False
) -> None:
    """The end of every command that runs a job: its messages (stderr), the summary of what to
    fix (unless `quiet`), the report paths (the first format asked for last: it is "the
    report"), its errors, and its exit status."""
    for line in [*(f"warning: {w}" for w in warnings), *outcome.messages]:
        click.echo(mask_text(line), err=True)
    if outcome.report is not None and not quiet:
        from flanscan._summary import render_summary

        # stderr when stdout carries the report itself (`-o -`)
        click.echo(render_summary(outcome.report), nl=False, err=outcome.report_on_stdout)
    paths = outcome.report_paths
    for path in paths[1:] + paths[:1]:
        click.echo(str(path))
    for error in outcome.errors:
        click.echo(f"flan: error: {mask_text(error)}", err=True)
    if outcome.exit_code:
        sys.exit(outcome.exit_code)


def say(line: str) -> None:
    """A line for the user on stderr, while a job runs."""
    click.echo(line, err=True)
