"""`flan report`: rebuild reports from saved Nmap XML, without scanning again."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from flanscan._cli._options import print_outcome, quiet_option, report_options

if TYPE_CHECKING:
    from flanscan._pipeline import ReportOptions


@click.command(
    epilog="""\b
Examples:
  flan report flan-results/20260101T000000Z/
  flan report scan-a.xml scan-b.xml --format md --format csv -o out/
  flan report run/xml/ --format pdf -o report.pdf
"""
)
@click.argument(
    "inputs",
    metavar="XML_FILE_OR_DIR...",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path),
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory for report.<ext> files, or a file name when one format is asked for "
    "(default: the run directory given, or its rebuilt/ when it holds the scan's own reports; "
    "else the current directory).",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace the scan's own reports when -o names its run directory.",
)
@quiet_option
@report_options(delivery=False)
def report(
    inputs: tuple[Path, ...],
    output: Path | None,
    force: bool,
    report: ReportOptions,
    quiet: bool,
) -> None:
    """Rebuild reports from saved Nmap XML files or result directories, without rescanning.

    A directory means its xml/ folder (a `flan scan` run) or the *.xml files in it. Several
    files (workers, a discovery and a version pass) are merged into one report. The path of
    the report is the last line printed.

    A run directory is rebuilt with what its run.json recorded (exception rules, database,
    history for the changes section, --min-confidence, --min-severity, --max-db-age) unless
    the option is given here; --fail-on gates the rebuilt report as it gates a scan.
    """
    from flanscan._pipeline import rebuild_reports

    print_outcome(rebuild_reports(inputs, report, output, force=force), quiet=quiet)
