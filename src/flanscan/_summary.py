"""The terminal summary printed after `flan scan`, `flan report` and `flan merge`: what to fix,
worst first, in lines that fit an 80-column terminal.

Per vulnerable service (the report's order: worst first): its open CVEs by severity, the
count of every status, the CISA KEV entries, where it runs and the fix; then one total line.
Text from scanned hosts and feeds is made one line of printable characters (no terminal
escape sequence from a banner reaches the terminal).
"""

from __future__ import annotations

import textwrap
from collections import Counter

from flanscan._model import FindingStatus, Report, ServiceReport, Severity
from flanscan._remediation import remediation_of
from flanscan._render._common import location_label, one_line, service_title

WIDTH = 80
_MAX_SERVICES = 20  # the rest is counted: the full list is the report's job
_MAX_LOCATIONS = 4
_SEVERITIES = [s for s in sorted(Severity, reverse=True)]


def _wrap(label: str, text: str, width: int) -> list[str]:
    head = f"  {label:<7}"
    return textwrap.wrap(
        text,
        width=width,
        initial_indent=head,
        subsequent_indent=" " * len(head),
        break_on_hyphens=False,
        break_long_words=True,
    )


def _cves(n: int) -> str:
    return f"{n} CVE" if n == 1 else f"{n} CVEs"


def _by_severity(counts: Counter[Severity]) -> str:
    return ", ".join(f"{counts[s]} {s.label}" for s in _SEVERITIES if counts[s])


def _service_lines(svc: ServiceReport, width: int) -> list[str]:
    worst = svc.worst_severity
    title = service_title(svc)
    if svc.name and svc.name not in title:
        title += f" ({one_line(svc.name)})"
    head = f"{(worst.label if worst is not None else 'none').upper():<8} {title}"
    lines = textwrap.wrap(head, width=width, subsequent_indent=" " * 9) or [head]

    open_ids: dict[str, Severity] = {}
    status_ids: dict[FindingStatus, set[str]] = {}
    kev: set[str] = set()
    for sf in svc.findings:
        f = sf.finding
        status_ids.setdefault(f.status, set()).add(f.id)
        if f.status.is_open:
            open_ids[f.id] = f.severity
            if f.vulnerability.kev is not None:
                kev.add(f.id)
    severity_text = _by_severity(Counter(open_ids.values()))
    lines += _wrap("open", f"{_cves(len(open_ids))}: {severity_text}", width)
    statuses = "; ".join(
        f"{len(status_ids[s])} {s.label}" for s in FindingStatus if s in status_ids
    )
    lines += _wrap("status", statuses, width)
    if kev:
        lines += _wrap("KEV", ", ".join(one_line(k) for k in sorted(kev)), width)
    shown = [location_label(loc) for loc in svc.locations[:_MAX_LOCATIONS]]
    more = len(svc.locations) - len(shown)
    where = ", ".join(shown) + (f" and {more} more" if more > 0 else "")
    lines += _wrap("at", where, width)
    lines += _wrap("fix", one_line(remediation_of(svc).text), width)
    return lines


def total_line(report: Report) -> str:
    """One line: vulnerable services, open CVEs by severity, KEV entries, hosts."""
    vulnerable = [s for s in report.services if s.open_findings]
    severities: dict[tuple[int, str], Severity] = {}
    kev: set[str] = set()
    for n, svc in enumerate(vulnerable):
        for sf in svc.open_findings:
            severities[(n, sf.finding.id)] = sf.finding.severity
            if sf.finding.vulnerability.kev is not None:
                kev.add(sf.finding.id)
    counts = Counter(severities.values())
    text = (
        f"{len(vulnerable)} of {len(report.services)} services vulnerable, on "
        f"{len(report.hosts)} host{'' if len(report.hosts) == 1 else 's'}"
    )
    if vulnerable:
        text += f"; {_cves(len(severities))} open ({_by_severity(counts)})"
    if kev:
        text += f"; {len(kev)} in CISA KEV"
    if report.vulndb is None:
        text += "; no vulnerability data used"
    return text


def render_summary(report: Report, *, width: int = WIDTH) -> str:
    """The terminal summary of `report` (lines at most `width` columns, ending in the total)."""
    vulnerable = [s for s in report.services if s.open_findings]
    lines: list[str] = []
    for svc in vulnerable[:_MAX_SERVICES]:
        lines += _service_lines(svc, width)
        lines.append("")
    if len(vulnerable) > _MAX_SERVICES:
        lines += [f"... and {len(vulnerable) - _MAX_SERVICES} more vulnerable services", ""]
    lines += textwrap.wrap("Total: " + total_line(report), width=width, subsequent_indent="  ")
    return "\n".join(lines) + "\n"


__all__ = ["WIDTH", "render_summary", "total_line"]
