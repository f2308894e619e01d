"""Where a run's files go: its id, its shard, its local directory and its upload destination;
and the run's life around the scan (shard.json before, uploads during, done.json after).

Precedence, highest first: command-line options; flan's own environment (FLAN_RUN_ID, and for
shards JOB_COMPLETION_INDEX with FLAN_SHARD_COUNT); the original container's variables
(`upload` + `bucket` for --output; see environment.py); defaults.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flanscan import __version__
from flanscan._errors import DeliveryError, UsageError
from flanscan._records import (
    DONE_FILE,
    MANIFEST_FILE,
    RUN_FILE,
    SHARD_FILE,
    DoneRecord,
    DoneStatus,
    DoneWorker,
    HostCounts,
    ShardId,
    ShardRecord,
    read_manifest,
    write_record,
)
from flanscan._run.environment import RUN_ID_ENV, legacy_output, shard_from_env
from flanscan._run.shard import Shard, parse_shard, select_shard
from flanscan._run.uploads import RunUploader
from flanscan._storage import (
    RetryPolicy,
    Sink,
    StorageError,
    StorageLocation,
    open_sink,
    parse_location,
    retrying,
)
from flanscan._targets import TargetSpec

if TYPE_CHECKING:
    from flanscan._scan import ScanResult

_RUN_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


def _check_run_id(run_id: str, source: str) -> str:
    if not _RUN_ID.match(run_id):
        raise UsageError(
            f"{source} {run_id!r}: a run id is 1-128 letters, digits, '.', '_' or '-' "
            "(not starting with '.' or '-')"
        )
    return run_id


@dataclass
class FleetRun:
    """Where this run's files live locally (`run_dir`) and where they are uploaded."""

    run_dir: Path
    run_id: str
    shard: Shard | None = None
    destination: StorageLocation | None = None  # None: the local run_dir is the only copy
    key_prefix: str = ""
    sink: Sink | None = None
    uploader: RunUploader | None = None
    notes: list[str] = field(default_factory=list)
    note: Callable[[str], None] = field(default=lambda message: None)

    @property
    def remote_url(self) -> str | None:
        """Where the run is uploaded, for messages (no credentials in it)."""
        if self.destination is None:
            return None
        return self.destination.child(self.key_prefix).url

    # ---------------------------------------------------------------- before scanning

    def select(
        self, specs: Sequence[TargetSpec], excludes: Sequence[TargetSpec]
    ) -> list[TargetSpec]:
        """This run's targets: a shard's share, or all of them."""
        if self.shard is None:
            return list(specs)
        return select_shard(specs, excludes, self.shard)

    def begin(
        self, specs: Sequence[TargetSpec], excludes: Sequence[TargetSpec], share: int
    ) -> None:
        """Write shard.json; for an upload, clear what an earlier attempt of this shard left
        under its prefix, send shard.json and start uploading as the run goes."""
        if (self.run_dir / RUN_FILE).exists():
            # Checked here, before an earlier attempt's uploads are removed.
            raise UsageError(
                f"{self.run_dir}: already holds a run (run.json); choose another --output-dir "
                "or run id"
            )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.shard is not None:
            record = ShardRecord(
                flanscan_version=__version__,
                run_id=self.run_id,
                shard=ShardId(self.shard.index, self.shard.count),
                targets=tuple(s.text for s in specs),
                excludes=tuple(s.text for s in excludes),
                shard_targets=share,
                created=datetime.now(UTC),
            )
            write_record(self.run_dir / SHARD_FILE, record)
        if self.sink is None:
            return
        sink, policy = self.sink, RetryPolicy.from_env()
        self._remove_earlier_attempt(sink, policy)
        self.uploader = RunUploader(sink, self.run_dir, self.key_prefix, note=self.note)
        if self.shard is not None and not self.uploader.upload(self.run_dir / SHARD_FILE):
            error = next(iter(self.uploader.failures.values()))
            raise DeliveryError(
                f"cannot write to {self.remote_url}: {error}; nothing was scanned "
                "(check the bucket name and the credentials' write permission)"
            )

    def _remove_earlier_attempt(self, sink: Sink, policy: RetryPolicy) -> None:
        """Delete what an earlier attempt of this run uploaded, as its manifest lists it; files
        the manifest does not name (other tools', a shared directory's) stay."""
        prefix = f"{self.key_prefix}/" if self.key_prefix else ""
        manifest_key = prefix + MANIFEST_FILE
        try:
            present = set(retrying(lambda: sink.list(prefix), policy))
            if manifest_key not in present:
                return
            with tempfile.TemporaryDirectory(prefix="flan-manifest-") as tmp:
                local = Path(tmp) / MANIFEST_FILE
                retrying(lambda: sink.get_file(manifest_key, local), policy)
                stale = [k for k in read_manifest(local, self.key_prefix) if k in present]
        except StorageError as exc:
            self.note(f"cannot read {self.remote_url} ({exc}); earlier files are not removed")
            return
        if not stale:
            return
        self.note(f"removing {len(stale)} file(s) of an earlier attempt under {self.remote_url}")
        try:
            sink.delete(stale)  # keys below the sink's base, as list() gives them
        except StorageError as exc:
            self.note(f"cannot remove earlier files ({exc})")

    @contextmanager
    def uploading(self) -> Any:
        """Upload finished workers' XML while the scan runs."""
        if self.uploader is not None:
            self.uploader.start()
        try:
            yield
        finally:
            if self.uploader is not None:
                self.uploader.stop()

    # ---------------------------------------------------------------- after scanning

    def finish(self, result: ScanResult | None, reports: Sequence[Path]) -> None:
        """Write done.json (status, hosts scanned, worker status), upload what is left, done.json
        last. Raises DeliveryError when files could not be uploaded after retries."""
        done = self.run_dir / DONE_FILE
        write_record(done, done_record(result, self.run_id, self.shard))
        if self.uploader is None:
            return
        failures = self.uploader.finish(reports, done)
        if failures:
            first_key, first_error = next(iter(failures.items()))
            raise DeliveryError(
                f"{len(failures)} file(s) not uploaded to {self.remote_url} after retries"
                f" (first: {first_key}: {first_error}); local copies kept in "
                f"{self.run_dir}"
            )


