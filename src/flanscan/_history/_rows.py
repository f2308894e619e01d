"""Rows of one run (hosts, services, findings per location): what the diff compares once the
locations whose finding groups differ are expanded (see _groups)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from flanscan._model import Confidence, FindingStatus, ScanSummary

_OPEN_STATUSES = frozenset(s.value for s in FindingStatus if s.is_open)

PortKey = tuple[str, int, str]  # address, port, protocol
FindingKey = tuple[str, str, int, str]  # vuln id, address, port, protocol


@dataclass(frozen=True, slots=True)  # slots: a diff may hold a million
class HostRow:
    address: str
    hostnames: tuple[str, ...] = ()
    status: str = "up"
    open_ports: int = 0


@dataclass(frozen=True, slots=True)  # slots: a diff may hold a million
class ServiceRow:
    address: str
    port: int
    protocol: str
    name: str | None = None
    product: str | None = None
    version: str | None = None
    extrainfo: str | None = None
    cpes: tuple[str, ...] = ()

    @property
    def key(self) -> PortKey:
        return (self.address, self.port, self.protocol)

    @property
    def banner(self) -> str:
        """Product and version (or the service name when Nmap could not tell more)."""
        text = " ".join(p for p in (self.product, self.version) if p)
        return text or (self.name or "unknown service")


@dataclass(frozen=True, slots=True)  # slots: a diff may hold a million
class FindingRow:
    vuln_id: str
    address: str
    port: int
    protocol: str
    status: str = FindingStatus.CONFIRMED.value
    confidence: str = Confidence.EXACT.value
    severity: int = 0  # Severity value
    cvss: float | None = None
    kev: bool = False
    kev_date_added: str | None = None
    suppression_source: str | None = None
    suppression_reason: str | None = None
    suppression_owner: str | None = None
    suppression_expires: str | None = None

    @property
    def key(self) -> FindingKey:
        return (self.vuln_id, self.address, self.port, self.protocol)

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN_STATUSES


@dataclass(frozen=True)
class RunScope:
    """What a run set out to scan: needed to tell "fixed" from "not checked"."""

    targets: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    ports: str | None = None
    incomplete_targets: tuple[str, ...] = ()
    nmap_commands: tuple[str, ...] = ()


@dataclass
class RunRows:
    """One run, flattened. Keys are unique: a later duplicate of a key replaces nothing."""

    run_id: str | None
    started: datetime | None
    scope: RunScope
    hosts: dict[str, HostRow] = field(default_factory=dict)
    services: dict[PortKey, ServiceRow] = field(default_factory=dict)
    findings: dict[FindingKey, FindingRow] = field(default_factory=dict)

    def open_findings(self) -> int:
        return sum(1 for f in self.findings.values() if f.is_open and _is_exact(f))


def _is_exact(row: FindingRow) -> bool:
    return row.confidence == Confidence.EXACT.value


def scope_of(scan: ScanSummary) -> RunScope:
    return RunScope(
        targets=tuple(scan.targets),
        excluded=tuple(scan.excluded),
        ports=scan.ports,
        incomplete_targets=tuple(scan.incomplete_targets),
        nmap_commands=tuple(scan.nmap_commands),
    )


def utc(value: datetime | None) -> datetime | None:
    """Aware UTC datetime; naive values are taken as UTC (Nmap writes epoch seconds)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
