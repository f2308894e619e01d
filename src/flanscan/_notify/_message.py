"""What an alert says: the new findings (and new KEV entries) of one run, grouped by
vulnerability, with links. One message per run, whatever the number of findings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from flanscan._history import IN_KEV
from flanscan._model import (
    ChangeKind,
    ChangeSummary,
    Finding,
    FindingStatus,
    Report,
    ServiceReport,
    Severity,
)

MAX_LOCATIONS_SHOWN = 10  # per vulnerability, in text; the JSON webhook gets them all
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def clean(text: str | None, limit: int = 200) -> str:
    """Host-supplied text made safe for one line: no control characters, bounded length."""
    if not text:
        return ""
    text = _CONTROL.sub(" ", text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def vuln_link(vuln_id: str, url: str | None) -> str:
    if url and url.startswith(("https://", "http://")):
        return url
    if vuln_id.upper().startswith("CVE-"):
        return f"https://nvd.nist.gov/vuln/detail/{vuln_id}"
    return f"https://vulners.com/search?query={vuln_id}"


@dataclass(frozen=True)
class AlertEntry:
    """One vulnerability newly present (or newly in KEV) at one or more locations."""

    vuln_id: str
    severity: Severity
    kev: bool
    why: str  # "new" | "now in KEV" | "open again"
    service: str  # banner, cleaned
    locations: tuple[str, ...]
    link: str
    summary: str


@dataclass(frozen=True)
class Alert:
    run_id: str | None
    targets: tuple[str, ...]
    since_run: str
    since: datetime | None
    entries: tuple[AlertEntry, ...]

    @property
    def new_kev(self) -> int:
        return sum(1 for e in self.entries if e.kev)

    def counts(self) -> dict[str, int]:
        """Locations per severity label, highest first, only non-zero."""
        out: dict[str, int] = {}
        for sev in sorted(Severity, reverse=True):
            n = sum(len(e.locations) for e in self.entries if e.severity == sev)
            if n:
                out[sev.label] = n
        return out

    @property
    def title(self) -> str:
        total = sum(len(e.locations) for e in self.entries)
        parts = ", ".join(f"{n} {label}" for label, n in self.counts().items())
        text = f"Flan Scan: {total} new finding{'s' if total != 1 else ''} ({parts})"
        if self.new_kev:
            text += f", {self.new_kev} in CISA KEV"
        where = clean(", ".join(self.targets), 80)
        return f"{text} on {where}" if where else text

    def text(self) -> str:
        """Plain-text body (email, Slack fallback)."""
        lines = [self.title, ""]
        since = self.since.strftime("%Y-%m-%d %H:%M UTC") if self.since else "the previous run"
        lines.append(
            f"Run {self.run_id or '(unrecorded)'}: changes since {since} ({self.since_run})."
        )
        lines.append("")
        for e in self.entries:
            kev = ", in CISA KEV" if e.kev else ""
            lines.append(f"{e.vuln_id} ({e.severity.label}{kev}, {e.why}) {e.service}".rstrip())
            shown = e.locations[:MAX_LOCATIONS_SHOWN]
            more = len(e.locations) - len(shown)
            lines.append("  " + ", ".join(shown) + (f" and {more} more" if more > 0 else ""))
            if e.summary:
                lines.append("  " + e.summary)
            lines.append("  " + e.link)
        return "\n".join(lines) + "\n"

    def as_json(self) -> dict[str, object]:
        """Payload of the generic JSON webhook."""
        return {
            "source": "flanscan",
            "title": self.title,
            "run_id": self.run_id,
            "targets": list(self.targets),
            "since_run": self.since_run,
            "since": self.since.isoformat() if self.since else None,
            "counts": self.counts(),
            "new_kev": self.new_kev,
            "findings": [
                {
                    "id": e.vuln_id,
                    "severity": e.severity.label,
                    "kev": e.kev,
                    "why": e.why,
                    "service": e.service,
                    "locations": list(e.locations),
                    "link": e.link,
                    "summary": e.summary,
                }
                for e in self.entries
            ],
        }


def _index(report: Report) -> dict[tuple[str, str, int, str], tuple[Finding, ServiceReport]]:
    index: dict[tuple[str, str, int, str], tuple[Finding, ServiceReport]] = {}
    for svc in report.services:
        for sf in svc.findings:
            for loc in sf.locations:
                index.setdefault(
                    (sf.finding.id, loc.address, loc.port, loc.protocol), (sf.finding, svc)
                )
    return index


def build_alert(report: Report, changes: ChangeSummary, min_severity: Severity) -> Alert | None:
    """The alert for this run, or None when nothing new reaches `min_severity` and no finding
    newly entered KEV. Only open findings count (suppressed ones were accepted)."""
    index = _index(report)
    grouped: dict[tuple[str, str], list[str]] = {}
    meta: dict[tuple[str, str], tuple[Severity, bool, str, str, str]] = {}
    for item in changes.items:
        if item.location is None or item.vuln_id is None:
            continue
        loc = item.location
        found = index.get((item.vuln_id, loc.address, loc.port, loc.protocol))
        if found is None:
            continue
        finding, svc = found
        if not finding.status.is_open:
            continue
        kev = finding.vulnerability.kev is not None
        severe = finding.severity >= min_severity
        if item.kind is ChangeKind.NEW_FINDING and (severe or kev):
            why = "new"
        elif item.kind is ChangeKind.STATUS_CHANGED and item.new == IN_KEV:
            why = "now in KEV"
        elif (
            item.kind is ChangeKind.STATUS_CHANGED
            and item.old == FindingStatus.SUPPRESSED.label
            and (severe or kev)
        ):
            why = "open again"
        else:
            continue
        banner = " ".join(p for p in (svc.product, svc.version) if p) or (svc.name or "")
        key = (item.vuln_id, why)
        grouped.setdefault(key, []).append(loc.label)
        vuln = finding.vulnerability
        meta[key] = (
            finding.severity,
            kev,
            clean(banner, 80),
            vuln_link(vuln.id, vuln.url),
            clean(vuln.summary, 300),
        )
    if not grouped:
        return None
    entries = [
        AlertEntry(vid, meta[(vid, why)][0], meta[(vid, why)][1], why, meta[(vid, why)][2],
                   tuple(dict.fromkeys(locs)), meta[(vid, why)][3], meta[(vid, why)][4])
        for (vid, why), locs in grouped.items()
    ]  # fmt: skip
    entries.sort(key=lambda e: (not e.kev, -e.severity, e.vuln_id))
    return Alert(
        run_id=report.scan.run_id,
        targets=tuple(report.scan.targets),
        since_run=changes.since_run,
        since=changes.since,
        entries=tuple(entries),
    )
