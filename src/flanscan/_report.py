"""The one place that knows "service-centred": observations and findings -> `Report`.

A service is a product + version (+ CPEs) as Nmap identified it; a port Nmap could not identify
is a service named after Nmap's guess ("unknown", "redis", ...). Each service lists every
location it was seen at and the findings of every location (the same finding at several
locations is one entry listing them). See docs/report-model.md for the rules.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from flanscan._exposure import exposure_of
from flanscan._model import (
    ChangeSummary,
    Confidence,
    Finding,
    HostObservation,
    HostSummary,
    Location,
    Report,
    ScanSummary,
    ServiceFinding,
    ServiceObservation,
    ServiceReport,
    Severity,
    VulnDbSummary,
)

Analyzer = Callable[[HostObservation, ServiceObservation], Sequence[Finding]]

# --------------------------------------------------------------------------- ordering


def address_sort_key(address: str) -> tuple[int, int, str]:
    """IPv4 before IPv6, numerically; anything else (a MAC) last, as text."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (9, 0, address)
    return (ip.version, int(ip), address)


def location_sort_key(loc: Location) -> tuple[tuple[int, int, str], int, str]:
    return (address_sort_key(loc.address), loc.port, loc.protocol)


def finding_sort_key(finding: Finding) -> tuple[bool, int, bool, float, float, str]:
    """What to fix first: open before closed, reachable over the network before client-side
    and local (see `flanscan._exposure`), KEV first, then CVSS, then EPSS, then id."""
    vuln = finding.vulnerability
    return (
        not finding.status.is_open,
        exposure_of(vuln).exposure.rank,
        vuln.kev is None,
        -(vuln.cvss.score if vuln.cvss is not None else -1.0),
        -(vuln.epss if vuln.epss is not None else -1.0),
        vuln.id,
    )


def _service_label(svc: ServiceReport) -> str:
    return (svc.product or svc.name or "").lower()


def service_sort_key(svc: ServiceReport) -> tuple[object, ...]:
    """Services with open findings first, by worst severity, KEV, number of locations; then
    the services with no known vulnerability by name and first port."""
    worst = svc.worst_severity
    first = svc.locations[0] if svc.locations else None
    port = first.port if first else 0
    if worst is not None:
        has_kev = any(sf.finding.vulnerability.kev is not None for sf in svc.open_findings)
        return (0, -int(worst), not has_kev, -len(svc.locations), _service_label(svc), port)
    return (1, 0, False, 0, _service_label(svc), port, svc.version or "")


# --------------------------------------------------------------------------- merging


def _richness(svc: ServiceObservation) -> tuple[int, ...]:
    """How much Nmap learnt about a port: a -sV pass beats a discovery pass."""
    return (
        int(svc.product is not None),
        int(svc.version is not None),
        len(svc.cpes),
        int(svc.extrainfo is not None),
        int(svc.method == "probed"),
        int(svc.state == "open"),
        len(svc.vulners) + len(svc.scripts),
    )


def merge_services(a: ServiceObservation, b: ServiceObservation) -> ServiceObservation:
    """The richer of two observations of one address/port/protocol, keeping script output
    that only the other one has."""
    best, other = (a, b) if _richness(a) >= _richness(b) else (b, a)
    if not best.vulners and other.vulners:
        best = dataclasses.replace(best, vulners=other.vulners)
    if not best.scripts and other.scripts:
        best = dataclasses.replace(best, scripts=other.scripts)
    return best


@dataclass
class _HostAcc:
    first: HostObservation
    hostnames: dict[str, None] = field(default_factory=dict)
    up: bool = False
    mac: str | None = None
    os_matches: tuple[str, ...] = ()
    services: dict[tuple[int, str], ServiceObservation] = field(default_factory=dict)

    def add(self, host: HostObservation) -> None:
        self.hostnames.update(dict.fromkeys(host.hostnames))
        self.up = self.up or host.status == "up"
        self.mac = self.mac or host.mac
        if len(host.os_matches) > len(self.os_matches):
            self.os_matches = host.os_matches
        for svc in host.services:
            key = (svc.port, svc.protocol)
            seen = self.services.get(key)
            self.services[key] = svc if seen is None else merge_services(seen, svc)

    def merged(self) -> HostObservation:
        services = sorted(self.services.values(), key=lambda s: (s.protocol, s.port))
        return dataclasses.replace(
            self.first,
            hostnames=tuple(self.hostnames),
            status="up" if self.up else self.first.status,
            mac=self.mac,
            os_matches=self.os_matches,
            services=tuple(services),
        )


