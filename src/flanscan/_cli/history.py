"""`flan history` (list and import runs) and `flan diff` (what changed between two runs)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from flanscan._cli._options import db_option

if TYPE_CHECKING:
    from flanscan._history import HistoryStore
    from flanscan._history._groups import CompactRun
    from flanscan._model import Report

HISTORY_HELP = (
    "History file or postgresql:// URL (default: FLAN_HISTORY, else history.sqlite3 in the "
    "user data directory, ~/.local/share/flanscan/)."
)


def _history_option(f: Any) -> Any:
    return click.option(
        "--history", "history_url", envvar="FLAN_HISTORY", metavar="URL_OR_PATH",
        default=None, help=HISTORY_HELP,
    )(f)  # fmt: skip


def _db_options(f: Any) -> Any:
    f = click.option(
        "--suppressions", type=click.Path(path_type=Path), default=None,
        help="Exception rules applied when reading XML or result directories.",
    )(f)  # fmt: skip
    f = click.option("--no-db", is_flag=True, help="Read XML without vulnerability matching.")(f)
    return db_option(f)


def _format_option(f: Any) -> Any:
    return click.option(
        "--format", "fmt", type=click.Choice(["text", "json"]), default="text",
        show_default=True, help="Output format.",
    )(f)  # fmt: skip


def _open(history_url: str | None, *, create: bool) -> HistoryStore:
    from flanscan._history import default_history, open_history

    return open_history(history_url or default_history(), create=create)


def _report(
    paths: Sequence[Path], db_path: Path | None, no_db: bool, suppressions: Path | None
) -> Report:
    from flanscan._cli._options import check_db_flags
    from flanscan._pipeline import ReportOptions, report_from_xml

    check_db_flags(db_path, no_db)
    options = ReportOptions(
        db_path=db_path, use_db=not no_db, suppressions=suppressions, record_history=False
    )
    return report_from_xml(list(paths), options)


@click.group(
    invoke_without_command=True,
    epilog="""\b
