"""`flan scan`: scan targets with concurrent Nmap workers, then write the reports."""

from __future__ import annotations

import sys
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
from flanscan._targets import DEFAULT_MAX_HOSTS

if TYPE_CHECKING:
    from flanscan._pipeline import ReportOptions
    from flanscan._scan.progress import ProgressSink


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
  flan scan 127.0.0.1 --ports 22,80,8000-8100
  flan scan 127.0.0.1 --format md --format csv -- -sU -p U:161
  flan scan ::1 -- -6

"""
    + EXIT_CODES_HELP
)


def _display() -> ProgressSink:
    from flanscan._scan.display import LiveDisplay, PlainDisplay

    if sys.stdout.isatty() and sys.stderr.isatty():
        from rich.console import Console

        return LiveDisplay(Console(stderr=True))
    return PlainDisplay(sys.stderr)


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
    metavar="top1000|all|PORTS",
    default="top1000",
    show_default=True,
    help="top1000: the original profile (SYN scan of Nmap's top 1000 TCP ports, -sV). "
    "all: every TCP port, then -sV only on the open ones. PORTS: an Nmap port list "
    "(22,80,8000-8100; U:161 with -- -sU), scanned with -sV.",
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
@quiet_option
@report_options(
    delivery=True,
    default_formats=False,
    suppressions="flan-suppressions.yaml beside the -iL targets file, when it exists",
    history=HISTORY_DEFAULT,
)
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
    report: ReportOptions,
    quiet: bool,
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
    from flanscan._run import ScanRequest
    from flanscan._run import scan as scan_run

    request = ScanRequest(
        targets=targets, target_files=target_files, excludes=excludes,
        exclude_files=exclude_files, max_hosts=max_hosts, ports=ports, workers=workers,
        vulners=vulners, output_dir=output_dir, output=output, shard=shard, run_id=run_id,
        nmap_args=click.get_current_context().meta.get("flan.nmap_args", ()), report=report,
    )  # fmt: skip
    print_outcome(scan_run(request, progress=_display(), say=say), quiet=quiet)
