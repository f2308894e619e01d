"""A run as the store keeps it: one row per location, and each distinct list of findings (a
"finding group") once, named by a hash of its content.

A fleet has hundreds of thousands of locations but few distinct lists of findings (the report
builder already keeps locations that share their findings together), so a run costs rows per
location plus rows per distinct group, never findings x locations. The diff compares locations
by group: equal groups cannot differ, and only the others are expanded into findings.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from flanscan._gcpause import gc_paused
from flanscan._history._db import Database, Row
from flanscan._history._rows import (
    FindingRow,
    HostRow,
    PortKey,
    RunScope,
    ServiceRow,
    scope_of,
    utc,
)
from flanscan._model import Confidence, FindingStatus, Report, ServiceFinding

_OPEN_STATUSES = frozenset(s.value for s in FindingStatus if s.is_open)

# One finding of a group (a FindingRow without its location), columns in this order:
# vuln_id, status, confidence, severity, cvss, kev, kev_date_added, suppression source,
# reason, owner, expires.
GroupRow = tuple[
    str, str, str, int, float | None, bool, str | None, str | None, str | None, str | None,
    str | None,
]  # fmt: skip


@dataclass(frozen=True)
class FindingGroup:
    """The findings of a location, sorted by vulnerability id (unique in a group)."""

    rows: tuple[GroupRow, ...]
    hash: str  # of every column: equal hashes, equal findings
    digest: str  # of what the run fingerprint covers (id, status, KEV flag, severity)
    open_exact: int  # open findings of exact confidence: what run totals count

    @property
    def size(self) -> int:
        return len(self.rows)


def make_group(rows: Iterable[GroupRow]) -> FindingGroup:
    """The group of these findings (one per vulnerability id, any order)."""
    ordered = tuple(sorted(rows, key=lambda r: r[0]))
    content = hashlib.sha256(json.dumps(ordered).encode()).hexdigest()[:32]
    digest = hashlib.sha256()
    for r in ordered:
        digest.update(f"{r[0]}\0{r[1]}\0{bool(r[5])}\0{r[3]}\0".encode())
    open_exact = sum(1 for r in ordered if r[1] in _OPEN_STATUSES and r[2] == _EXACT)
    return FindingGroup(ordered, content, digest.hexdigest(), open_exact)


_EXACT = Confidence.EXACT.value


def group_row(r: Row) -> GroupRow:
    """A GroupRow from database columns in GroupRow order (types as the drivers return them)."""
    return (
        str(r[0]), str(r[1]), str(r[2]), int(r[3]), float(r[4]) if r[4] is not None else None,
        bool(r[5]), r[6], r[7], r[8], r[9], r[10],
    )  # fmt: skip


def finding_rows(key: PortKey, group: FindingGroup) -> Iterator[FindingRow]:
    """The group's findings at one location."""
    for r in group.rows:
        yield FindingRow(r[0], key[0], key[1], key[2], *r[1:])


@dataclass
class CompactRun:
    """One run: hosts, services (locations), and for each location with findings the index of
    its group in `groups`."""

    run_id: str | None
    started: datetime | None
    scope: RunScope
    hosts: dict[str, HostRow] = field(default_factory=dict)
    services: dict[PortKey, ServiceRow] = field(default_factory=dict)
    groups: list[FindingGroup] = field(default_factory=list)
    location_group: dict[PortKey, int] = field(default_factory=dict)

    def open_findings(self) -> int:
        groups = self.groups
        return sum(groups[g].open_exact for g in self.location_group.values())

    def finding_count(self) -> int:
        groups = self.groups
        return sum(groups[g].size for g in self.location_group.values())


def _template(sf: ServiceFinding) -> GroupRow:
    f = sf.finding
    vuln = f.vulnerability
    sup = f.suppression
    return (
        vuln.id,
        f.status.value,
        f.confidence.value,
        int(f.severity),
        vuln.cvss.score if vuln.cvss else None,
        vuln.kev is not None,
        vuln.kev.date_added if vuln.kev else None,
        sup.source if sup else None,
        sup.reason if sup else None,
        sup.owner if sup else None,
        sup.expires if sup else None,
    )


def compact_from_report(report: Report) -> CompactRun:
    """The report as a CompactRun, with the content of one row per finding and location (a
    location's first finding of a vulnerability wins, exact findings before product-only ones;
    tests/_flat_rows.py is that reference) but never one object per finding and location.

    The builder gives the findings of a service that share their locations one tuple of
    locations: each such tuple is a "class" of findings, and a location's group is the union
    of the classes that list it, worked out once per distinct union."""
    with gc_paused():
        return _compact(report)


