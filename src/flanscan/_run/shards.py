"""The shards of a fleet run: which are there, missing or incomplete, the run's summary and
scope from their records, and fetching them from object storage (for `flan merge`).

A run is `<prefix>/<run-id>/shard-<I>-of-<N>/{shard.json, run.json, xml/*.xml, done.json}`,
locally or in object storage. A shard is *missing* when it has no directory, *incomplete* when it
has no done.json (it crashed, or still runs) or done.json says it did not complete. Their targets
are reported as not checked (ScanSummary.incomplete_targets and a warning), never as clean.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from flanscan._errors import EnvironmentProblem, UsageError
from flanscan._model import ScanSummary
from flanscan._records import (
    DONE_FILE,
    SHARD_FILE,
    DoneRecord,
    RecordError,
    ShardRecord,
)
from flanscan._records import ShardState as ShardStateName
from flanscan._run.shard import MAX_SHARDS, Shard, shard_from_dir_name, shard_targets
from flanscan._scopecheck import ScopeCheck, scope_of
from flanscan._storage import (
    RetryPolicy,
    Sink,
    StorageError,
    checked_key,
    retrying,
)
from flanscan._targets import TargetSet, parse_target

# At most this many "not checked" targets are listed per missing shard (a warning gives the count).
MAX_LISTED_PER_SHARD = 1000


@dataclass(frozen=True)
class ShardState:
    """What a run holds for one shard."""

    shard: Shard
    state: ShardStateName
    reason: str = ""
    path: Path | None = None  # the shard's local directory (None when missing)


@dataclass(frozen=True)
class RunShards:
    """The shards of one run, as found in its (local) directory."""

    run_dir: Path
    run_id: str
    count: int
    shards: tuple[ShardState, ...]
    targets: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    @property
    def missing(self) -> list[ShardState]:
        return [s for s in self.shards if s.state == "missing"]

    @property
    def incomplete(self) -> list[ShardState]:
        return [s for s in self.shards if s.state == "incomplete"]

    @property
    def complete(self) -> bool:
        return all(s.state == "complete" for s in self.shards)


def _read_done(path: Path) -> DoneRecord | None:
    try:
        return DoneRecord.read(path)
    except RecordError:
        return None


def _read_shard(path: Path) -> ShardRecord | None:
    try:
        return ShardRecord.read(path)
    except RecordError:
        return None


def _shard_dirs(names: Sequence[str]) -> dict[Shard, str]:
    found: dict[Shard, str] = {}
    for name in sorted(names):
        shard = shard_from_dir_name(name)
        if shard is None:
            continue
        if shard in found:  # shard-1-of-2 and shard-01-of-2: which one is the shard's?
            raise UsageError(
                f"shard {shard} has two directories, {found[shard]} and {name}: keep the one "
                f"its pod wrote ({shard.name}) and remove the other"
            )
        found[shard] = name
    return found


def _shard_count(shards: Sequence[Shard], where: str) -> int:
    counts = sorted({s.count for s in shards})
    if len(counts) > 1:
        raise UsageError(
            f"{where}: holds shards of different counts ({', '.join(map(str, counts))}); "
            "each run id must be used by one Job only"
        )
    if counts[0] > MAX_SHARDS:
        # Checked before anything is sized by the count: one directory name must not make
        # the merge allocate a state per claimed shard.
        raise UsageError(
            f"{where}: a directory shard-<I>-of-{counts[0]} claims {counts[0]} shards; "
            f"flan runs at most {MAX_SHARDS}: remove it"
        )
    return counts[0]


def inspect_run(run_dir: Path) -> RunShards:
    """Find the shards of a run directory and say which are missing or incomplete."""
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run directory")
    dirs = _shard_dirs([p.name for p in run_dir.iterdir() if p.is_dir()])
    if not dirs:
        raise UsageError(
            f"{run_dir}: no shard-<I>-of-<N> directories; give the run's directory "
            "(PREFIX/<run-id>) written by `flan scan --shard`"
        )
    count = _shard_count(list(dirs), str(run_dir))
    states = []
    info: ShardRecord | None = None
    for index in range(count):
        shard = Shard(index, count)
        if shard not in dirs:
            states.append(ShardState(shard, "missing", "no shard directory"))
            continue
        path = run_dir / dirs[shard]
        own = _read_shard(path / SHARD_FILE)
        if own is not None and info is not None and _scope_of_info(own) != _scope_of_info(info):
            # Every pod got the same targets: a shard that says otherwise is not of this run
            # (or was rewritten), and its word cannot widen the run's scope.
            raise UsageError(
                f"{path / SHARD_FILE}: lists other targets or excludes than the run's other "
                "shards; merge only shards of one run"
            )
        info = info or own
        done = _read_done(path / DONE_FILE)
        if done is None:
            states.append(
                ShardState(shard, "incomplete", "no done.json (crashed or running)", path)
            )
        elif done.status != "complete":
            states.append(ShardState(shard, "incomplete", f"status {done.status}", path))
        else:
            states.append(ShardState(shard, "complete", "", path))
    return RunShards(
        run_dir=run_dir,
        run_id=(info.run_id if info is not None else "") or run_dir.name,
        count=count,
        shards=tuple(states),
        targets=info.targets if info is not None else (),
        excludes=info.excludes if info is not None else (),
    )


def _scope_of_info(info: ShardRecord) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return info.targets, info.excludes


def _share_of(run: RunShards, shard: Shard) -> list[str]:
    """The targets a shard was given, recomputed from the run's targets (as `flan scan` did)."""
    if not run.targets:
        return []
    specs = [parse_target(t, "shard.json") for t in run.targets]
    excludes = [parse_target(t, "shard.json") for t in run.excludes]
    return shard_targets(TargetSet.build(specs, excludes), shard)


