"""`flan report`: rebuild reports from saved Nmap XML, without scanning again."""

from __future__ import annotations

import sys
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
  flan report run/xml/ -o report.pdf
  flan report flan-results/20260101T000000Z/ -f sarif -o - > flan.sarif
  flan report flan-results/20260101T000000Z/ -o vex.cdx.json
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
    help="Directory for report.<ext> files; or a file name, whose extension gives the format "
    "when --format is not given (report.html, flan.sarif, vex.cdx.json; another --format is "
    "refused); or - for standard output (one --format; the summary goes to stderr). Default: "
    "the run directory given, or its rebuilt/ when it holds the scan's own reports; else the "
    "current directory.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace the scan's own reports when -o names its run directory.",
)
@quiet_option
@report_options(delivery=False, default_formats=False)
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

    stdout = sys.stdout.buffer  # for -o -
    print_outcome(rebuild_reports(inputs, report, output, force=force, stdout=stdout), quiet=quiet)
