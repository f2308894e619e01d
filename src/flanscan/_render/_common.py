"""Presentation helpers shared by the renderers: labels, number formats, evidence lines.

These only turn model values into display text; they never group or reorder (the report builder
did that). The text they return is NOT escaped: each renderer escapes it for its own format.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import TextIO
from urllib.parse import quote, urlsplit

from flanscan._exposure import Exposure, exposure_of
from flanscan._model import (
    ChangeKind,
    CvssScore,
    Finding,
    FindingStatus,
    KevEntry,
    Location,
    MatchSource,
    Report,
    ServiceFinding,
    ServiceReport,
    Severity,
    Vulnerability,
)
from flanscan._remediation import remediation_of

GENERATOR = "Flan Scan"

SOURCE_LABELS: dict[MatchSource, str] = {
    MatchSource.NVD: "NVD configurations",
    MatchSource.OVERRIDE: "anchore nvd-data-overrides",
    MatchSource.CNA: "CVE 5 record (CNA)",
    MatchSource.ADP: "CVE 5 record (CISA ADP)",
    MatchSource.DISTRIBUTION: "distribution-derived upstream fix",
    MatchSource.DESCRIPTION: "description text",
    MatchSource.VULNERS: "vulners NSE script",
}
NVD_DETAIL = "https://nvd.nist.gov/vuln/detail/"

# Highest first, the order every summary shows severities in.
SEVERITIES: tuple[Severity, ...] = tuple(sorted(Severity, reverse=True))

# Colours (WCAG AA contrast with white text) used by the HTML chart, badges and the PDF.
SEVERITY_COLOURS: dict[str, str] = {
    "critical": "#7b1fa2",
    "high": "#c62828",
    "medium": "#b85c00",
    "low": "#2e7d32",
    "none": "#546e7a",
    "unknown": "#616161",
}

CHANGE_LABELS: dict[ChangeKind, str] = {
    ChangeKind.NEW_FINDING: "new finding",
    ChangeKind.FIXED_FINDING: "fixed finding",
    ChangeKind.STATUS_CHANGED: "status changed",
    ChangeKind.NEW_PORT: "new port",
    ChangeKind.CLOSED_PORT: "closed port",
    ChangeKind.VERSION_CHANGED: "version changed",
    ChangeKind.HOST_APPEARED: "host appeared",
    ChangeKind.HOST_DISAPPEARED: "host disappeared",
    ChangeKind.NOT_CHECKED: "not checked",
}

# C0/C1 controls (except tab/newline, turned into spaces by callers that need one line) and the
# Unicode bidirectional overrides/isolates, which can make hostile text display reversed.
_UNSAFE_CHARS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)
_WHITESPACE = re.compile(r"\s+")


def clean(text: str) -> str:
    """Drop control and bidi-override characters from untrusted text (keeps tab and newlines)."""
    return _UNSAFE_CHARS.sub("", text)


def one_line(text: str) -> str:
    """Untrusted text as one line: controls dropped, any run of whitespace made one space."""
    return _WHITESPACE.sub(" ", clean(text)).strip()


def ascii_fold(text: str) -> str:
    """Transliterate to ASCII where Unicode decomposition allows it (é -> e); '?' otherwise."""
    out = []
    for ch in unicodedata.normalize("NFKD", text):
        if ord(ch) < 128:
            out.append(ch)
        elif not unicodedata.combining(ch):
            out.append("?")
    return "".join(out)


def fmt_datetime(value: datetime | None) -> str:
    """A timestamp as `YYYY-MM-DD HH:MM:SS UTC` (naive values are taken as UTC)."""
    if value is None:
        return "unknown"
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_datetime(value: datetime | None) -> str | None:
    """A timestamp in ISO 8601 for machine formats (UTC offset kept when present)."""
    return value.isoformat() if value is not None else None


def fmt_date(value: str | None) -> str:
    """An ISO date or timestamp from a feed shown as its date part."""
    return value[:10] if value else ""


def fmt_score(cvss: CvssScore | None) -> str:
    """`9.8 (CVSS 3.1)`, or `no score` when the CVE has none yet."""
    if cvss is None:
        return "no score"
    if not re.fullmatch(r"\d+(\.\d+)?", cvss.version):
        return f"{cvss.score:.1f} (CVSS, version not stated)"
    return f"{cvss.score:.1f} (CVSS {cvss.version})"


def fmt_epss(vuln: Vulnerability) -> str:
    """EPSS probability as a percentage with its percentile, e.g. `94.32% (pctl 99.9)`."""
    if vuln.epss is None:
        return ""
    text = f"{vuln.epss * 100:.2f}%"
    if vuln.epss_percentile is not None:
        text += f" (pctl {vuln.epss_percentile * 100:.1f})"
    return text


def fmt_kev(kev: KevEntry | None) -> str:
    """`KEV since 2023-05-31, ransomware: known`, or '' when not in the KEV catalogue."""
    if kev is None:
        return ""
    text = f"KEV since {fmt_date(kev.date_added)}"
    if kev.known_ransomware_use is True:
        text += ", ransomware: known"
    elif kev.known_ransomware_use is False:
        text += ", ransomware: unknown"
    return text


def fmt_cwes(vuln: Vulnerability) -> str:
    return ", ".join(vuln.cwes)


def safe_url(url: str | None) -> str | None:
    """`url` if it is a plain http(s) URL (no javascript:, data:, ...), else None."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    if any(ch.isspace() or ord(ch) < 32 or ch in "\"'<>`\\" for ch in url):
        return None
    return url


