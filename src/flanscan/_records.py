"""The run directory's records, one typed definition each, and the one way to write them.

- `run.json` (`RunRecord`): what a scan was asked and did; written by the scan engine at the
  start, while workers end, and at the end.
- `shard.json` (`ShardRecord`): a shard's place in a fleet run, written before it scans.
- `done.json` (`DoneRecord`): how a shard (or run) ended, written and uploaded last.
- `merge.json` (`MergeRecord`): what `flan merge` found and wrote.
- `uploads.json` (`UploadsManifest`): every key a run uploaded (a retried shard removes only
  those).

Readers are lenient about missing fields (older files, hand-written ones) but not about wrong
types: a damaged record raises `RecordError`, a one-line error naming the file and the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, Protocol, TypeVar, cast, get_args

from flanscan._errors import ParseError
from flanscan._model import ScanSummary
from flanscan._nmapopts import mask_command, mask_profile
from flanscan._safefile import write_atomic

# Bumped when a record's meaning changes; readers accept every version up to this one.
SCHEMA_VERSION = 1

RUN_FILE = "run.json"
SHARD_FILE = "shard.json"
DONE_FILE = "done.json"
MERGE_FILE = "merge.json"
# Every key this run uploads, written before the key itself: a retried shard removes only
# what is listed here, never other files that happen to sit under the same prefix.
MANIFEST_FILE = "uploads.json"

RunStatus = Literal["running", "complete", "interrupted", "incomplete"]
WorkerPhase = Literal["scan", "discovery", "service"]
WorkerState = Literal["pending", "running", "done", "failed", "interrupted", "not-started"]
DoneStatus = Literal["complete", "interrupted", "failed"]
ShardState = Literal["complete", "missing", "incomplete"]

# A worker in one of these states will not write to its XML again.
TERMINAL_WORKER_STATES: frozenset[WorkerState] = frozenset(
    {"done", "failed", "interrupted", "not-started"}
)


class RecordError(ParseError):
    """A run record that is not what it claims to be (not JSON, wrong field types)."""


class _Record(Protocol):
    def to_json(self) -> dict[str, object]: ...


L = TypeVar("L", bound=str)


def write_record(path: Path, record: _Record) -> None:
    """Replace `path` with `record` as indented JSON, atomically (a reader, or the uploader
    watching run.json, never sees half a file)."""
    write_atomic(path, json.dumps(record.to_json(), indent=2, ensure_ascii=False) + "\n")


def load_json(path: Path) -> dict[str, object]:
    """The JSON object in `path`; RecordError when it is not readable JSON or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RecordError(f"{path}: not a readable JSON record ({exc})") from None
    if not isinstance(data, dict):
        raise RecordError(f"{path}: not a JSON object")
    return data


class _Fields:
    """Typed access to a record's fields; a wrong type is a one-line RecordError."""

    def __init__(self, data: Mapping[str, object], where: str) -> None:
        self.data, self.where = data, where

    def _bad(self, name: str, expected: str) -> RecordError:
        got = type(self.data.get(name)).__name__
        return RecordError(f"{self.where}: field {name!r} should be {expected}, not {got}")

    def str_(self, name: str, default: str = "") -> str:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self._bad(name, "a string")
        return value

    def opt_str(self, name: str) -> str | None:
        value = self.data.get(name)
        if value is not None and not isinstance(value, str):
            raise self._bad(name, "a string or null")
        return value

    def int_(self, name: str, default: int = 0) -> int:
        value = self.data.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(name, "an integer")
        return value

    def opt_int(self, name: str) -> int | None:
        return None if self.data.get(name) is None else self.int_(name)

    def bool_(self, name: str, default: bool = False) -> bool:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._bad(name, "true or false")
        return value

    def strs(self, name: str) -> tuple[str, ...]:
        value = self.data.get(name)
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(name, "a list of strings")
        return tuple(value)

    def time(self, name: str) -> datetime | None:
        text = self.opt_str(name)
        if not text:
            return None
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise RecordError(
                f"{self.where}: field {name!r} is not an ISO time: {text!r}"
            ) from None
        # flan writes UTC offsets; a time without one (edited by hand, another tool) is read as
        # UTC, so shards' times can always be compared.
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)

    def literal(self, name: str, kind: object, default: L) -> L:
        value = self.str_(name, default)
        allowed = get_args(kind)
        if value not in allowed:
            raise RecordError(
                f"{self.where}: field {name!r} is {value!r}, not one of {', '.join(allowed)}"
            )
        return cast(L, value)

    def sub(self, name: str) -> _Fields | None:
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._bad(name, "an object")
        return _Fields(value, f"{self.where}: {name}")

    def items(self, name: str) -> list[_Fields]:
        value = self.data.get(name)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self._bad(name, "a list of objects")
        return [_Fields(v, f"{self.where}: {name}[{i}]") for i, v in enumerate(value)]

    def version(self) -> None:
        schema = self.int_("schema_version", 1)
        if schema > SCHEMA_VERSION:
            raise RecordError(
                f"{self.where}: schema version {schema} is newer than this flan reads "
                f"({SCHEMA_VERSION}); upgrade flanscan"
            )


