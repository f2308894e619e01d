"""The `flan merge` use case: the shards of one fleet run in, one report and one history entry
out (and, for a remote run, back into its prefix).

A run is `<prefix>/<run-id>/shard-<I>-of-<N>/{shard.json, run.json, xml/*.xml, done.json}`,
locally or in object storage (see shards.py for what counts as missing or incomplete). Their
targets are reported as not checked, never as clean, and the run earns exit status 3.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from flanscan._errors import DeliveryError
from flanscan._pipeline import ReportOptions, check_gate, finish_report, report_from_xml
from flanscan._records import MERGE_FILE, MergedShard, MergeRecord, write_record
from flanscan._run.shards import (
    RunShards,
    download_run,
    inspect_run,
    merged_summary,
    shard_scope_check,
    shard_xml_files,
    wait_for_shards,
)
from flanscan._status import ExitStatus, RunOutcome
from flanscan._storage import RetryPolicy, Sink, StorageError, open_sink, parse_location, retrying


@dataclass(frozen=True)
class MergeRequest:
    """What `flan merge` was asked: SOURCE (a run directory or its s3:// / gs:// prefix), where
    to put the shards and the merged reports (default: SOURCE when local, else
    ./flan-results/<run-id>/), and how long to wait for unfinished shards."""

    source: str
    report: ReportOptions
    output: Path | None = None
    wait: float = 0.0


def merge(request: MergeRequest, *, say: Callable[[str], None] = lambda line: None) -> RunOutcome:
    """Merge a run's shards into one report; missing or incomplete shards earn status 3, merged
    files that could not be uploaded back status 4."""
    location = parse_location(request.source, "SOURCE")
    sink = open_sink(location)
    run_name = Path(location.prefix).name or location.bucket
    local = Path(location.prefix)
    out = request.output or (Path("flan-results") / run_name if location.is_remote else local)
    if request.wait > 0:
        with tempfile.TemporaryDirectory(prefix="flan-merge-") as scratch:
            if not wait_for_shards(sink, request.wait, Path(scratch),
                                   note=lambda message: say(f"note: {message}")):  # fmt: skip
                late = f"not every shard finished within {request.wait:g}s"
                say(f"note: {late}; merging what is there")
    if location.is_remote:
        count = download_run(sink, out)
        say(f"note: downloaded {count} file(s) from {location.url} to {out}")
    outcome, run = merge_run(out if location.is_remote else local, request.report, out,
                             source=location.url)  # fmt: skip
    if location.is_remote:
        try:
            upload_merged(sink, out, outcome.report_paths)
            outcome.messages.append(f"uploaded the merged report to {location.url}")
        except DeliveryError as exc:
            outcome.earn(ExitStatus.DELIVERY, str(exc))
    if not run.complete:
        named = [f"shard {s.shard} missing" for s in run.missing] + [
            f"shard {s.shard} incomplete ({s.reason})" for s in run.incomplete
        ]
        outcome.earn(
            ExitStatus.SCAN_INCOMPLETE,
            f"{'; '.join(named)}: the merged report covers the other shards; their targets "
            "are listed as not checked",
        )
    return outcome


def merge_run(
    run_dir: Path, options: ReportOptions, out: Path, *, source: str
) -> tuple[RunOutcome, RunShards]:
    """Build one report and one history entry from the shards in `run_dir`; write the reports
    and merge.json to `out`. Warnings about shards come first in the outcome's messages."""
    check_gate(options)  # --fail-on without current data: refused before anything is written
    run = inspect_run(run_dir)
    summary, warnings = merged_summary(run)
    check = shard_scope_check(run)
    report = report_from_xml(shard_xml_files(run), options, scan=summary, check=check)
    warnings.extend(check.warnings())
    outcome = RunOutcome(messages=[f"warning: {w}" for w in warnings])
    finish_report(report, options, outcome, out=out, source="merge")
    _write_merge_record(out / MERGE_FILE, run, source, outcome.report_paths)
    return outcome, run


def _write_merge_record(path: Path, run: RunShards, source: str, reports: Sequence[Path]) -> None:
    record = MergeRecord(
        run_id=run.run_id,
        source=source,
        merged_at=datetime.now().astimezone(),
        shard_count=run.count,
        shards=tuple(MergedShard(s.shard.index, s.state, s.reason) for s in run.shards),
        reports=tuple(p.name for p in reports),
    )
    write_record(path, record)


def upload_merged(sink: Sink, out: Path, files: Sequence[Path]) -> None:
    """Send the merged reports and merge.json to the run's prefix (retries, then
    DeliveryError; the local copies stay)."""
    policy = RetryPolicy.from_env()
    failed = []
    for path in [*files, out / MERGE_FILE]:
        try:
            retrying(lambda p=path: sink.put_file(p, p.name), policy)  # type: ignore[misc]
        except StorageError as exc:
            failed.append(f"{path.name}: {exc}")
    if failed:
        raise DeliveryError(
            f"{len(failed)} merged file(s) not uploaded to {sink.url} after retries "
            f"(first: {failed[0]}); local copies kept in {out}"
        )