def _not_checked(run: RunShards, state: ShardState) -> list[str]:
    if state.state == "missing" or state.path is None:
        return _share_of(run, state.shard)
    done = _read_done(state.path / DONE_FILE)
    if done is not None:
        return list(done.incomplete_targets)
    return _share_of(run, state.shard)  # no done.json: nothing of it is known to be finished


def merged_summary(run: RunShards) -> tuple[ScanSummary, list[str]]:
    """The report header of the whole run, and warnings about missing or incomplete shards."""
    from flanscan._records import summary_from_run_json

    parts = [
        (s, summary_from_run_json(s.path)) for s in run.shards if s.path is not None
    ]  # fmt: skip
    summaries = [(s, p) for s, p in parts if p is not None]
    warnings, not_checked = _unfinished_shards(run)
    for state, summary in summaries:
        warnings.extend(f"shard {state.shard}: {w}" for w in summary.warnings)
        not_checked.extend(summary.incomplete_targets if state.state == "complete" else ())
    starts = [p.start for _, p in summaries if p.start is not None]
    ends = [p.end for _, p in summaries if p.end is not None]
    first = summaries[0][1] if summaries else ScanSummary()
    shard_targets_given = [t for _, p in summaries for t in p.targets]
    summary = ScanSummary(
        targets=run.targets or tuple(dict.fromkeys(shard_targets_given)),
        excluded=run.excludes,
        nmap_commands=tuple(c for _, p in summaries for c in p.nmap_commands),
        nmap_version=first.nmap_version,
        start=min(starts) if starts else None,
        end=max(ends) if ends else None,
        profile=first.profile,
        warnings=tuple(dict.fromkeys(warnings)),
        hosts_up=sum(p.hosts_up for _, p in summaries),
        hosts_down=sum(p.hosts_down for _, p in summaries),
        ports=first.ports,
        incomplete_targets=tuple(dict.fromkeys(not_checked)),
        run_id=run.run_id,
    )
    return summary, warnings


def _unfinished_shards(run: RunShards) -> tuple[list[str], list[str]]:
    """A warning per missing or incomplete shard, and the targets of theirs not checked."""
    warnings: list[str] = []
    not_checked: list[str] = []
    for state in run.shards:
        if state.state == "complete":
            continue
        targets = _not_checked(run, state)
        what = "missing" if state.state == "missing" else f"incomplete ({state.reason})"
        listed = len(targets) > MAX_LISTED_PER_SHARD
        warnings.append(
            f"shard {state.shard} {what}: its {len(targets)} target(s) were not checked"
            + (f" (first {MAX_LISTED_PER_SHARD} listed)" if listed else "")
        )
        not_checked.extend(targets[:MAX_LISTED_PER_SHARD])
    return warnings, not_checked