def _iso(value: datetime | None, timespec: str = "seconds") -> str | None:
    return value.isoformat(timespec=timespec) if value is not None else None


@dataclass(frozen=True)
class HostCounts:
    total: int = 0
    up: int = 0
    down: int = 0

    def to_json(self) -> dict[str, object]:
        return {"total": self.total, "up": self.up, "down": self.down}

    @classmethod
    def _from(cls, f: _Fields | None) -> HostCounts | None:
        if f is None:
            return None
        return cls(f.int_("total"), f.int_("up"), f.int_("down"))


@dataclass(frozen=True)
class ShardId:
    """A shard's position in a record: `index` (0-based) of `count`."""

    index: int
    count: int

    def to_json(self) -> dict[str, object]:
        return {"index": self.index, "count": self.count}

    @classmethod
    def _from(cls, f: _Fields | None) -> ShardId | None:
        return None if f is None else cls(f.int_("index"), f.int_("count"))


# --------------------------------------------------------------------------- run.json


@dataclass(frozen=True)
class WorkerRecord:
    """One Nmap process in run.json."""

    name: str
    phase: WorkerPhase
    status: WorkerState
    targets: tuple[str, ...] = ()
    hosts: int = 0
    command: str = ""  # masked (--script-args as ***)
    xml: str | None = None  # relative to the run directory; None when Nmap wrote no XML
    log: str = ""
    exit_code: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "phase": self.phase,
            "targets": list(self.targets),
            "hosts": self.hosts,
            "command": self.command,
            "xml": self.xml,
            "log": self.log,
            "status": self.status,
            "exit_code": self.exit_code,
            "start": _iso(self.start, "milliseconds"),
            "end": _iso(self.end, "milliseconds"),
            "error": self.error,
        }

    @classmethod
    def _from(cls, f: _Fields) -> WorkerRecord:
        return cls(
            name=f.str_("name"),
            phase=f.literal("phase", WorkerPhase, "scan"),
            status=f.literal("status", WorkerState, "pending"),
            targets=f.strs("targets"),
            hosts=f.int_("hosts"),
            command=f.str_("command"),
            xml=f.opt_str("xml"),
            log=f.str_("log"),
            exit_code=f.opt_int("exit_code"),
            start=f.time("start"),
            end=f.time("end"),
            error=f.opt_str("error"),
        )


@dataclass(frozen=True)
class ReportInputs:
    """What a scan's report was built with (run.json `report_inputs`), so that `flan report`
    rebuilds the same report: the same rules, database, history and thresholds."""

    db: str | None = None  # the vulnerability database's path; None: --no-db
    suppressions: str | None = None  # the exception rules file; None: none
    history: str | None = None  # SQLite path or postgresql:// URL (password masked)
    min_confidence: str = "medium"
    min_severity: str | None = None
    max_db_age: int = 7
    fail_on: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "db": self.db,
            "suppressions": self.suppressions,
            "history": self.history,
            "min_confidence": self.min_confidence,
            "min_severity": self.min_severity,
            "max_db_age": self.max_db_age,
            "fail_on": self.fail_on,
        }

    @classmethod
    def _from(cls, f: _Fields | None) -> ReportInputs | None:
        if f is None:
            return None
        return cls(
            db=f.opt_str("db"),
            suppressions=f.opt_str("suppressions"),
            history=f.opt_str("history"),
            min_confidence=f.str_("min_confidence", "medium"),
            min_severity=f.opt_str("min_severity"),
            max_db_age=f.int_("max_db_age", 7),
            fail_on=f.opt_str("fail_on"),
        )