Examples:
  flan history
  flan history --history postgresql://flan@db.internal/flan --format json
  flan history import old-scans/*.xml
  flan history import --as-one-run shard-0/ shard-1/ shard-2/
""",
)
@_history_option
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Show the newest N runs.")
@_format_option
@click.pass_context
def history(ctx: click.Context, history_url: str | None, limit: int | None, fmt: str) -> None:
    """List recorded scans, newest first: id, start time, targets, hosts, open findings.

    Every `flan scan` records its run; `flan history import` adds scans made earlier or
    elsewhere. Compare two runs with `flan diff OLD NEW`.
    """
    ctx.ensure_object(dict)
    ctx.obj["history_url"] = history_url
    if ctx.invoked_subcommand is not None:
        return
    from flanscan._history._format import run_as_dict, runs_as_text

    with _open(history_url, create=False) as store:
        refs = store.runs(limit=limit)
        location = store.location
    if fmt == "json":
        click.echo(json.dumps([run_as_dict(r) for r in refs], indent=2))
    elif not refs:
        click.echo(f"no runs recorded in {location}")
    else:
        click.echo(runs_as_text(refs), nl=False)


@history.command(name="import")
@click.argument(
    "inputs", metavar="DIR_OR_XML...", nargs=-1, required=True, type=click.Path(path_type=Path)
)
@_history_option
@click.option(
    "--as-one-run",
    is_flag=True,
    help="Record all inputs as a single run (shards of one fleet scan); default: one run each.",
)
@_db_options
@click.pass_context
def import_(
    ctx: click.Context,
    inputs: tuple[Path, ...],
    history_url: str | None,
    as_one_run: bool,
    db_path: Path | None,
    no_db: bool,
    suppressions: Path | None,
) -> None:
    """Record scans made earlier or elsewhere: saved Nmap XML or result directories.

    Each argument becomes one run (a directory: all the XML in it, e.g. a `flan scan`
    result directory). Importing the same results again does not duplicate them.
    """
    from flanscan._history._groups import compact_from_report

    url = history_url or (ctx.obj or {}).get("history_url")
    groups = [list(inputs)] if as_one_run else [[p] for p in inputs]
    reports = [(g, _report(g, db_path, no_db, suppressions)) for g in groups]
    with _open(url, create=True) as store:
        for group, report in reports:
            names = ", ".join(str(p) for p in group)
            compact = compact_from_report(report)  # converted once for both calls
            existing = store.recorded_id(report, compact=compact)
            if existing is not None:
                click.echo(f"{names}: already recorded as run {existing}")
                continue
            run_dir = str(group[0].resolve()) if len(group) == 1 and group[0].is_dir() else None
            run_id = store.record(report, run_dir=run_dir, source="import", compact=compact)
            hosts = sum(1 for h in report.hosts if h.status == "up")
            click.echo(f"{names}: recorded as run {run_id} ({hosts} hosts up)")
        click.echo(f"history: {store.location}")


def _run_for(
    ref: str,
    store_box: list[HistoryStore],
    history_url: str | None,
    db_args: tuple[Path | None, bool, Path | None],
    *,
    from_files: bool,
) -> CompactRun:
    """A run id from the history, or a result directory / XML file read directly."""
    from flanscan._history._groups import compact_from_report

    if from_files:
        return compact_from_report(_report([Path(ref)], *db_args))
    if not store_box:
        store_box.append(_open(history_url, create=False))
    return store_box[0].load_compact(ref)


def _refs_from_files(refs: Sequence[str], history_url: str | None) -> list[bool]:
    """Which diff arguments are read as files: those written as a path (with a `/`, or an
    `.xml` name), and bare names that exist here unless the history holds a run by that name.
    flan names result directories by run id, so inside `flan-results/` a run id is also a
    directory: the recorded run (what was found then) is meant, not the XML matched anew
    against today's database; `./NAME` reads the directory."""
    from flanscan._errors import UsageError

    def written_as_path(ref: str) -> bool:
        return "/" in ref or ref.lower().endswith(".xml")

    bare_existing = [r for r in refs if not written_as_path(r) and Path(r).exists()]
    recorded: set[str] = set()
    if bare_existing:
        try:
            with _open(history_url, create=False) as store:
                recorded = {r for r in bare_existing if store.has_run(r)}
        except UsageError:  # no history yet: every existing name is a path
            recorded = set()
    return [written_as_path(r) or (Path(r).exists() and r not in recorded) for r in refs]


@click.command(
    epilog="""\b
Examples:
  flan diff 20260301T120000Z 20260308T120000Z
  flan diff flan-results/20260301T120000Z/ flan-results/20260308T120000Z/
  flan diff old-scan.xml new-scan.xml --no-db --format json
"""
)
@click.argument("old", metavar="OLD")
@click.argument("new", metavar="NEW")
@_history_option
@_format_option
@_db_options
def diff(
    old: str,
    new: str,
    history_url: str | None,
    fmt: str,
    db_path: Path | None,
    no_db: bool,
    suppressions: Path | None,
) -> None:
    """Show what changed from OLD to NEW: new and fixed findings, status changes (KEV,
    suppressions), new and closed ports, version changes, hosts that appeared or went away.

    OLD and NEW are run ids from `flan history`, result directories or Nmap XML files. A bare
    name that is both a recorded run id and a directory here means the recorded run; write
    ./NAME for the directory. What the NEW run did not scan (other targets, other ports, a
    failed worker) is "not checked", never "fixed".
    """
    from flanscan._history._compact_diff import diff_compact
    from flanscan._history._format import changes_as_dict, changes_as_text

    old_files, new_files = _refs_from_files((old, new), history_url)
    if not old_files and not new_files:
        # Two recorded runs: the database compares them (see HistoryStore.diff).
        with _open(history_url, create=False) as opened:
            changes = opened.diff(old, new)
    else:
        store_box: list[HistoryStore] = []
        try:
            db_args = (db_path, no_db, suppressions)
            old_run = _run_for(old, store_box, history_url, db_args, from_files=old_files)
            new_run = _run_for(new, store_box, history_url, db_args, from_files=new_files)
        finally:
            for store in store_box:
                store.close()
        changes = diff_compact(old_run, new_run, since_run=old_run.run_id or old)
    if fmt == "json":
        click.echo(json.dumps(changes_as_dict(changes), indent=2))
    else:
        click.echo(changes_as_text(changes), nl=False)
