"""`flan report`: rebuild reports from saved Nmap XML, without scanning again."""

from __future__ import annotations

from pathlib import Path

import click

from flanscan._cli._options import DEFAULT_FORMATS, analysis_options, check_db_flags, format_option


def _output_dir(inputs: tuple[Path, ...]) -> Path:
    """Where reports go without -o: into the run directory given, else the current one."""
    if len(inputs) == 1 and inputs[0].is_dir():
        return inputs[0]
    return Path.cwd()


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
@format_option
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory for report.<ext> files, or a file name when one format is asked for "
    "(default: the run directory given, else the current directory).",
)
@analysis_options()
def report(
    inputs: tuple[Path, ...],
    formats: tuple[str, ...],
    output: Path | None,
    db_path: Path | None,
    no_db: bool,
    suppressions: Path | None,
    show_product_only: bool,
    min_confidence: str,
) -> None:
    """Rebuild reports from saved Nmap XML files or result directories, without rescanning.

    A directory means its xml/ folder (a `flan scan` run) or the *.xml files in it. Several
    files (workers, a discovery and a version pass) are merged into one report. The path of
    the report is the last line printed.
    """
    from flanscan._pipeline import ReportOptions, report_from_xml, write_reports
    from flanscan._report import summary_from_run_json

    chosen = tuple(dict.fromkeys(f.lower() for f in formats)) or DEFAULT_FORMATS
    check_db_flags(db_path, no_db)
    options = ReportOptions(
        formats=chosen,
        db_path=db_path,
        use_db=not no_db,
        suppressions=suppressions,
        show_product_only=show_product_only,
        min_confidence=min_confidence,
    )
    # A `flan scan` run directory says what was asked (targets as given, excludes, profile).
    scan = summary_from_run_json(inputs[0]) if len(inputs) == 1 and inputs[0].is_dir() else None
    built = report_from_xml(list(inputs), options, scan=scan)
    for warning in built.scan.warnings:
        click.echo(f"warning: {warning}", err=True)
    if built.vulndb_note:
        click.echo(built.vulndb_note, err=True)
    paths = write_reports(built, chosen, output or _output_dir(inputs))
    # The first format asked for is "the report": its path is the last line printed.
    for path in paths[1:] + paths[:1]:
        click.echo(str(path))
