"""`flan merge`: one report and one history entry from the shards of a fleet run."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from flanscan._cli import EXIT_CODES_HELP
from flanscan._cli._options import (
    DEFAULT_FORMATS,
    analysis_options,
    check_db_flags,
    delivery_options,
    format_option,
)
from flanscan._secrets import mask_text


@click.command(
    epilog="""\b
Examples:
  flan merge s3://my-bucket/flan/flan-scan-29000000 --format html --format json
  flan merge gs://my-bucket/flan/flan-scan-29000000 --wait 3600
  flan merge flan-results/my-run/ -o merged/

"""
    + EXIT_CODES_HELP
)
@click.argument("source", metavar="SOURCE")
@format_option
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Local directory for the shards and the merged reports (default: SOURCE when it is a "
    "directory, else ./flan-results/<run-id>/).",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=0.0,
    metavar="SECONDS",
    help="Poll until every shard has finished (done.json, status complete), at most SECONDS; "
    "then merge what is there.",
)
@analysis_options()
@click.option("--no-history", is_flag=True, help="Do not record the merged run in the history.")
@delivery_options(history_default="history.sqlite3 beside the merged run directory")
def merge(
    source: str,
    formats: tuple[str, ...],
    output: Path | None,
    wait: float,
    db_path: Path | None,
    no_db: bool,
    suppressions: Path | None,
    history: str | None,
    no_history: bool,
    notify: tuple[str, ...],
    notify_min_severity: str,
    fail_on: str | None,
    show_product_only: bool,
    min_confidence: str,
) -> None:
    """Merge the shards of one run (`flan scan --shard I/N`) into one report and one history
    entry. SOURCE is the run's directory or its s3:// / gs:// prefix (PREFIX/<run-id>).

    Missing shards (no shard-I directory) and incomplete ones (no done.json, or a failed
    status) are named; their targets are reported as not checked, and the exit code is 3.
    For a remote SOURCE the shards are downloaded and the merged reports uploaded back to it.
    The path of the report is the last line printed.
    """
    from flanscan._errors import DeliveryError, ScanIncomplete
    from flanscan._merge import download_run, merge_run, upload_merged, wait_for_shards
    from flanscan._pipeline import ReportOptions
    from flanscan._storage import open_sink, parse_location

    check_db_flags(db_path, no_db)
    location = parse_location(source, "SOURCE")
    sink = open_sink(location)
    run_name = Path(location.prefix).name or location.bucket
    if location.is_remote:
        out = output or Path("flan-results") / run_name
    else:
        out = output or Path(location.prefix)

    def note(message: str) -> None:
        click.echo(f"note: {message}", err=True)

    if wait > 0:
        with tempfile.TemporaryDirectory(prefix="flan-merge-") as scratch:
            if not wait_for_shards(sink, wait, Path(scratch), note=note):
                note(f"not every shard finished within {wait:g}s; merging what is there")
    if location.is_remote:
        count = download_run(sink, out)
        note(f"downloaded {count} file(s) from {location.url} to {out}")
        run_dir = out
    else:
        run_dir = Path(location.prefix)

    options = ReportOptions(
        formats=tuple(dict.fromkeys(f.lower() for f in formats)) or DEFAULT_FORMATS,
        db_path=db_path,
        use_db=not no_db,
        suppressions=suppressions,
        show_product_only=show_product_only,
        min_confidence=min_confidence,
        history=history,
        record_history=not no_history,
        notify=notify,
        notify_min_severity=notify_min_severity,
        fail_on=fail_on,
    )
    outcome = merge_run(run_dir, options, out, source=location.url)
    for warning in outcome.warnings:
        click.echo(f"warning: {mask_text(warning)}", err=True)
    for message in outcome.messages:
        click.echo(mask_text(message), err=True)
    delivery = None
    if location.is_remote:
        try:
            upload_merged(sink, out, outcome.report_paths)
            click.echo(f"uploaded the merged report to {location.url}", err=True)
        except DeliveryError as exc:
            delivery = exc
    paths = outcome.report_paths
    for path in paths[1:] + paths[:1]:
        click.echo(str(path))
    run = outcome.shards
    assert run is not None
    if not run.complete:
        if delivery is not None:
            click.echo(f"flan: error: {delivery}", err=True)
        named = [f"shard {s.shard} missing" for s in run.missing] + [
            f"shard {s.shard} incomplete ({s.reason})" for s in run.incomplete
        ]
        raise ScanIncomplete(
            f"{'; '.join(named)}: the merged report covers the other shards; their targets "
            "are listed as not checked"
        )
    if delivery is not None:
        raise delivery
    if outcome.exit_code:
        sys.exit(outcome.exit_code)