def done_record(result: ScanResult | None, run_id: str, shard: Shard | None) -> DoneRecord:
    """done.json: how the shard (or run) ended, written after everything else."""
    status: DoneStatus = "complete"  # an empty shard (no result): nothing to scan is complete
    workers: tuple[DoneWorker, ...] = ()
    hosts = HostCounts()
    incomplete: tuple[str, ...] = ()
    if result is not None:
        if not result.complete:
            status = "interrupted" if result.interrupted else "failed"
        workers = tuple(
            DoneWorker(w.name, w.phase, w.status, w.exit_code, w.hosts, w.error)
            for w in result.workers
        )
        hosts = HostCounts(result.hosts_total, result.hosts_up, result.hosts_down)
        incomplete = result.incomplete_targets
    return DoneRecord(
        flanscan_version=__version__,
        run_id=run_id,
        shard=None if shard is None else ShardId(shard.index, shard.count),
        status=status,
        hosts=hosts,
        incomplete_targets=incomplete,
        workers=workers,
        end=datetime.now(UTC),
    )


def plan_fleet_run(
    *,
    output: str | None,
    output_dir: Path | None,
    shard: str | None,
    run_id: str | None,
    env: Mapping[str, str] | None = None,
    default_base: Path = Path("flan-results"),
    note: Callable[[str], None] = lambda message: None,
) -> FleetRun:
    """Decide the run id, the shard, the local run directory and the upload destination."""
    from flanscan._scan import default_run_dir

    env = os.environ if env is None else env
    chosen_shard = parse_shard(shard) if shard is not None else shard_from_env(env)
    where = output or legacy_output(env)
    destination = parse_location(where) if where else None

    rid = _given_run_id(run_id, env, chosen_shard)
    parts = [p for p in (rid, chosen_shard.name if chosen_shard else "") if p]

    if output_dir is not None:
        run_dir = output_dir
    else:
        base = default_base
        if destination is not None and not destination.is_remote:
            base = Path(destination.prefix)
        run_dir = base.joinpath(*parts) if rid else default_run_dir(base)
    rid = rid or run_dir.resolve().name  # resolved: `--output-dir .` has no name of its own
    key_prefix = "/".join([rid, *([chosen_shard.name] if chosen_shard else [])])

    sink = _sink_for(destination, key_prefix, run_dir)
    if sink is None:
        destination = None  # none, or written in place: nothing to copy
    return FleetRun(
        run_dir=run_dir,
        run_id=rid,
        shard=chosen_shard,
        destination=destination,
        key_prefix=key_prefix,
        sink=sink,
        note=note,
    )


def _given_run_id(run_id: str | None, env: Mapping[str, str], shard: Shard | None) -> str:
    """--run-id, else FLAN_RUN_ID; "" when neither is set (a shard needs one)."""
    given_id = run_id or env.get(RUN_ID_ENV, "").strip() or None
    if given_id is not None:
        return _check_run_id(given_id, "--run-id" if run_id else RUN_ID_ENV)
    if shard is not None:
        raise UsageError(
            f"--shard {shard}: all shards of a run need the same run id; set {RUN_ID_ENV} "
            "(the manifests set it to the Job's name) or pass --run-id"
        )
    return ""


def _sink_for(destination: StorageLocation | None, key_prefix: str, run_dir: Path) -> Sink | None:
    """Where to copy the run: None without a destination, or when the run directory already is
    the destination's place for it."""
    if destination is None:
        return None
    if not destination.is_remote:
        local_target = Path(destination.prefix).joinpath(*key_prefix.split("/"))
        if local_target.resolve() == run_dir.resolve():
            return None
    return open_sink(destination)