@dataclass(frozen=True)
class RunRecord:
    """run.json: what a scan was asked and what happened (rewritten as workers end)."""

    run_id: str
    status: RunStatus = "running"
    flanscan_version: str = ""
    targets: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    target_count: int = 0
    profile: str | None = None
    profile_description: str | None = None
    ports: str | None = None
    scan_type: str | None = None
    privileged: bool = False
    extra_args: tuple[str, ...] = ()  # masked
    vulners: bool = False
    nmap_path: str | None = None
    nmap_version: str | None = None
    workers_max: int = 0
    service_workers_max: int = 0
    start: datetime | None = None
    end: datetime | None = None
    nmap_commands: tuple[str, ...] = ()  # masked
    workers: tuple[WorkerRecord, ...] = ()
    warnings: tuple[str, ...] = ()
    # Known once the scan ended (None while it runs):
    incomplete_targets: tuple[str, ...] | None = None
    hosts: HostCounts | None = None
    open_ports: int | None = None
    services: int | None = None
    # Added in flan 0.1 without a version bump: older files have none (a rebuild then uses
    # the command's options alone).
    report_inputs: ReportInputs | None = None

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "schema_version": SCHEMA_VERSION,
            "flanscan_version": self.flanscan_version,
            "run_id": self.run_id,
            "status": self.status,
            "targets": list(self.targets),
            "excludes": list(self.excludes),
            "target_count": self.target_count,
            "profile": self.profile,
            "profile_description": self.profile_description,
            "ports": self.ports,
            "scan_type": self.scan_type,
            "privileged": self.privileged,
            "extra_args": list(self.extra_args),
            "vulners": self.vulners,
            "nmap": {"path": self.nmap_path, "version": self.nmap_version},
            "workers_max": self.workers_max,
            "service_workers_max": self.service_workers_max,
            "start": _iso(self.start, "milliseconds"),
            "end": _iso(self.end, "milliseconds"),
            "nmap_commands": list(self.nmap_commands),
            "workers": [w.to_json() for w in self.workers],
            "warnings": list(self.warnings),
        }
        if self.incomplete_targets is not None:
            data["incomplete_targets"] = list(self.incomplete_targets)
        if self.hosts is not None:
            data["hosts"] = self.hosts.to_json()
        if self.open_ports is not None:
            data["open_ports"] = self.open_ports
        if self.services is not None:
            data["services"] = self.services
        if self.report_inputs is not None:
            data["report_inputs"] = self.report_inputs.to_json()
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, object], where: str = RUN_FILE) -> RunRecord:
        f = _Fields(data, where)
        f.version()
        nmap = f.sub("nmap") or _Fields({}, where)
        return cls(
            run_id=f.str_("run_id"),
            status=f.literal("status", RunStatus, "running"),
            flanscan_version=f.str_("flanscan_version"),
            targets=f.strs("targets"),
            excludes=f.strs("excludes"),
            target_count=f.int_("target_count"),
            profile=f.opt_str("profile"),
            profile_description=f.opt_str("profile_description"),
            ports=f.opt_str("ports"),
            scan_type=f.opt_str("scan_type"),
            privileged=f.bool_("privileged"),
            extra_args=f.strs("extra_args"),
            vulners=f.bool_("vulners"),
            nmap_path=nmap.opt_str("path"),
            nmap_version=nmap.opt_str("version"),
            workers_max=f.int_("workers_max"),
            service_workers_max=f.int_("service_workers_max"),
            start=f.time("start"),
            end=f.time("end"),
            nmap_commands=f.strs("nmap_commands"),
            workers=tuple(WorkerRecord._from(w) for w in f.items("workers")),
            warnings=f.strs("warnings"),
            incomplete_targets=f.strs("incomplete_targets")
            if "incomplete_targets" in data
            else None,
            hosts=HostCounts._from(f.sub("hosts")),
            open_ports=f.opt_int("open_ports"),
            services=f.opt_int("services"),
            report_inputs=ReportInputs._from(f.sub("report_inputs")),
        )

    @classmethod
    def read(cls, run_dir: Path) -> RunRecord:
        """The run.json of `run_dir` (RecordError when absent or damaged)."""
        path = run_dir / RUN_FILE
        return cls.from_json(load_json(path), str(path))