def vuln_url(vuln: Vulnerability) -> str | None:
    """The link for a vulnerability: its own http(s) URL, else the NVD page of a CVE id."""
    own = safe_url(vuln.url)
    if own is not None:
        return own
    if vuln.id.upper().startswith("CVE-"):
        return NVD_DETAIL + quote(vuln.id, safe="")
    return None


def service_title(svc: ServiceReport) -> str:
    """`OpenSSH 9.2p1`, or Nmap's service name when the product is unknown (`rpcbind 2-4`)."""
    # A version without a product ("2-4" of rpcbind) says nothing alone: Nmap's name leads it.
    parts = [p for p in (svc.product or svc.name, svc.version) if p]
    if not parts:
        parts = ["unknown service"]
    return one_line(" ".join(parts))


_SCOPE_TARGETS = 5


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def header_text(report: Report) -> str:
    """The report's first line: the scope (targets, exclusions, hosts up and down), when, and
    what was found; at most five targets are named (a fleet gives thousands)."""
    scan = report.scan
    named = ", ".join(scan.targets[:_SCOPE_TARGETS]) or "unrecorded targets"
    more = len(scan.targets) - _SCOPE_TARGETS
    if more > 0:
        named += f" and {_plural(more, 'more target')}"
    excluded = ", ".join(scan.excluded[:_SCOPE_TARGETS])
    if len(scan.excluded) > _SCOPE_TARGETS:
        excluded += f" and {len(scan.excluded) - _SCOPE_TARGETS} more"
    scope = f"Scope: {named}" + (f", excluding {excluded}" if excluded else "")
    hosts = f"{_plural(len(report.hosts), 'host')} up, {scan.hosts_down} down"
    vulnerable = sum(1 for svc in report.services if svc.open_findings)
    return one_line(
        f"{scope}; {hosts}. Scanned {fmt_datetime(scan.start)} to {fmt_datetime(scan.end)}: "
        f"{_plural(len(report.services), 'service')}, {vulnerable} with known vulnerabilities."
    )


def status_text(finding: Finding) -> str:
    """The status, with how the finding is reached when not over the network
    (`confirmed; local (CVSS AV:L)`, `confirmed; client-side (client program scp)`)."""
    note = exposure_of(finding.vulnerability)
    if note.exposure is Exposure.NETWORK:
        return finding.status.label
    return f"{finding.status.label}; {note.label}"


def fix_text(svc: ServiceReport) -> str:
    """What to upgrade the service to (see `flanscan._remediation`), as one line."""
    return one_line(remediation_of(svc).text)


def location_label(loc: Location) -> str:
    """`198.18.0.10:22/tcp (db1.lab)` with the host's names in parentheses."""
    label = loc.label
    if loc.hostnames:
        label += " (" + ", ".join(loc.hostnames) + ")"
    return one_line(label)