def shard_xml_files(run: RunShards) -> list[Path]:
    """Every non-empty Nmap XML file of the shards present, in shard order."""
    return [path for state in run.shards for path in shard_xml_files_of(state)]


def shard_scope_check(run: RunShards) -> ScopeCheck:
    """The run's scope (hosts outside it leave the report) and each shard's share, recomputed
    from the run's targets as `flan scan` did (hosts of a shard outside it are named)."""
    shares: dict[Path, tuple[str, TargetSet]] = {}
    for state in run.shards:
        files = shard_xml_files_of(state)
        if not files:
            continue
        try:
            share = scope_of(_share_of(run, state.shard), (), f"shard {state.shard}")
        except UsageError:
            share = None
        if share is None:
            continue
        for path in files:
            shares[path] = (f"shard {state.shard}", share)
    return ScopeCheck(scope_of(run.targets, run.excludes, "shard.json"), shares)


def shard_xml_files_of(state: ShardState) -> list[Path]:
    """A shard's non-empty Nmap XML files."""
    if state.path is None or not (state.path / "xml").is_dir():
        return []
    return [p for p in sorted((state.path / "xml").glob("*.xml")) if p.stat().st_size > 0]


# --------------------------------------------------------------------------- remote runs


def _remote_states(sink: Sink, policy: RetryPolicy, scratch: Path) -> tuple[int, set[int], int]:
    """(shard count, indexes with done.json status complete, shard dirs present) of a run in
    storage; count 0 when no shard is there yet."""
    keys = retrying(lambda: sink.list(), policy)
    dirs = _shard_dirs(sorted({k.split("/", 1)[0] for k in keys if "/" in k}))
    if not dirs:
        return 0, set(), 0
    count = _shard_count(list(dirs), "run")
    complete = set()
    for shard, name in dirs.items():
        if f"{name}/{DONE_FILE}" in keys:
            local = scratch / name / DONE_FILE
            retrying(lambda n=name, p=local: sink.get_file(f"{n}/{DONE_FILE}", p), policy)  # type: ignore[misc]
            done = _read_done(local)
            if done is not None and done.status == "complete":
                complete.add(shard.index)
    return count, complete, len(dirs)


def wait_for_shards(
    sink: Sink,
    seconds: float,
    scratch: Path,
    *,
    poll: float = 5.0,
    note: Callable[[str], None] = lambda message: None,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Poll until every shard of the run is complete, at most `seconds`; True if all are."""
    policy = RetryPolicy.from_env()
    deadline = clock() + seconds
    last = None
    while True:
        try:
            count, complete, _present = _remote_states(sink, policy, scratch)
        except StorageError as exc:
            raise EnvironmentProblem(f"cannot read {sink.url}: {exc}") from None
        if count and len(complete) == count:
            return True
        state = (count, len(complete))
        if state != last:
            note(f"waiting for shards: {len(complete)} of {count or '?'} complete")
            last = state
        if clock() >= deadline:
            return False
        time.sleep(max(0.05, min(poll, deadline - clock())))


def download_run(sink: Sink, dest: Path) -> int:
    """Copy every shard's files of a run from storage into `dest`; returns the file count."""
    policy = RetryPolicy.from_env()
    try:
        keys = [k for k in retrying(lambda: sink.list(), policy) if "/" in k]
        keys = [k for k in keys if shard_from_dir_name(k.split("/", 1)[0]) is not None]
        for key in keys:
            local = dest.joinpath(*checked_key(key))  # a key with ".." never leaves dest
            retrying(lambda k=key, p=local: sink.get_file(k, p), policy)  # type: ignore[misc]
    except StorageError as exc:
        raise EnvironmentProblem(f"cannot read {sink.url}: {exc}") from None
    return len(keys)
