"""Core data types shared by every stage: observations, vulnerabilities, findings, the report.

All are frozen dataclasses. Stages pass them one way:
scan -> XML -> parse (HostObservation) -> match (Finding) -> report (Report) -> renderers.
New fields must get defaults so that existing callers keep working.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

# --------------------------------------------------------------------------- severity


class Severity(enum.IntEnum):
    """CVSS v3 qualitative severity; UNKNOWN when no score exists (e.g. awaiting analysis)."""

    UNKNOWN = 0
    NONE = 1
    LOW = 2
    MEDIUM = 3
    HIGH = 4
    CRITICAL = 5

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Severity:
        return cls[label.upper()]


def severity_from_cvss(score: float | None) -> Severity:
    """Map a CVSS base score to the CVSS v3 severity ranges (none/low/medium/high/critical)."""
    if score is None:
        return Severity.UNKNOWN
    if score == 0.0:
        return Severity.NONE
    if score < 4.0:
        return Severity.LOW
    if score < 7.0:
        return Severity.MEDIUM
    if score < 9.0:
        return Severity.HIGH
    return Severity.CRITICAL


# --------------------------------------------------------------------------- observations


@dataclass(frozen=True)
class ScriptResult:
    """Output of one NSE script on a port (text only; hostile input)."""

    id: str
    output: str


@dataclass(frozen=True)
class VulnersEntry:
    """One row of the `vulners` NSE script's table."""

    id: str
    cvss: float | None
    type: str
    is_exploit: bool
    key: str | None = None  # the table it came from: a CPE, or "product version" as a fallback
    cvss_version: str | None = None  # from the newer script's `cvss_type` ("cvss3.1" -> "3.1")


@dataclass(frozen=True)
class ServiceObservation:
    """One open port on one host as Nmap reported it. Text fields come from the host: hostile."""

    address: str
    port: int
    protocol: str  # "tcp" | "udp" | "sctp"
    state: str = "open"
    name: str | None = None  # Nmap service name, e.g. "ssh"
    product: str | None = None
    version: str | None = None
    extrainfo: str | None = None
    ostype: str | None = None
    tunnel: str | None = None  # "ssl" when wrapped
    method: str | None = None  # "probed" | "table"
    conf: int | None = None
    cpes: tuple[str, ...] = ()  # as Nmap writes them: "cpe:/a:openbsd:openssh:9.2p1"
    scripts: tuple[ScriptResult, ...] = ()
    vulners: tuple[VulnersEntry, ...] = ()

    @property
    def banner(self) -> str:
        """Product, version and extra info as one line, the way Nmap prints them."""
        parts = [p for p in (self.product, self.version) if p]
        if self.extrainfo:
            parts.append(f"({self.extrainfo})")
        return " ".join(parts)


@dataclass(frozen=True)
class HostObservation:
    """One host from one Nmap XML file, with its open ports."""

    address: str
    address_type: str = "ipv4"  # "ipv4" | "ipv6"
    hostnames: tuple[str, ...] = ()
    status: str = "up"
    mac: str | None = None
    services: tuple[ServiceObservation, ...] = ()
    os_matches: tuple[str, ...] = ()
    source: str | None = None  # XML file it was read from
    scripts: tuple[ScriptResult, ...] = ()  # host-level NSE output (<hostscript>)


@dataclass(frozen=True)
class NmapRunInfo:
    """What one Nmap XML file says about its run."""

    source: str
    args: str = ""
    version: str = ""
    start: datetime | None = None
    end: datetime | None = None
    complete: bool = True  # False when the file was cut short (interrupted scan)
    exit_status: str | None = None  # "success" | "error" from <finished>
    error: str | None = None
    hosts_up: int = 0
    hosts_down: int = 0
    warnings: tuple[str, ...] = ()  # e.g. "<file>: cut short (interrupted scan?) ..."


# --------------------------------------------------------------------------- vulnerabilities


@dataclass(frozen=True)
class CvssScore:
    score: float
    version: str  # "4.0" | "3.1" | "3.0" | "2.0"
    vector: str | None = None
    source: str | None = None  # who scored it, e.g. "nvd@nist.gov"


@dataclass(frozen=True)
class KevEntry:
    """An entry of the CISA Known Exploited Vulnerabilities catalogue."""

    date_added: str
    known_ransomware_use: bool | None = None
    due_date: str | None = None
    vulnerability_name: str | None = None
    required_action: str | None = None


@dataclass(frozen=True)
class Vulnerability:
    """What the local database (or the vulners script) knows of one vulnerability."""

    id: str
    summary: str | None = None
    published: str | None = None  # ISO date
    cvss: CvssScore | None = None
    cwes: tuple[str, ...] = ()
    kev: KevEntry | None = None
    epss: float | None = None
    epss_percentile: float | None = None
    url: str | None = None
    source: str = "nvd"  # "nvd" | "vulners"
    is_exploit: bool = False  # vulners' exploit flag
    # CISA's SSVC decision points (CVE 5 ADP container): "none" | "poc" | "active", "yes" | "no"
    ssvc_exploitation: str | None = None
    ssvc_automatable: str | None = None

    @property
    def severity(self) -> Severity:
        return severity_from_cvss(self.cvss.score if self.cvss else None)