class Lines:
    """Lines of a text report, written to a stream joined by newlines as they pile up, so a
    fleet's report never has to be one string in memory (the text is `"\\n".join(lines)`)."""

    _FLUSH_AT = 1 << 20  # characters kept before they are written

    def __init__(self, out: TextIO, first: Iterable[str] = ()) -> None:
        self._out = out
        self._lines: list[str] = []
        self._size = 0
        self._started = False
        self += first

    def append(self, line: str) -> None:
        self._lines.append(line)
        self._size += len(line)
        if self._size >= self._FLUSH_AT:
            self.flush()

    def __iadd__(self, lines: Iterable[str]) -> Lines:
        # Line by line: `lines` may be a generator of a whole section, never held at once.
        for line in lines:
            self.append(line)
        return self

    def flush(self) -> None:
        if not self._lines:
            return
        if self._started:
            self._out.write("\n")
        self._out.write("\n".join(self._lines))
        self._started = True
        self._lines = []
        self._size = 0


class LocationText:
    """Each location's text, and each list of locations joined, made once per render: a
    location is listed under every finding that applies to it, and the findings of a service
    share their location tuples (see `flanscan._report`). Keys are object ids, so an instance
    lives only while its report does, and keeps what it keyed alive."""

    def __init__(self, text: Callable[[Location], str], sep: str = ", ") -> None:
        self._text = text
        self._sep = sep
        self._one: dict[int, tuple[Location, str]] = {}
        self._joined: dict[int, tuple[tuple[Location, ...], str]] = {}

    def one(self, loc: Location) -> str:
        hit = self._one.get(id(loc))
        if hit is None:
            hit = self._one[id(loc)] = (loc, self._text(loc))
        return hit[1]

    def joined(self, locs: Sequence[Location]) -> str:
        """The locations' texts joined; remembered for a tuple (a report's own lists)."""
        if not isinstance(locs, tuple):
            return self._sep.join(map(self.one, locs))
        hit = self._joined.get(id(locs))
        if hit is None:
            hit = self._joined[id(locs)] = (locs, self._sep.join(map(self.one, locs)))
        return hit[1]


def finding_locations(sf: ServiceFinding, svc: ServiceReport) -> tuple[Location, ...] | None:
    """The finding's own locations, or None when it applies to every location of the service."""
    if sf.locations == svc.locations:
        return None
    return sf.locations


def evidence_lines(finding: Finding) -> list[str]:
    """Why a finding is there, as plain sentences: match, platform, alias, distribution, rule."""
    lines: list[str] = [
        f"source: {SOURCE_LABELS[finding.match_source]}; confidence {finding.source_confidence}"
    ]
    v = finding.vulnerability
    if v.ssvc_exploitation or v.ssvc_automatable:
        lines.append(
            f"CISA SSVC: exploitation {v.ssvc_exploitation or '-'}, "
            f"automatable {v.ssvc_automatable or '-'}"
        )
    for ev in finding.evidence:
        what = "NVD criteria" if ev.record is None else "statement"
        line = f"{what} {ev.criteria} {ev.version_range}"
        detected = [d for d in (ev.detected_version, ev.detected_cpe) if d]
        if detected:
            line += "; detected " + " / ".join(detected)
        if ev.banner:
            line += f"; banner: {ev.banner}"
        lines.append(line)
        lines.extend(f"platform condition: {cond}" for cond in ev.platform_conditions)
        if ev.alias:
            lines.append(f"name alias: {ev.alias}")
        if ev.record:
            lines.append(f"record: {ev.record}")
    dist = finding.distribution
    if dist is not None:
        build = " ".join(
            p
            for p in (dist.distribution, dist.release, dist.source_package, dist.package_version)
            if p
        )
        line = f"distribution build: {build}"
        if dist.tracker or dist.tracker_status:
            line += f"; {dist.tracker or 'tracker'}: {dist.tracker_status or 'no entry'}"
        if dist.fixed_version:
            line += f"; fixed in {dist.fixed_version}"
        lines.append(line)
        if dist.inherited_from:
            lines.append(f"release inherited from {dist.inherited_from}")
        if dist.note:
            lines.append(dist.note)
    rule = finding.suppression
    if rule is not None:
        line = f"suppressed by {rule.source}: {rule.reason} (owner {rule.owner}"
        line += f", expires {rule.expires})" if rule.expires else ")"
        lines.append(line)
    if finding.vulnerability.source != "nvd":
        line = f"source: {finding.vulnerability.source}"
        if finding.vulnerability.is_exploit:
            line += " (exploit available)"
        lines.append(line)
    return [one_line(line) for line in lines]


@dataclass(frozen=True)
class AppendixEntry:
    """A closed finding (fixed by the distribution, not affected, suppressed) and its service."""

    service: ServiceReport
    item: ServiceFinding


