"""The diff of two runs in their compact form (`_groups.CompactRun`), from reports or from the
store: a location whose finding group is the same in both runs cannot differ, so only the
others are expanded into findings before `diff_rows` compares them."""

from __future__ import annotations

from flanscan._history._diff import OldFindingCounts, diff_rows
from flanscan._history._groups import CompactRun, finding_rows
from flanscan._history._rows import RunRows
from flanscan._model import ChangeSummary


def _same_group(a: CompactRun, b: CompactRun, key: tuple[str, int, str], index: int) -> bool:
    other = b.location_group.get(key)
    return other is not None and b.groups[other].hash == a.groups[index].hash


def _rows_differing(run: CompactRun, other: CompactRun) -> RunRows:
    """`run`'s hosts and services, and its findings at the locations whose group differs from
    `other`'s (findings equal in both runs there too: the diff makes no item of those)."""
    rows = RunRows(run.run_id, run.started, run.scope, run.hosts, run.services)
    for key, index in run.location_group.items():
        if not _same_group(run, other, key, index):
            for f in finding_rows(key, run.groups[index]):
                rows.findings.setdefault(f.key, f)
    return rows


def old_counts(old: CompactRun, new: CompactRun) -> OldFindingCounts:
    """The counts `diff_rows` needs of the old run's findings, from the groups' sizes."""
    up = {a for a, h in new.hosts.items() if h.status == "up"}
    by_port: dict[tuple[str, int, str], int] = {}
    open_by_host: dict[str, int] = {}
    for key, index in old.location_group.items():
        group = old.groups[index]
        if key not in new.services:
            by_port[key] = group.size
        if key[0] not in up and group.open_exact:
            open_by_host[key[0]] = open_by_host.get(key[0], 0) + group.open_exact
    return OldFindingCounts(by_port, open_by_host)


def diff_compact(
    old: CompactRun, new: CompactRun, *, since_run: str | None = None
) -> ChangeSummary:
    """What changed from `old` to `new`: the same result as `diff_rows` of every row."""
    return diff_rows(
        _rows_differing(old, new),
        _rows_differing(new, old),
        since_run=since_run,
        old_counts=old_counts(old, new),
    )
