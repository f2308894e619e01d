"""`flan scan`: scan targets with concurrent Nmap workers, then write the reports."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import click

from flanscan._cli import EXIT_CODES_HELP
from flanscan._cli._options import (
    DEFAULT_FORMATS,
    analysis_options,
    check_db_flags,
    delivery_options,
    format_option,
)
from flanscan._render import FORMATS
from flanscan._secrets import mask_text
from flanscan._targets import DEFAULT_MAX_HOSTS


class _ScanCommand(click.Command):
    """`flan scan ... -- NMAP_FLAGS`: everything after the first `--` goes to Nmap untouched."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            i = args.index("--")
            ctx.meta["flan.nmap_args"] = tuple(args[i + 1 :])
            args = args[:i]
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "[-- NMAP_FLAGS...]"]


EPILOG = (
    """\b
Examples:
  flan scan 127.0.0.1
  flan scan -iL ips.txt --exclude-file skip.txt --ports all
  flan scan 127.0.0.1 --format md --format csv -- -sU -p U:161
  flan scan ::1 -- -6

"""
    + EXIT_CODES_HELP
)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (e.g. a Kubernetes pod stopping) like Ctrl-C: stop Nmap, keep the XML."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Shown:
    """Wraps a display and remembers the notes it showed (so they are not repeated at the end)."""

    def __init__(self, display: Any) -> None:
        self.display = display
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.display.note(message)

    def update(self, progress: Any) -> None:
        self.display.update(progress)

    def close(self, progress: Any) -> None:
        self.display.close(progress)


def _display() -> _Shown:
    from flanscan._scan.display import LiveDisplay, PlainDisplay

    if sys.stdout.isatty() and sys.stderr.isatty():
        from rich.console import Console

        return _Shown(LiveDisplay(Console(stderr=True)))
    return _Shown(PlainDisplay(sys.stderr))