def vulnerable_services(report: Report) -> Iterator[ServiceReport]:
    """Services with at least one open finding, in the report's order."""
    return (svc for svc in report.services if svc.open_findings)


def _first_per_cve(svc: ServiceReport) -> list[ServiceFinding]:
    # One row per CVE: its first entry (the report orders open before closed, confirmed
    # before unconfirmed); `status_cell` tells the status of every location.
    seen: set[str] = set()
    first = []
    for sf in svc.findings:
        if sf.finding.id not in seen:
            seen.add(sf.finding.id)
            first.append(sf)
    return first


def confirmed_findings(svc: ServiceReport) -> list[ServiceFinding]:
    """The service's CVEs confirmed at one location at least, one row each, in the report's
    order (shown first)."""
    confirmed = {
        sf.finding.id for sf in svc.findings if sf.finding.status is FindingStatus.CONFIRMED
    }
    return [sf for sf in _first_per_cve(svc) if sf.finding.id in confirmed]


def unconfirmed_findings(svc: ServiceReport) -> list[ServiceFinding]:
    """CVEs open on a distribution build whose backports could not be checked (and confirmed
    nowhere in the service), one row each: kept, but shown apart from the confirmed ones."""
    confirmed = {
        sf.finding.id for sf in svc.findings if sf.finding.status is FindingStatus.CONFIRMED
    }
    unconfirmed = {
        sf.finding.id
        for sf in svc.findings
        if sf.finding.status is FindingStatus.UNCONFIRMED_DISTRIBUTION
    }
    return [sf for sf in _first_per_cve(svc) if sf.finding.id in unconfirmed - confirmed]


_MAX_STATUS_LOCATIONS = 5


def status_cell(svc: ServiceReport, sf: ServiceFinding) -> str:
    """The status of a CVE's row: `status_text` when every location of the service that has
    the CVE shares it; else the status of each location (`confirmed at A; suppressed at B`)."""
    entries = [other for other in svc.findings if other.finding.id == sf.finding.id]
    if len({e.finding.status for e in entries}) <= 1:
        return status_text(sf.finding)
    parts = []
    for e in entries:
        shown = [location_label(loc) for loc in e.locations[:_MAX_STATUS_LOCATIONS]]
        more = len(e.locations) - len(shown)
        where = ", ".join(shown) + (f" and {more} more" if more > 0 else "")
        parts.append(f"{e.finding.status.label} at {where}")
    note = exposure_of(sf.finding.vulnerability)
    text = "; ".join(parts)
    return text if note.exposure is Exposure.NETWORK else f"{text}; {note.label}"


UNCONFIRMED_NOTE = (
    "Unconfirmed: distribution build. The service is a distribution build, and whether the "
    "distribution backported the fix could not be checked (no package revision in the banner, "
    "or no tracker data for its release: each finding's evidence says which)."
)


def needs_version_check(svc: ServiceReport) -> bool:
    """A service with no open finding whose version Nmap did not identify: "no known
    vulnerabilities" would claim what nobody checked."""
    return not svc.open_findings and not svc.version


def other_services(report: Report) -> Iterator[ServiceReport]:
    """Services with no open finding and a known version, in the report's order."""
    return (
        svc for svc in report.services if not svc.open_findings and not needs_version_check(svc)
    )


def manual_check_services(report: Report) -> Iterator[ServiceReport]:
    """Services that need a manual version check (see `needs_version_check`)."""
    return (svc for svc in report.services if needs_version_check(svc))


MANUAL_CHECK_NOTE = (
    "Nmap did not identify the version of these services, so no vulnerability could be "
    "matched to it: check the version on the host (package manager, banner, vendor console)."
)


def severity_by_status(report: Report) -> tuple[list[str], list[tuple[str, list[int]]]]:
    """Findings (per finding and location) by severity and status, for the summary table: the
    status labels, then one row per severity (worst first) with a count per status."""
    statuses = list(FindingStatus)
    index = {s: i for i, s in enumerate(statuses)}
    rows = {s.label: [0] * len(statuses) for s in sorted(Severity, reverse=True)}
    for svc in report.services:
        for sf in svc.findings:
            rows[sf.finding.severity.label][index[sf.finding.status]] += len(sf.locations)
    return [s.label for s in statuses], list(rows.items())