def read_run_record(run_dir: Path) -> RunRecord | None:
    """The run.json of `run_dir`, or None when there is none or it cannot be read."""
    try:
        return RunRecord.read(run_dir)
    except RecordError:
        return None


# --------------------------------------------------------------------------- shard.json


@dataclass(frozen=True)
class ShardRecord:
    """shard.json: a shard's place in its fleet run and the whole run's targets."""

    run_id: str
    shard: ShardId | None = None
    targets: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()
    shard_targets: int = 0  # how many of them this shard scans
    created: datetime | None = None
    flanscan_version: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "schema_version": SCHEMA_VERSION,
            "flanscan_version": self.flanscan_version,
            "run_id": self.run_id,
            "shard": self.shard.to_json() if self.shard is not None else None,
            "targets": list(self.targets),
            "excludes": list(self.excludes),
            "shard_targets": self.shard_targets,
            "created": _iso(self.created),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object], where: str = SHARD_FILE) -> ShardRecord:
        f = _Fields(data, where)
        f.version()
        return cls(
            run_id=f.str_("run_id"),
            shard=ShardId._from(f.sub("shard")),
            targets=f.strs("targets"),
            excludes=f.strs("excludes"),
            shard_targets=f.int_("shard_targets"),
            created=f.time("created"),
            flanscan_version=f.str_("flanscan_version"),
        )

    @classmethod
    def read(cls, path: Path) -> ShardRecord:
        return cls.from_json(load_json(path), str(path))


# --------------------------------------------------------------------------- done.json


@dataclass(frozen=True)
class DoneWorker:
    """A worker's ending, as done.json lists it."""

    name: str
    phase: WorkerPhase
    status: WorkerState
    exit_code: int | None = None
    hosts: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "phase": self.phase,
            "status": self.status,
            "exit_code": self.exit_code,
            "hosts": self.hosts,
            "error": self.error,
        }

    @classmethod
    def _from(cls, f: _Fields) -> DoneWorker:
        return cls(
            name=f.str_("name"),
            phase=f.literal("phase", WorkerPhase, "scan"),
            status=f.literal("status", WorkerState, "pending"),
            exit_code=f.opt_int("exit_code"),
            hosts=f.int_("hosts"),
            error=f.opt_str("error"),
        )


@dataclass(frozen=True)
class DoneRecord:
    """done.json: how a shard (or run) ended; written (and uploaded) after everything else."""

    run_id: str
    status: DoneStatus
    shard: ShardId | None = None
    hosts: HostCounts = field(default_factory=HostCounts)
    incomplete_targets: tuple[str, ...] = ()
    workers: tuple[DoneWorker, ...] = ()
    end: datetime | None = None
    flanscan_version: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "schema_version": SCHEMA_VERSION,
            "flanscan_version": self.flanscan_version,
            "run_id": self.run_id,
            "shard": self.shard.to_json() if self.shard is not None else None,
            "status": self.status,
            "hosts_scanned": self.hosts.total,
            "hosts": self.hosts.to_json(),
            "incomplete_targets": list(self.incomplete_targets),
            "workers": [w.to_json() for w in self.workers],
            "end": _iso(self.end),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object], where: str = DONE_FILE) -> DoneRecord:
        f = _Fields(data, where)
        f.version()
        # Status is what a merge decides on: a done.json without one is not complete.
        status = f.str_("status")
        if status not in get_args(DoneStatus):
            raise RecordError(f"{where}: field 'status' is {status!r}, not one of "
                              f"{', '.join(get_args(DoneStatus))}")  # fmt: skip
        return cls(
            run_id=f.str_("run_id"),
            status=cast(DoneStatus, status),
            shard=ShardId._from(f.sub("shard")),
            hosts=HostCounts._from(f.sub("hosts")) or HostCounts(f.int_("hosts_scanned")),
            incomplete_targets=f.strs("incomplete_targets"),
            workers=tuple(DoneWorker._from(w) for w in f.items("workers")),
            end=f.time("end"),
            flanscan_version=f.str_("flanscan_version"),
        )

    @classmethod
    def read(cls, path: Path) -> DoneRecord:
        return cls.from_json(load_json(path), str(path))