def merge_hosts(hosts: Iterable[HostObservation]) -> list[HostObservation]:
    """One observation per address, merging what several XML files (a discovery pass and a
    -sV pass, or several workers) saw of it; sorted by address."""
    acc: dict[str, _HostAcc] = {}
    for host in hosts:
        entry = acc.get(host.address)
        if entry is None:
            entry = acc[host.address] = _HostAcc(first=host)
        entry.add(host)
    return [acc[a].merged() for a in sorted(acc, key=address_sort_key)]


# --------------------------------------------------------------------------- building

ServiceKey = tuple[str | None, str | None, str | None, tuple[str, ...]]


def service_key(svc: ServiceObservation) -> ServiceKey:
    """Identified ports group by product + version + CPEs; unidentified ones by Nmap's name
    (and the version Nmap sometimes gives without a product, e.g. rpcbind "2-4")."""
    if svc.product:
        return (None, svc.product, svc.version, svc.cpes)
    return (svc.name or "unknown", None, svc.version, ())


class _FindingTable:
    """Numbers findings: equal findings get one number. Analyzers hand out the same objects for
    the same service (the matcher and the distribution step are memoised), so identity is tried
    first; only a new object is hashed as a value (a `Finding` hashes deeply: evidence, CVE
    text). Every object numbered stays referenced here, so an id is never reused."""

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self._by_id: dict[int, int] = {}
        self._by_value: dict[Finding, int] = {}
        self._pinned: list[Finding] = []

    def number(self, finding: Finding) -> int:
        n = self._by_id.get(id(finding))
        if n is None:
            n = self._by_value.get(finding)
            if n is None:
                n = self._by_value[finding] = len(self.findings)
                self.findings.append(finding)
            self._by_id[id(finding)] = n
            self._pinned.append(finding)
        return n


# One location's findings as numbers: (exact ones, product-only ones), in the analyzer's order.
_Numbered = tuple[tuple[int, ...], tuple[int, ...]]


@dataclass
class _ServiceAcc:
    """One service's locations and findings as numbers: a location's number is its rank in
    address/port/protocol order, so sorting a list of them is sorting plain integers. Locations
    with the same findings are kept together (`by_findings`): a fleet has many locations but
    few distinct lists of findings, so the per-finding lists are made once per list."""

    name: str | None
    product: str | None
    version: str | None
    cpes: tuple[str, ...]
    extrainfo: set[str | None] = field(default_factory=set)
    locations: list[int] = field(default_factory=list)
    by_findings: dict[_Numbered, list[int]] = field(default_factory=dict)

    def build(self, table: _FindingTable, locations: list[Location]) -> ServiceReport:
        # Findings of one service mostly share their set of locations: one tuple each, so
        # the report holds it once and renderers can serialise it once.
        shared: dict[tuple[int, ...], tuple[Location, ...]] = {}

        def located(numbers: list[int]) -> tuple[Location, ...]:
            key = tuple(sorted(set(numbers)))
            found = shared.get(key)
            if found is None:
                found = shared[key] = tuple(map(locations.__getitem__, key))
            return found

        # Each finding's locations, the findings in order of first appearance (the lists of
        # findings are in order of their first location): the order a finding-by-finding walk
        # over the locations gives, which the stable sort below keeps for equal keys.
        exact: dict[int, list[int]] = {}
        product_only: dict[int, list[int]] = {}
        for (exact_numbers, product_only_numbers), locs in self.by_findings.items():
            for target, numbers in ((exact, exact_numbers), (product_only, product_only_numbers)):
                for n in numbers:
                    found = target.get(n)
                    if found is None:
                        target[n] = list(locs)
                    else:
                        found.extend(locs)

        def group(items: dict[int, list[int]]) -> tuple[ServiceFinding, ...]:
            found = [(table.findings[n], locs) for n, locs in items.items()]
            found.sort(key=lambda item: finding_sort_key(item[0]))
            return tuple(ServiceFinding(f, located(locs)) for f, locs in found)

        # Extra info goes in only when every location agrees (e.g. "protocol 2.0").
        extrainfo = next(iter(self.extrainfo)) if len(self.extrainfo) == 1 else None
        return ServiceReport(
            name=self.name,
            product=self.product,
            version=self.version,
            cpes=self.cpes,
            locations=located(self.locations),
            findings=group(exact),
            product_only=group(product_only),
            extrainfo=extrainfo,
        )


