"""The one place that knows "service-centred": observations and findings -> `Report`.

A service is a product + version (+ CPEs) as Nmap identified it; a port Nmap could not identify
is a service named after Nmap's guess ("unknown", "redis", ...). Each service lists every
location it was seen at and the findings of every location (the same finding at several
locations is one entry listing them). See docs/report-model.md for the rules.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import shlex
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flanscan._errors import ParseError
from flanscan._model import (
    ChangeSummary,
    Confidence,
    Finding,
    HostObservation,
    HostSummary,
    Location,
    NmapRunInfo,
    Report,
    ScanSummary,
    ServiceFinding,
    ServiceObservation,
    ServiceReport,
    Severity,
    VulnDbSummary,
)
from flanscan._nmapopts import mask_command, mask_profile, split_nmap_argv
from flanscan._records import HostCounts, read_run_record
from flanscan._scopecheck import ScopeCheck

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


def finding_sort_key(finding: Finding) -> tuple[bool, bool, float, float, str]:
    """What to fix first: open before closed, KEV first, then CVSS, then EPSS, then id."""
    vuln = finding.vulnerability
    return (
        not finding.status.is_open,
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


# --------------------------------------------------------------------------- runs -> ScanSummary


@dataclass(frozen=True)
class NmapArgs:
    """What an Nmap command line says about scope: targets, excludes, input lists, ports."""

    targets: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    input_lists: tuple[str, ...] = ()
    ports: str | None = None


def parse_nmap_args(args: str) -> NmapArgs:
    """Split an Nmap command line (as in `<nmaprun args=...>`) into targets and scope."""
    try:
        words = shlex.split(args)
    except ValueError:
        words = args.split()
    excluded: list[str] = []
    lists: list[str] = []
    ports: str | None = None
    fast = scan_only_hosts = False
    # words[0] is the nmap executable; the options are read with Nmap's own table.
    parsed = split_nmap_argv(words[1:])
    for opt in parsed.options:
        value = opt.value
        if opt.name == "-F":
            fast = True
        elif opt.name in ("-sn", "-sP"):
            scan_only_hosts = True
        elif value is None:
            continue
        elif opt.name == "-p":
            ports = "1-65535" if value == "-" else value
        elif opt.name == "--top-ports":
            ports = f"top-{value}"
        elif opt.name == "--exclude":
            excluded.extend(v for v in value.split(",") if v)
        elif opt.name == "--excludefile":
            excluded.append(f"@{value}")
        elif opt.name in ("--iL", "-i"):
            lists.append(value)
    targets = [t for t in parsed.targets if t != "-"]
    if ports is None and not scan_only_hosts:
        ports = "top-100" if fast else "top-1000"
    return NmapArgs(tuple(targets), tuple(excluded), tuple(lists), ports)


def summarize_runs(infos: Sequence[NmapRunInfo]) -> ScanSummary:
    """A ScanSummary from what the XML files themselves say (when no run.json exists):
    targets and ports from the command lines, the earliest start and latest end, the Nmap
    version, hosts counted, and a warning for each file that is incomplete."""
    targets: dict[str, None] = {}
    excluded: dict[str, None] = {}
    ports: dict[str, None] = {}
    versions: dict[str, None] = {}
    warnings: list[str] = []
    for info in infos:
        parsed = parse_nmap_args(info.args)
        targets.update(dict.fromkeys(parsed.targets))
        targets.update(dict.fromkeys(f"-iL {name}" for name in parsed.input_lists))
        excluded.update(dict.fromkeys(parsed.excluded))
        if parsed.ports:
            ports[parsed.ports] = None
        if info.version:
            versions[info.version] = None
        warnings.extend(info.warnings)
        if not info.complete and not info.warnings:
            warnings.append(f"{info.source}: incomplete Nmap run")
    starts = [i.start for i in infos if i.start is not None]
    ends = [i.end for i in infos if i.end is not None]
    return ScanSummary(
        targets=tuple(targets),
        excluded=tuple(excluded),
        nmap_commands=tuple(dict.fromkeys(mask_command(i.args) for i in infos if i.args)),
        nmap_version=", ".join(versions) or None,
        start=min(starts) if starts else None,
        end=max(ends) if ends else None,
        xml_files=tuple(i.source for i in infos),
        warnings=tuple(dict.fromkeys(warnings)),
        hosts_up=sum(i.hosts_up for i in infos),
        hosts_down=sum(i.hosts_down for i in infos),
        ports="; ".join(ports) or None,
    )


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


# --------------------------------------------------------------------------- many files


def find_xml_files(paths: Sequence[Path]) -> list[Path]:
    """Nmap XML files named directly, or in a directory (its `xml/` folder if it has one,
    else its `*.xml` files); a directory without any is an error naming it."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            base = path / "xml" if (path / "xml").is_dir() else path
            found = sorted(p for p in base.glob("*.xml") if p.is_file())
            if not found:
                raise ParseError(f"{path}: no Nmap XML files (*.xml) found in it")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ParseError(f"{path}: no such file or directory")
    return files


class NmapXmlSet:
    """Several Nmap XML files read as one stream of hosts (files in the order given)."""

    def __init__(self, files: Sequence[Path], check: ScopeCheck | None = None) -> None:
        from flanscan._parse import NmapXmlFile

        self.readers = [NmapXmlFile(f) for f in files]
        self.check = check

    def hosts(self) -> Iterator[HostObservation]:
        for reader in self.readers:
            if self.check is None:
                yield from reader.hosts()
            else:
                yield from self.check.filter(reader.path, reader.hosts())

    @property
    def infos(self) -> list[NmapRunInfo]:
        """Each file's run information (complete once `hosts()` is exhausted)."""
        return [r.info for r in self.readers]


def report_from_files(
    paths: Sequence[Path],
    *,
    scan: ScanSummary | None = None,
    analyze: Analyzer | None = None,
    vulndb: VulnDbSummary | None = None,
    vulndb_note: str | None = None,
    notes: Sequence[str] = (),
    changes: ChangeSummary | None = None,
    check: ScopeCheck | None = None,
) -> Report:
    """Build a Report from saved XML files/directories, streaming the hosts. Without `scan`
    (no run.json), the scan summary comes from the files themselves (`summarize_runs`); with
    it, the files' warnings are added to it. With `check`, hosts outside the scope are left
    out and named in the warnings and notes."""
    source = NmapXmlSet(find_xml_files(paths), check)
    report = build_report(
        source.hosts(),
        scan=scan or ScanSummary(),
        analyze=analyze,
        vulndb=vulndb,
        vulndb_note=vulndb_note,
        notes=notes,
        changes=changes,
    )
    from_xml = summarize_runs(source.infos)
    if scan is None:
        summary = dataclasses.replace(
            from_xml,
            hosts_up=report.scan.hosts_up,
            hosts_down=max(from_xml.hosts_down, report.scan.hosts_down),
        )
    else:
        summary = dataclasses.replace(
            report.scan,
            warnings=tuple(dict.fromkeys(report.scan.warnings + from_xml.warnings)),
            xml_files=report.scan.xml_files or from_xml.xml_files,
            nmap_version=report.scan.nmap_version or from_xml.nmap_version,
            start=report.scan.start or from_xml.start,
            end=report.scan.end or from_xml.end,
        )
    scope_warnings = tuple(check.warnings()) if check is not None else ()
    if scope_warnings:
        summary = dataclasses.replace(summary, warnings=(*summary.warnings, *scope_warnings))
    return dataclasses.replace(report, scan=summary, notes=(*report.notes, *scope_warnings))