# --------------------------------------------------------------------------- merge.json


@dataclass(frozen=True)
class MergedShard:
    index: int
    state: ShardState
    reason: str = ""

    def to_json(self) -> dict[str, object]:
        return {"index": self.index, "state": self.state, "reason": self.reason}


@dataclass(frozen=True)
class MergeRecord:
    """merge.json: the shards `flan merge` found, their states, and the reports it wrote."""

    run_id: str
    source: str
    merged_at: datetime
    shard_count: int
    shards: tuple[MergedShard, ...]
    reports: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return all(s.state == "complete" for s in self.shards)

    def to_json(self) -> dict[str, object]:
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "source": self.source,
            "merged_at": _iso(self.merged_at),
            "shard_count": self.shard_count,
            "complete": self.complete,
            "shards": [s.to_json() for s in self.shards],
            "missing": [s.index for s in self.shards if s.state == "missing"],
            "incomplete": [s.index for s in self.shards if s.state == "incomplete"],
            "reports": list(self.reports),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, object], where: str = MERGE_FILE) -> MergeRecord:
        f = _Fields(data, where)
        f.version()
        merged_at = f.time("merged_at")
        if merged_at is None:
            raise RecordError(f"{where}: field 'merged_at' is missing")
        return cls(
            run_id=f.str_("run_id"),
            source=f.str_("source"),
            merged_at=merged_at,
            shard_count=f.int_("shard_count"),
            shards=tuple(
                MergedShard(
                    s.int_("index"), s.literal("state", ShardState, "missing"), s.str_("reason")
                )
                for s in f.items("shards")
            ),
            reports=f.strs("reports"),
        )


# --------------------------------------------------------------------------- uploads.json


@dataclass(frozen=True)
class UploadsManifest:
    """uploads.json: every key a run uploaded (sorted), the manifest's own key included."""

    keys: tuple[str, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"schema_version": SCHEMA_VERSION, "keys": list(self.keys)}

    @classmethod
    def from_json(cls, data: Mapping[str, object], where: str = MANIFEST_FILE) -> UploadsManifest:
        f = _Fields(data, where)
        f.version()
        return cls(f.strs("keys"))

    def below(self, key_prefix: str) -> list[str]:
        """The keys below `key_prefix/` (anything else in the manifest is ignored)."""
        head = f"{key_prefix.strip('/')}/" if key_prefix.strip("/") else ""
        return [k for k in self.keys if k.startswith(head) and k != head]


def read_manifest(path: Path, key_prefix: str) -> list[str]:
    """The keys a run's manifest lists below `key_prefix/`; none when it cannot be read."""
    try:
        return UploadsManifest.from_json(load_json(path), str(path)).below(key_prefix)
    except RecordError:
        return []


# ------------------------------------------------------------------------ run.json -> ScanSummary


def summary_from_run_json(run_dir: Path) -> ScanSummary | None:
    """The ScanSummary a `flan scan` run recorded in `run_dir/run.json` (targets as the user
    gave them, excludes, profile, commands), or None when there is no readable run.json."""
    record = read_run_record(run_dir)
    if record is None:
        return None
    hosts = record.hosts or HostCounts()
    profile = record.profile_description or record.profile
    return ScanSummary(
        targets=record.targets,
        excluded=record.excludes,
        nmap_commands=tuple(mask_command(c) for c in record.nmap_commands),
        nmap_version=record.nmap_version or None,
        start=record.start,
        end=record.end,
        profile=mask_profile(profile) if profile else None,
        warnings=record.warnings,
        hosts_up=hosts.up,
        hosts_down=hosts.down,
        ports=record.ports or None,
        incomplete_targets=record.incomplete_targets or (),
        run_id=record.run_id or run_dir.name,
    )
