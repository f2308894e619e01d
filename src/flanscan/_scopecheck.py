"""Hosts in Nmap XML checked against the scope that was asked for.

Nmap may report hosts nobody listed (a flag that slipped through, a shard pod that scanned the
wrong share, a hand-edited XML). A host outside the run's targets is named and left out of the
report; a shard's host outside that shard's share is named (it is kept if the run covers it).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flanscan._errors import UsageError
from flanscan._model import HostObservation
from flanscan._targets import TargetSet, parse_target

# At most this many addresses are listed in one note (the count is always given).
MAX_LISTED = 10


def scope_of(targets: Sequence[str], excludes: Sequence[str], source: str) -> TargetSet | None:
    """The scope targets and excludes as recorded (run.json, shard.json) describe, or None when
    there are no targets or they cannot be read as targets."""
    if not targets:
        return None
    try:
        specs = [parse_target(t, source) for t in targets]
        holes = [parse_target(t, source) for t in excludes]
    except UsageError:
        return None
    return TargetSet.build(specs, holes)


def _covers(scope: TargetSet, host: HostObservation) -> bool:
    if scope.contains(host.address):
        return True
    return bool(scope.names) and any(scope.contains(name) for name in host.hostnames)


def _listed(addresses: Iterable[str]) -> str:
    items = list(addresses)
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


@dataclass
class ScopeCheck:
    """Checks hosts as they stream by: `scope` for the whole run, `file_scopes` per XML file
    (label, share) for the shards of a merge."""

    scope: TargetSet | None
    file_scopes: Mapping[Path, tuple[str, TargetSet]] = field(default_factory=dict)
    outside: dict[str, None] = field(default_factory=dict)
    misplaced: dict[str, dict[str, None]] = field(default_factory=dict)

    def filter(self, path: Path, hosts: Iterable[HostObservation]) -> Iterator[HostObservation]:
        """The hosts of one XML file that are in scope; the others are remembered."""
        share = self.file_scopes.get(path)
        for host in hosts:
            if share is not None and not _covers(share[1], host):
                self.misplaced.setdefault(share[0], {})[host.address] = None
            if self.scope is not None and not _covers(self.scope, host):
                self.outside[host.address] = None
                continue
            yield host

    def warnings(self) -> list[str]:
        """One line per problem found, naming the hosts."""
        lines = [
            f"{label}: its Nmap XML holds {len(found)} host(s) outside its targets: "
            f"{_listed(found)}"
            for label, found in self.misplaced.items()
        ]
        if self.outside:
            lines.append(
                f"{len(self.outside)} host(s) in the Nmap XML are outside the scan's targets and "
                f"left out of the report: {_listed(self.outside)}"
            )
        return lines