_BACKPORT_STATUSES = (FindingStatus.FIXED_BY_DISTRIBUTION, FindingStatus.NOT_AFFECTED)


def backport_appendix(report: Report) -> list[AppendixEntry]:
    """Findings the distribution fixed or that do not affect the build, in the report's order."""
    return [
        AppendixEntry(svc, sf)
        for svc in report.services
        for sf in svc.findings
        if sf.finding.status in _BACKPORT_STATUSES
    ]


def suppressed_appendix(report: Report) -> list[AppendixEntry]:
    """Findings excluded by a suppression rule, in the report's order."""
    return [
        AppendixEntry(svc, sf)
        for svc in report.services
        for sf in svc.findings
        if sf.finding.status is FindingStatus.SUPPRESSED
    ]


@dataclass(frozen=True)
class Appendix:
    """One appendix of closed findings, titled and introduced the same way in every format."""

    anchor: str
    title: str
    intro: str
    entries: list[AppendixEntry]


def appendices(report: Report) -> list[Appendix]:
    """The report's appendices: A, findings the distribution fixed; B, suppressed findings."""
    return [
        Appendix(
            "appendix-distribution",
            "Appendix A: fixed by the distribution or not affected",
            "Findings that version matching alone would report, but the distribution's security "
            "tracker says are fixed in (or do not affect) the detected package build.",
            backport_appendix(report),
        ),
        Appendix(
            "appendix-suppressed",
            "Appendix B: suppressed findings",
            "Findings excluded from the report by a suppression rule, with the rule.",
            suppressed_appendix(report),
        ),
    ]


def product_only_note(svc: ServiceReport) -> str:
    """`version unknown: N CVEs exist for this product`, or '' when there are none."""
    n = len(svc.product_only)
    if not n:
        return ""
    return f"version unknown: {n} CVE{'s' if n != 1 else ''} exist for this product"


def changes_title(report: Report) -> str:
    """`Changes since 2026-11-01 10:00:00 UTC` (or since the earlier run's id)."""
    ch = report.changes
    if ch is None:
        return ""
    if ch.since is not None:
        return f"Changes since {fmt_datetime(ch.since)}"
    return f"Changes since run {one_line(ch.since_run)}"


def vulndb_lines(report: Report) -> list[str]:
    """The vulnerability data the report used, or the note saying none was available."""
    db = report.vulndb
    if db is None:
        return [one_line(report.vulndb_note or "No vulnerability database was available.")]
    lines = [f"Database: {db.path}", f"CVE records: {db.cve_count}"]
    if db.built_at:
        lines.append(f"Built: {db.built_at}")
    lines.extend(f"Source: {name}, data of {date}" for name, date in db.sources)
    if report.vulndb_note:
        lines.append(report.vulndb_note)
    return [one_line(line) for line in lines]


def scan_lines(report: Report) -> list[tuple[str, str]]:
    """(label, value) pairs describing what was scanned, how and when."""
    scan = report.scan
    rows: list[tuple[str, str]] = [
        ("Targets", " ".join(scan.targets) or "(not recorded)"),
    ]
    if scan.excluded:
        rows.append(("Excluded", " ".join(scan.excluded)))
    for cmd in scan.nmap_commands or ("(not recorded)",):
        rows.append(("Nmap command", cmd))
    if scan.nmap_version:
        rows.append(("Nmap version", scan.nmap_version))
    if scan.profile:
        rows.append(("Profile", scan.profile))
    if scan.ports:
        rows.append(("Ports", scan.ports))
    rows.append(("Start", fmt_datetime(scan.start)))
    rows.append(("End", fmt_datetime(scan.end)))
    rows.append(("Hosts up", str(scan.hosts_up)))
    rows.append(("Hosts down", str(scan.hosts_down)))
    if scan.run_id:
        rows.append(("Run", scan.run_id))
    rows.extend(("Not checked", target) for target in scan.incomplete_targets)
    rows.extend(("Warning", warning) for warning in scan.warnings)
    rows.extend(("Nmap XML", path) for path in scan.xml_files)
    return [(label, one_line(value)) for label, value in rows]


def utc_z(value: datetime) -> str:
    """RFC 3339 in UTC with `Z`, as SARIF and CycloneDX date-times ask (naive values are UTC)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def tool_version() -> str:
    """flan's installed version, for the tool entries of machine formats."""
    try:
        return version("flanscan")
    except PackageNotFoundError:  # running from a source tree without metadata
        return "0"