class Confidence(enum.StrEnum):
    EXACT = "exact"  # detected version inside an NVD range or equal to a listed version
    PRODUCT_ONLY = "product-only"  # product matched, version unknown


class MatchSource(enum.StrEnum):
    """Which source's statement made the finding (in order of trust)."""

    NVD = "nvd"  # analysed NVD configurations
    OVERRIDE = "override"  # anchore nvd-data-overrides (replaces the NVD's configurations)
    CNA = "cna"  # the CVE 5 record's CNA container: cpeApplicability, else affected
    ADP = "adp"  # CISA ADP container, when it passes sanity checks
    DISTRIBUTION = "distribution"  # a distribution's fixed version read as an upstream fix
    DESCRIPTION = "description"  # "before X" in the description text
    VULNERS = "vulners"  # the vulners NSE script (vulners.com), not the local database


class SourceConfidence(enum.StrEnum):
    """How far a finding can be trusted, from its source; `possible` is never counted unless
    asked for (`--min-confidence possible`)."""

    HIGH = "high"
    MEDIUM = "medium"
    POSSIBLE = "possible"

    @property
    def rank(self) -> int:
        return {"high": 3, "medium": 2, "possible": 1}[self.value]


SOURCE_CONFIDENCE: dict[MatchSource, SourceConfidence] = {
    MatchSource.NVD: SourceConfidence.HIGH,
    MatchSource.OVERRIDE: SourceConfidence.HIGH,
    MatchSource.CNA: SourceConfidence.MEDIUM,
    MatchSource.ADP: SourceConfidence.MEDIUM,
    MatchSource.DISTRIBUTION: SourceConfidence.MEDIUM,
    MatchSource.DESCRIPTION: SourceConfidence.POSSIBLE,
    MatchSource.VULNERS: SourceConfidence.MEDIUM,
}


class FindingStatus(enum.StrEnum):
    CONFIRMED = "confirmed"
    UNCONFIRMED_DISTRIBUTION = "unconfirmed-distribution-build"
    FIXED_BY_DISTRIBUTION = "fixed-by-distribution"
    NOT_AFFECTED = "not-affected"
    SUPPRESSED = "suppressed"

    @property
    def label(self) -> str:
        return {
            "confirmed": "confirmed",
            "unconfirmed-distribution-build": "unconfirmed: distribution build",
            "fixed-by-distribution": "fixed by distribution",
            "not-affected": "not affected",
            "suppressed": "suppressed",
        }[self.value]

    @property
    def is_open(self) -> bool:
        """Open findings belong in the main report; the others go to appendices."""
        return self in (FindingStatus.CONFIRMED, FindingStatus.UNCONFIRMED_DISTRIBUTION)


@dataclass(frozen=True)
class MatchEvidence:
    """Why a CVE matched: the NVD criteria and range against what Nmap detected."""

    criteria: str  # e.g. "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*"
    version_range: str  # e.g. "< 9.3p2", ">= 2.4.0, <= 2.4.49", "= 9.2p1", "any version"
    detected_version: str | None = None
    detected_cpe: str | None = None
    banner: str = ""
    platform_conditions: tuple[str, ...] = ()  # e.g. "running on cpe:2.3:o:microsoft:windows:*"
    alias: str | None = None  # e.g. "Nmap igor_sysoev:nginx = NVD f5:nginx"
    # The record the statement comes from, e.g. "CVE 5 record, CNA f5, updated 2024-08-14"
    # (None for the NVD's own configurations).
    record: str | None = None


@dataclass(frozen=True)
class DistributionEvidence:
    """What a distribution's tracker says about a CVE for the detected package build."""

    distribution: str  # "debian" | "ubuntu" | "rhel" ...
    release: str | None = None  # "bookworm"
    source_package: str | None = None
    package_version: str | None = None
    tracker: str | None = None  # "Debian security tracker" ...
    tracker_status: str | None = None  # "resolved", "open", "not-affected", ...
    fixed_version: str | None = None
    inherited_from: str | None = None  # when the release came from another service on the host
    note: str | None = None


@dataclass(frozen=True)
class SuppressionRef:
    """The exception rule that suppressed a finding."""

    source: str  # "file:line"
    reason: str
    owner: str
    expires: str | None = None