def _compact(report: Report) -> CompactRun:
    run = CompactRun(
        run_id=report.scan.run_id, started=utc(report.scan.start), scope=scope_of(report.scan)
    )
    hosts, services = run.hosts, run.services
    for host in report.hosts:
        hosts.setdefault(
            host.address, HostRow(host.address, tuple(host.hostnames), host.status, host.open_ports)
        )
    # Class number -> its findings as (position in the report's finding order, row).
    classes: list[list[tuple[int, GroupRow]]] = []
    members: dict[PortKey, list[int]] = {}
    position = 0
    for svc in report.services:
        for loc in svc.locations:
            key = (loc.address, loc.port, loc.protocol)
            if key not in services:
                services[key] = ServiceRow(
                    loc.address, loc.port, loc.protocol, svc.name, svc.product, svc.version,
                    svc.extrainfo, tuple(svc.cpes),
                )  # fmt: skip
            if loc.address not in hosts:
                hosts[loc.address] = HostRow(loc.address, tuple(loc.hostnames))
        by_tuple: dict[int, int] = {}  # id of a locations tuple -> class (the report holds it)
        for sf in (*svc.findings, *svc.product_only):
            locs = sf.locations
            number = by_tuple.get(id(locs))
            if number is None:
                number = by_tuple[id(locs)] = len(classes)
                classes.append([])
                for loc in locs:
                    key = (loc.address, loc.port, loc.protocol)
                    found = members.get(key)
                    if found is None:
                        members[key] = [number]
                    elif found[-1] != number:
                        found.append(number)
            classes[number].append((position, _template(sf)))
            position += 1
    index_of_hash: dict[str, int] = {}
    index_of_union: dict[tuple[int, ...], int] = {}
    location_group = run.location_group
    for key, numbers in members.items():
        union = tuple(numbers)
        index = index_of_union.get(union)
        if index is None:
            group = _union(classes, union)
            index = index_of_hash.get(group.hash)
            if index is None:
                index = index_of_hash[group.hash] = len(run.groups)
                run.groups.append(group)
            index_of_union[union] = index
        location_group[key] = index
        if key not in services:
            # A finding at a location its service does not list (the report builder never
            # makes one; a hand-made report could): the location gets a bare row, as
            # migration 2 gives one, so that the store loses nothing.
            services[key] = ServiceRow(*key)
    _count_ports(run)
    return run


def _union(classes: list[list[tuple[int, GroupRow]]], union: tuple[int, ...]) -> FindingGroup:
    merged = sorted((item for n in union for item in classes[n]), key=lambda item: item[0])
    first: dict[str, GroupRow] = {}
    for _pos, row in merged:
        first.setdefault(row[0], row)
    return make_group(first.values())


def _count_ports(run: CompactRun) -> None:
    """Hosts listed without a port count get one from the services seen (as the flat rows did)."""
    counts: dict[str, int] = {}
    for addr, _port, _proto in run.services:
        counts[addr] = counts.get(addr, 0) + 1
    for addr, hrow in list(run.hosts.items()):
        if hrow.open_ports == 0 and counts.get(addr):
            run.hosts[addr] = HostRow(addr, hrow.hostnames, hrow.status, counts[addr])


@dataclass(frozen=True)
class RunHeader:
    """What a run set out to do and when, as the fingerprint covers it."""

    targets: tuple[str, ...]
    excluded: tuple[str, ...]
    ports: str | None
    start: str | None  # ISO timestamps as the store writes them
    end: str | None
    nmap_commands: tuple[str, ...]
    incomplete_targets: tuple[str, ...]


def fingerprint(
    header: RunHeader,
    hosts: Iterable[tuple[str, str]],
    services: Iterable[tuple[PortKey, str | None, str | None, str | None, str | None]],
) -> str:
    """Identity of a run's content: recording the same results twice gives the same run.

    `hosts`: (address, status); `services`: (location, name, product, version, the digest of
    its group or None). Either order: both are sorted here. Computed the same way from a report
    and from stored rows (the migration of older stores re-fingerprints their runs)."""
    h = hashlib.sha256()
    h.update(
        json.dumps(
            [
                list(header.targets), list(header.excluded), header.ports, header.start,
                header.end, list(header.nmap_commands), list(header.incomplete_targets),
            ]
        ).encode()
    )  # fmt: skip
    for address, status in sorted(hosts):
        h.update(f"\0h{address}\0{status}".encode())
    for key, name, product, version, digest in sorted(services, key=lambda s: s[0]):
        h.update(f"\0s{key}\0{name}\0{product}\0{version}\0{digest or ''}".encode())
    return h.hexdigest()


def run_fingerprint(header: RunHeader, run: CompactRun) -> str:
    groups, located = run.groups, run.location_group
    return fingerprint(
        header,
        ((h.address, h.status) for h in run.hosts.values()),
        (
            (
                key, s.name, s.product, s.version,
                groups[located[key]].digest if key in located else None,
            )
            for key, s in run.services.items()
        ),
    )  # fmt: skip


GROUP_COLUMNS = ("id", "hash", "digest", "findings", "open_exact")
GROUP_FINDING_COLUMNS = (
    "group_id", "vuln_id", "status", "confidence", "severity", "cvss", "kev", "kev_date_added",
    "suppression_source", "suppression_reason", "suppression_owner", "suppression_expires",
)  # fmt: skip
_LOOKUP_BATCH = 500  # hashes per IN (...) list: well under both backends' parameter limits


def save_groups(db: Database, groups: Sequence[FindingGroup]) -> list[int]:
    """The store's id of each group (distinct hashes), adding the groups it lacks; call it in
    the write transaction that records the locations (it numbers new groups after the last)."""
    ids: dict[str, int] = {}
    hashes = [g.hash for g in groups]
    for i in range(0, len(hashes), _LOOKUP_BATCH):
        chunk = hashes[i : i + _LOOKUP_BATCH]
        marks = ", ".join("?" for _ in chunk)
        for gid, digest in db.query(
            f"SELECT id, hash FROM finding_groups WHERE hash IN ({marks})", chunk
        ):
            ids[str(digest)] = int(gid)
    new = [g for g in groups if g.hash not in ids]
    if new:
        next_id = int(db.query("SELECT COALESCE(MAX(id), 0) FROM finding_groups")[0][0]) + 1
        for offset, g in enumerate(new):
            ids[g.hash] = next_id + offset
        db.insert_many(
            "finding_groups",
            GROUP_COLUMNS,
            ((ids[g.hash], g.hash, g.digest, g.size, g.open_exact) for g in new),
        )
        db.insert_many(
            "group_findings",
            GROUP_FINDING_COLUMNS,
            (
                (ids[g.hash], r[0], r[1], r[2], r[3], r[4], int(r[5]), *r[6:])
                for g in new
                for r in g.rows
            ),
        )
    return [ids[g.hash] for g in groups]