def _number(table: _FindingTable, findings: Sequence[Finding]) -> _Numbered:
    exact = tuple(table.number(f) for f in findings if f.confidence != Confidence.PRODUCT_ONLY)
    product_only = tuple(
        table.number(f) for f in findings if f.confidence == Confidence.PRODUCT_ONLY
    )
    return exact, product_only


def _renumber(locations: list[Location], accs: Iterable[_ServiceAcc]) -> list[Location]:
    """Locations in report order, and every number in `accs` changed to match, for services
    whose address is not their host's (hand-built observations; the parser never does it)."""
    order = sorted(range(len(locations)), key=lambda i: location_sort_key(locations[i]))
    rank = [0] * len(order)
    for r, i in enumerate(order):
        rank[i] = r
    for acc in accs:
        acc.locations = [rank[n] for n in acc.locations]
        for key, numbers in acc.by_findings.items():
            acc.by_findings[key] = [rank[x] for x in numbers]
    return [locations[i] for i in order]


def build_report(
    hosts: Iterable[HostObservation],
    *,
    scan: ScanSummary,
    analyze: Analyzer | None,
    vulndb: VulnDbSummary | None,
    vulndb_note: str | None,
    notes: Sequence[str] = (),
    changes: ChangeSummary | None = None,
) -> Report:
    """Group host observations into the service-centred `Report`.

    Observations of one address/port/protocol from several files are merged first (the richer
    one wins); `analyze(host, service)` then gives each location's findings. `scan.hosts_up`
    is set to the number of distinct hosts up.
    """
    merged = merge_hosts(hosts)  # sorted by address: locations are numbered in report order
    services: dict[ServiceKey, _ServiceAcc] = {}
    host_summaries: list[HostSummary] = []
    table = _FindingTable()
    seen_lists: dict[tuple[int, ...], _Numbered] = {}  # ids of an analyzer's list -> numbers
    locations: list[Location] = []
    addresses: list[str] = []  # each location's host address (the parser gives the same)
    down = 0
    for host in merged:
        if host.status != "up":
            down += 1
            continue
        host_summaries.append(
            HostSummary(host.address, host.hostnames, host.status, len(host.services))
        )
        # This host's locations, numbered in (port, protocol) order after the previous hosts'.
        base = len(locations)
        ranked = sorted(host.services, key=lambda s: (s.port, s.protocol))
        number = {(s.port, s.protocol): base + i for i, s in enumerate(ranked)}
        locations.extend(Location(s.address, s.port, s.protocol, host.hostnames) for s in ranked)
        addresses.extend(host.address for _ in ranked)
        for svc in host.services:
            key = service_key(svc)
            acc = services.get(key)
            if acc is None:
                acc = services[key] = _ServiceAcc(
                    name=svc.name or "unknown",
                    product=svc.product,
                    version=svc.version,
                    cpes=svc.cpes,
                )
            loc = number[(svc.port, svc.protocol)]
            acc.locations.append(loc)
            acc.extrainfo.add(svc.extrainfo)
            findings = analyze(host, svc) if analyze is not None else ()
            # Identity first (C-level): the analyzer hands out the same objects for the same
            # banner; `table` keeps every object it numbered, so these ids stay theirs.
            ids = tuple(map(id, findings))
            numbered = seen_lists.get(ids)
            if numbered is None:
                numbered = seen_lists[ids] = _number(table, findings)
            same = acc.by_findings.get(numbered)
            if same is None:
                acc.by_findings[numbered] = [loc]
            else:
                same.append(loc)
    if any(loc.address != addr for loc, addr in zip(locations, addresses, strict=True)):
        locations = _renumber(locations, services.values())  # hand-built input only
    reports = sorted(
        (acc.build(table, locations) for acc in services.values()), key=service_sort_key
    )
    scan = dataclasses.replace(
        scan, hosts_up=len(host_summaries), hosts_down=max(scan.hosts_down, down)
    )
    return Report(
        scan=scan,
        services=tuple(reports),
        hosts=tuple(host_summaries),
        vulndb=vulndb,
        vulndb_note=vulndb_note,
        notes=tuple(notes),
        changes=changes,
    )


def worst_severity(report: Report) -> Severity | None:
    """The worst severity of any open finding in the report (None when there is none)."""
    sev = [s.worst_severity for s in report.services if s.worst_severity is not None]
    return max(sev) if sev else None