@click.command(cls=_ScanCommand, epilog=EPILOG)
@click.argument("targets", metavar="[TARGET]...", nargs=-1)
@click.option(
    "-iL",
    "target_files",
    multiple=True,
    metavar="FILE",
    type=click.Path(path_type=Path),
    help="Read targets from FILE (Flan's ips.txt: one address, CIDR, range or hostname per "
    "line; # comments). Repeatable.",
)
@click.option(
    "--exclude",
    "excludes",
    multiple=True,
    metavar="TARGETS",
    help="Do not scan these (comma-separated, like Nmap's --exclude). Repeatable.",
)
@click.option(
    "--exclude-file",
    "exclude_files",
    multiple=True,
    metavar="FILE",
    type=click.Path(path_type=Path),
    help="Do not scan the targets listed in FILE (ips.txt format). Repeatable.",
)
@click.option(
    "--max-hosts",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_HOSTS,
    show_default=True,
    metavar="N",
    help="Refuse, before scanning, a scope of more than N addresses (after excludes), naming "
    "the target that made it large (0.0.0.0/0, a /8 typed for a /24). Multicast and reserved "
    "ranges are never scanned.",
)
@click.option(
    "--ports",
    type=click.Choice(["top1000", "all"]),
    default="top1000",
    show_default=True,
    help="top1000: the original profile (SYN scan of Nmap's top 1000 TCP ports, -sV). "
    "all: every TCP port, then -sV only on the open ones.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Nmap processes run at once (default: from the number of hosts and CPU cores).",
)
@click.option(
    "--vulners",
    is_flag=True,
    help="Also run the original's vulners NSE script (needs internet access to vulners.com).",
)
@click.option(
    "--output-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Directory of this run: xml/, run.json, report.<ext> "
    "(default: ./flan-results/<UTC timestamp>/).",
)
@click.option(
    "--output",
    metavar="s3://BUCKET/PREFIX|gs://BUCKET/PREFIX|DIR",
    default=None,
    help="Also upload the run, as it is produced, to PREFIX/<run-id>/ (see docs/fleet.md); "
    "the local copy stays in --output-dir. Default: from the environment upload=aws|gcp and "
    "bucket=NAME, as the original container.",
)
@click.option(
    "--shard",
    metavar="I/N",
    default=None,
    help="Scan only shard I of N (0 <= I < N) of the expanded targets; default: from "
    "JOB_COMPLETION_INDEX and FLAN_SHARD_COUNT in a Kubernetes Indexed Job. Merge with flan merge.",
)
@click.option(
    "--run-id",
    metavar="ID",
    default=None,
    help="Run id shared by all shards of one run (default: FLAN_RUN_ID, else the start time).",
)
@format_option
@analysis_options(
    suppressions_default="flan-suppressions.yaml beside the -iL targets file, when it exists"
)
@delivery_options(history_default="history.sqlite3 next to the run directories")
def scan(
    targets: tuple[str, ...],
    target_files: tuple[Path, ...],
    excludes: tuple[str, ...],
    exclude_files: tuple[Path, ...],
    max_hosts: int,
    ports: str,
    workers: int | None,
    vulners: bool,
    output_dir: Path | None,
    output: str | None,
    shard: str | None,
    run_id: str | None,
    formats: tuple[str, ...],
    db_path: Path | None,
    no_db: bool,
    suppressions: Path | None,
    history: str | None,
    notify: tuple[str, ...],
    notify_min_severity: str,
    fail_on: str | None,
    show_product_only: bool,
    min_confidence: str,
) -> None:
    """Scan TARGETs (addresses, CIDR networks, Nmap-style ranges such as 198.18.0.1-20, or
    hostnames) with Nmap and write a service-centred report.

    Targets are split over several Nmap processes; the raw XML of each is kept in the run's
    xml/ directory, and what was asked and done in run.json. Nmap flags after `--` are read as
    Nmap reads them and passed through (e.g. `-- -sU -p U:161`, `-- -6`); flags that add
    targets, write files or reach other hosts are refused (docs/security.md). Without root, a
    TCP connect scan replaces the SYN scan. Ctrl-C stops Nmap, keeps the XML, reports what
    finished and exits with 3.
    The path of the report is the last line printed.
    """
    from flanscan._errors import ScanIncomplete, UsageError
    from flanscan._scan import ScanOptions, check_scan, run_scan
    from flanscan._targets import (
        check_scope,
        parse_exclude_option,
        parse_target,
        read_targets_file,
    )

    nmap_args: tuple[str, ...] = click.get_current_context().meta.get("flan.nmap_args", ())
    specs = [parse_target(t, f"target argument {i}") for i, t in enumerate(targets, 1)]
    for path in target_files:
        file_specs = read_targets_file(path)
        if not file_specs:
            raise UsageError(f"{path}: no targets in this file (only comments or blank lines)")
        specs.extend(file_specs)
    legacy: Path | None = None
    if not specs and not target_files:
        from flanscan._storage import legacy_targets_file

        legacy = legacy_targets_file()  # the original container's /shared/ips.txt
        if legacy is not None:
            specs.extend(read_targets_file(legacy))
    if not specs:
        raise UsageError("no targets: give TARGET arguments or -iL FILE (see flan scan --help)")
    if suppressions is None:
        from flanscan._suppress import default_suppressions_path

        # flan-suppressions.yaml beside the (first) targets file applies unless --suppressions
        first_file = target_files[0] if target_files else legacy
        suppressions = default_suppressions_path(first_file)
        if suppressions is not None:
            click.echo(f"flan: using exception rules in {suppressions}", err=True)
    exclude_specs = [s for value in excludes for s in parse_exclude_option(value)]
    for path in exclude_files:
        exclude_specs.extend(read_targets_file(path))
    for note in check_scope(specs, exclude_specs, max_hosts):  # before anything is created
        click.echo(f"note: {note}", err=True)
    check_db_flags(db_path, no_db)

    from flanscan._errors import DeliveryError
    from flanscan._pipeline import ReportOptions, check_report_options, report_run
    from flanscan._storage import legacy_formats, plan_fleet_run

    report_options = ReportOptions(
        formats=tuple(dict.fromkeys(formats))
        or legacy_formats(os.environ, FORMATS)
        or DEFAULT_FORMATS,
        db_path=db_path,
        use_db=not no_db,
        suppressions=suppressions,
        show_product_only=show_product_only,
        min_confidence=min_confidence,
        history=history,
        notify=notify,
        notify_min_severity=notify_min_severity,
        fail_on=fail_on,
    )
    check_report_options(report_options)  # bad --db or rules stop the run before scanning
    fleet = plan_fleet_run(
        output=output,
        output_dir=output_dir,
        shard=shard,
        run_id=run_id,
        note=lambda message: click.echo(f"note: {message}", err=True),
    )
    if fleet.shard is not None:  # a shard's report is partial: `flan merge` records history
        report_options = dataclasses.replace(report_options, record_history=False)
    scan_specs = fleet.select(specs, exclude_specs)
    if not scan_specs:
        fleet.begin(specs, exclude_specs, len(scan_specs))
        fleet.finish(None, [])
        click.echo(f"shard {fleet.shard}: no targets in this share, nothing to scan", err=True)
        return
    options = ScanOptions(
        targets=tuple(scan_specs),
        excludes=tuple(exclude_specs),
        output_dir=fleet.run_dir,
        ports=ports,
        workers=workers,
        extra_args=nmap_args,
        vulners=vulners,
        max_hosts=max_hosts,
    )
    check_scan(options)  # bad flags, nmap missing: fail before anything is created
    fleet.begin(specs, exclude_specs, len(scan_specs))
    display = _display()
    with _sigterm_as_interrupt(), fleet.uploading():
        result = run_scan(options, display)
    try:
        outcome = report_run(result.run_dir, result.summary(), report_options)
    except KeyboardInterrupt:
        raise ScanIncomplete(
            f"interrupted while writing the reports; raw Nmap XML kept in {result.run_dir / 'xml'}"
            f" (rebuild with: flan report {result.run_dir})"
        ) from None
    for warning in result.warnings:
        if warning not in display.notes:
            click.echo(f"warning: {warning}", err=True)
    for message in outcome.messages:
        click.echo(mask_text(message), err=True)
    # The first format asked for is "the report": its path is the last line printed.
    paths = outcome.report_paths
    for path in paths[1:] + paths[:1]:
        click.echo(str(path))
    delivery = None
    try:
        fleet.finish(result, paths)  # the rest of the run, then done.json, to --output
    except DeliveryError as exc:
        delivery = exc
    if fleet.remote_url and delivery is None:
        click.echo(f"uploaded to {fleet.remote_url}", err=True)
    if not result.complete:
        if delivery is not None:
            click.echo(f"flan: error: {delivery}", err=True)
        what = "interrupted" if result.interrupted else "incomplete (a Nmap worker failed)"
        raise ScanIncomplete(
            f"scan {what}: the report covers what finished; "
            f"{len(result.incomplete_targets)} target(s) not fully checked (see {result.run_dir}"
            "/run.json)"
        )
    if delivery is not None:
        raise delivery
    if outcome.exit_code:
        sys.exit(outcome.exit_code)