@dataclass(frozen=True)
class Finding:
    """A vulnerability that applies to a detected service, with why and how sure."""

    vulnerability: Vulnerability
    confidence: Confidence = Confidence.EXACT
    status: FindingStatus = FindingStatus.CONFIRMED
    evidence: tuple[MatchEvidence, ...] = ()
    distribution: DistributionEvidence | None = None
    suppression: SuppressionRef | None = None
    match_source: MatchSource = MatchSource.NVD
    source_confidence: SourceConfidence = SourceConfidence.HIGH

    @property
    def id(self) -> str:
        return self.vulnerability.id

    @property
    def severity(self) -> Severity:
        return self.vulnerability.severity


# --------------------------------------------------------------------------- report


@dataclass(frozen=True, slots=True)  # slots: a fleet report holds hundreds of thousands
class Location:
    address: str
    port: int
    protocol: str
    hostnames: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}/{self.protocol}"


@dataclass(frozen=True)
class ServiceFinding:
    """One finding of a service with the locations it applies to (status may differ by host)."""

    finding: Finding
    locations: tuple[Location, ...]


@dataclass(frozen=True)
class ServiceReport:
    """A service (product + version + CPE) with all its locations and all their findings."""

    name: str | None
    product: str | None
    version: str | None
    cpes: tuple[str, ...]
    locations: tuple[Location, ...]
    findings: tuple[ServiceFinding, ...] = ()  # exact matches, every status
    product_only: tuple[ServiceFinding, ...] = ()  # version unknown: summarised, listed on request
    extrainfo: str | None = None

    @property
    def open_findings(self) -> tuple[ServiceFinding, ...]:
        return tuple(f for f in self.findings if f.finding.status.is_open)

    @property
    def worst_severity(self) -> Severity | None:
        sev = [f.finding.severity for f in self.open_findings]
        return max(sev) if sev else None


@dataclass(frozen=True)
class HostSummary:
    address: str
    hostnames: tuple[str, ...] = ()
    status: str = "up"
    open_ports: int = 0


@dataclass(frozen=True)
class ScanSummary:
    """What was scanned, how and when: the auditor's header of every report."""

    targets: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()
    nmap_commands: tuple[str, ...] = ()
    nmap_version: str | None = None
    start: datetime | None = None
    end: datetime | None = None
    profile: str | None = None
    xml_files: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    hosts_up: int = 0
    hosts_down: int = 0
    ports: str | None = None  # port scope as Nmap took it: "top-1000", "1-65535", "T:22,80"
    incomplete_targets: tuple[str, ...] = ()  # targets whose worker failed: "not checked"
    run_id: str | None = None


@dataclass(frozen=True)
class VulnDbSummary:
    """The vulnerability data a report was built with."""

    path: str
    cve_count: int
    sources: tuple[tuple[str, str], ...] = ()  # (source name, date of its data)
    built_at: str | None = None
    age_days: float | None = None  # of its NVD data (else of the build); None: unknown
    max_age_days: int = 7  # older than this is stale (--max-db-age)

    @property
    def stale(self) -> bool:
        return self.age_days is None or self.age_days > self.max_age_days


class ChangeKind(enum.StrEnum):
    NEW_FINDING = "new-finding"
    FIXED_FINDING = "fixed-finding"
    STATUS_CHANGED = "status-changed"  # e.g. now in KEV, newly suppressed, suppression expired
    NEW_PORT = "new-port"
    CLOSED_PORT = "closed-port"
    VERSION_CHANGED = "version-changed"
    HOST_APPEARED = "host-appeared"
    HOST_DISAPPEARED = "host-disappeared"
    NOT_CHECKED = "not-checked"  # in the old run, outside what the new run scanned


@dataclass(frozen=True, slots=True)  # slots: a fleet's diff may hold a million
class ChangeItem:
    kind: ChangeKind
    description: str
    location: Location | None = None
    address: str | None = None
    vuln_id: str | None = None
    severity: Severity | None = None
    old: str | None = None
    new: str | None = None


@dataclass(frozen=True)
class ChangeSummary:
    """What changed since an earlier run of the same targets ("Changes since <date>")."""

    since_run: str
    since: datetime | None
    items: tuple[ChangeItem, ...] = ()


@dataclass(frozen=True)
class Report:
    """The service-centred report: the single model every renderer renders."""

    scan: ScanSummary
    services: tuple[ServiceReport, ...]  # vulnerable first by worst severity, then the rest
    hosts: tuple[HostSummary, ...] = ()
    vulndb: VulnDbSummary | None = None
    vulndb_note: str | None = None  # e.g. "no vulnerability database available: run flan db ..."
    notes: tuple[str, ...] = ()  # e.g. unused or expired suppression rules
    changes: ChangeSummary | None = None
    list_product_only: bool = False  # list product-only matches, not just their count
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    def summary(self) -> dict[str, int]:
        """Counts of open findings by severity label (per service and location)."""
        counts = {s.label: 0 for s in sorted(Severity, reverse=True)}
        for svc in self.services:
            for sf in svc.open_findings:
                counts[sf.finding.severity.label] += len(sf.locations)
        return counts
