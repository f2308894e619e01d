"""`flan merge`: one report and one history entry from the shards of a fleet run."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from flanscan._cli import EXIT_CODES_HELP
from flanscan._cli._options import (
    HISTORY_DEFAULT,
    print_outcome,
    quiet_option,
    report_options,
    say,
)

if TYPE_CHECKING:
    from flanscan._pipeline import ReportOptions


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
@quiet_option
@report_options(delivery=True, no_history=True, history=HISTORY_DEFAULT)
def merge(
    source: str, output: Path | None, wait: float, report: ReportOptions, quiet: bool
) -> None:
    """Merge the shards of one run (`flan scan --shard I/N`) into one report and one history
    entry. SOURCE is the run's directory or its s3:// / gs:// prefix (PREFIX/<run-id>).

    Missing shards (no shard-I directory) and incomplete ones (no done.json, or a failed
    status) are named; their targets are reported as not checked, and the exit code is 3.
    For a remote SOURCE the shards are downloaded and the merged reports uploaded back to it.
    The path of the report is the last line printed.
    """
    from flanscan._run import MergeRequest
    from flanscan._run import merge as merge_run

    request = MergeRequest(source=source, report=report, output=output, wait=wait)
    print_outcome(merge_run(request, say=say), quiet=quiet)
