"""The `flan scan` use case: targets in, a scanned, reported (and possibly uploaded) run out.

In order: read the targets (or the original container's /shared/ips.txt), check the scope and
every report input before anything is created, place the run (id, shard, directory, upload),
scan this run's share while uploading finished workers, build and write the reports, then
done.json and the last uploads. The exit status is decided in `_status.py`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from flanscan._errors import DeliveryError, ScanIncomplete, UsageError
from flanscan._pipeline import ReportOptions, check_report_options, report_inputs, report_run
from flanscan._run.environment import legacy_formats, legacy_targets_file
from flanscan._run.placement import FleetRun, plan_fleet_run
from flanscan._scan import ScanOptions, ScanProgress, ScanResult, check_scan, run_scan
from flanscan._scan.progress import NullProgress, ProgressSink
from flanscan._status import ExitStatus, RunOutcome
from flanscan._targets import (
    DEFAULT_MAX_HOSTS,
    TargetSpec,
    check_scope,
    parse_exclude_option,
    parse_target,
    read_targets_file,
)

DEFAULT_FORMATS = ("html", "json")


@dataclass(frozen=True)
class ScanRequest:
    """What `flan scan` was asked. Empty `report.formats` means "not chosen" (the original
    container's `format` variable, else html and json); `report.suppressions` None means
    flan-suppressions.yaml beside the first targets file, when it exists."""

    targets: tuple[str, ...] = ()
    target_files: tuple[Path, ...] = ()
    excludes: tuple[str, ...] = ()
    exclude_files: tuple[Path, ...] = ()
    max_hosts: int = DEFAULT_MAX_HOSTS
    ports: str = "top1000"
    workers: int | None = None
    vulners: bool = False
    nmap_args: tuple[str, ...] = ()  # passed through to Nmap (after `--`)
    output_dir: Path | None = None
    output: str | None = None  # s3://, gs:// or a directory to upload the run to
    shard: str | None = None  # "I/N"
    run_id: str | None = None
    report: ReportOptions = field(default_factory=lambda: ReportOptions(formats=()))
    env: Mapping[str, str] | None = None  # None: os.environ


@dataclass(frozen=True)
class _Targets:
    specs: list[TargetSpec]
    excludes: list[TargetSpec]
    first_file: Path | None  # where default exception rules are looked for


def _read_targets(request: ScanRequest) -> _Targets:
    specs = [parse_target(t, f"target argument {i}") for i, t in enumerate(request.targets, 1)]
    for path in request.target_files:
        file_specs = read_targets_file(path)
        if not file_specs:
            raise UsageError(f"{path}: no targets in this file (only comments or blank lines)")
        specs.extend(file_specs)
    first_file = request.target_files[0] if request.target_files else None
    if not specs and not request.target_files:
        first_file = legacy_targets_file()  # the original container's /shared/ips.txt
        if first_file is not None:
            specs.extend(read_targets_file(first_file))
    if not specs:
        raise UsageError("no targets: give TARGET arguments or -iL FILE (see flan scan --help)")
    excludes = [s for value in request.excludes for s in parse_exclude_option(value)]
    for path in request.exclude_files:
        excludes.extend(read_targets_file(path))
    return _Targets(specs, excludes, first_file)


def _report_options(
    request: ScanRequest,
    first_file: Path | None,
    env: Mapping[str, str],
    say: Callable[[str], None],
) -> ReportOptions:
    from flanscan._render import FORMATS

    options = request.report
    formats = tuple(dict.fromkeys(options.formats)) or legacy_formats(env, FORMATS)
    options = dataclasses.replace(options, formats=formats or DEFAULT_FORMATS)
    if options.suppressions is None:
        from flanscan._suppress import default_suppressions_path

        found = default_suppressions_path(first_file)
        if found is not None:
            from flanscan._suppress import load_suppressions

            count = len(load_suppressions(found).rules)  # a bad file is refused here, by name
            say(
                f"flan: using {count} exception rule{'s' if count != 1 else ''} from {found} "
                "(found beside the targets file; --suppressions FILE to choose another)"
            )
            options = dataclasses.replace(options, suppressions=found)
    return options


class _Shown:
    """Passes progress on, remembering the notes shown (so they are not repeated at the end)."""

    def __init__(self, sink: ProgressSink) -> None:
        self.sink = sink
        self.notes: list[str] = []

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.sink.note(message)

    def update(self, progress: ScanProgress) -> None:
        self.sink.update(progress)

    def close(self, progress: ScanProgress) -> None:
        self.sink.close(progress)


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


def scan(
    request: ScanRequest,
    *,
    progress: ProgressSink | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> RunOutcome:
    """Scan, report and deliver one run (or one shard of a fleet run). Raises a FlanError for
    bad input before anything is scanned; a scan that ran returns its outcome and status."""
    env = os.environ if request.env is None else request.env
    targets = _read_targets(request)
    report = _report_options(request, targets.first_file, env, say)
    for note in check_scope(targets.specs, targets.excludes, request.max_hosts):
        say(f"note: {note}")  # before anything is created
    check_report_options(report)  # bad --db or rules stop the run before scanning
    fleet = plan_fleet_run(output=request.output, output_dir=request.output_dir,
                           shard=request.shard, run_id=request.run_id, env=env,
                           note=lambda message: say(f"note: {message}"))  # fmt: skip
    if fleet.shard is not None:  # a shard's report is partial: `flan merge` records history
        report = dataclasses.replace(report, record_history=False)
    share = fleet.select(targets.specs, targets.excludes)
    if not share:
        fleet.begin(targets.specs, targets.excludes, 0)
        fleet.finish(None, [])
        say(f"shard {fleet.shard}: no targets in this share, nothing to scan")
        return RunOutcome()
    options = ScanOptions(targets=tuple(share), excludes=tuple(targets.excludes),
                          output_dir=fleet.run_dir, ports=request.ports, workers=request.workers,
                          extra_args=request.nmap_args, vulners=request.vulners,
                          max_hosts=request.max_hosts,
                          report_inputs=report_inputs(report, fleet.run_dir))  # fmt: skip
    check_scan(options)  # bad flags, nmap missing: fail before anything is created
    fleet.begin(targets.specs, targets.excludes, len(share))
    shown = _Shown(progress or NullProgress())
    with _sigterm_as_interrupt(), fleet.uploading():
        result = run_scan(options, shown)
    try:
        outcome = report_run(result.run_dir, result.summary(), report)
    except KeyboardInterrupt:
        raise ScanIncomplete(
            f"interrupted while writing the reports; raw Nmap XML kept in {result.run_dir / 'xml'}"
            f" (rebuild with: flan report {result.run_dir})"
        ) from None
    unseen = [f"warning: {w}" for w in result.warnings if w not in shown.notes]
    outcome.messages[:0] = unseen
    _deliver(fleet, result, outcome)
    return outcome


def _deliver(fleet: FleetRun, result: ScanResult, outcome: RunOutcome) -> None:
    """done.json and the rest of the run to --output; the statuses an unfinished scan and a
    failed upload earn."""
    try:
        fleet.finish(result, outcome.report_paths)
    except DeliveryError as exc:
        outcome.earn(ExitStatus.DELIVERY, str(exc))
    else:
        if fleet.remote_url:
            outcome.messages.append(f"uploaded to {fleet.remote_url}")
    if not result.complete:
        what = "interrupted" if result.interrupted else "incomplete (a Nmap worker failed)"
        if not result.interrupted and set(result.incomplete_targets) <= set(result.skipped_targets):
            what = f"incomplete (not checked: {', '.join(result.skipped_targets)})"
        outcome.earn(
            ExitStatus.SCAN_INCOMPLETE,
            f"scan {what}: the report covers what finished; "
            f"{len(result.incomplete_targets)} target(s) not fully checked (see {result.run_dir}"
            "/run.json)",
        )
