"""Markdown report (CommonMark + GitHub tables), with host text escaped so it stays text.

Every piece of text from the report goes through `escape_md`: one line (no newline can start a
block), and every Markdown/HTML metacharacter backslash-escaped, so a product name like
`[x](javascript:..)`, `<script>` or a `|` inside a table cell is shown literally. Links are
written only for http(s) URLs that passed `safe_url`, in the `<...>` form.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import TextIO

from flanscan._model import Finding, Location, Report, ServiceFinding, ServiceReport, Vulnerability
from flanscan._render import _common as common

# CommonMark lets any ASCII punctuation be backslash-escaped; only the characters that can start
# markup inside a line are: emphasis, code, links and images (`[`: a `(` or `!` without it is
# plain), raw HTML, entities, table cells, strikethrough, math in some renderers. Fewer
# backslashes keep the file readable as plain text; tokens (addresses, versions, CPEs) go in
# code spans instead (`code_md`).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&$])")
# At the start of a line: headings, block quotes, list items, thematic breaks, setext underlines.
_MD_LINE_START = re.compile(r"^(>|[#+=-](?=\s|$)|\d+[.)](?=\s|$))")


def escape_md(text: str | None) -> str:
    """Untrusted text as one line of literal Markdown text."""
    if not text:
        return ""
    escaped = _MD_SPECIAL.sub(r"\\\1", common.one_line(text))
    return _MD_LINE_START.sub(lambda m: m[0][:-1] + "\\" + m[0][-1], escaped)


def code_md(text: str | None) -> str:
    """Untrusted text as one code span: literal, no backslashes but before a `|` (which would
    end a table cell even inside a span, as GitHub tables read it)."""
    if not text:
        return ""
    value = common.one_line(text).replace("|", "\\|")
    fence = "`" * (max((len(r) for r in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{fence}{pad}{value}{pad}{fence}"


def _link(v: Vulnerability) -> str:
    url = common.vuln_url(v)
    if url is None:
        return escape_md(v.id)
    # safe_url admits no spaces, quotes or angle brackets, so <url> cannot be closed early.
    return f"[{escape_md(v.id)}](<{url}>)"


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(header: Sequence[str], rows: Iterable[Iterable[str]]) -> Iterator[str]:
    # A generator: a fleet's table runs to hundreds of megabytes, written row by row.
    yield _row(header)
    yield _row("---" for _ in header)
    yield from (_row(r) for r in rows)
    yield ""


def _location_text(loc: Location) -> str:
    return code_md(common.location_label(loc))


def _locations(where: common.LocationText, locs: Sequence[Location]) -> str:
    # `where` makes each location's text once per report (see common.LocationText).
    return where.joined(locs)


_FINDING_HEADER = (
    "Vulnerability",
    "Severity",
    "CVSS",
    "KEV",
    "EPSS",
    "Published",
    "CWE",
    "Status",
    "Summary",
)


def _finding_cells(
    where: common.LocationText, svc: ServiceReport, sf: ServiceFinding, with_service: bool
) -> list[str]:
    f: Finding = sf.finding
    v = f.vulnerability
    summary = escape_md(v.summary)
    if with_service:
        summary = f"**{escape_md(common.service_title(svc))}**: {summary}"
    own = common.finding_locations(sf, svc)
    if own is not None:
        summary += f" (at {_locations(where, own)})"
    return [
        _link(v),
        f"**{f.severity.label}**",
        escape_md(common.fmt_score(v.cvss)),
        escape_md(common.fmt_kev(v.kev)),
        escape_md(common.fmt_epss(v)),
        escape_md(common.fmt_date(v.published)),
        escape_md(common.fmt_cwes(v)),
        escape_md(common.status_cell(svc, sf)),
        summary,
    ]


def _evidence(items: Iterable[tuple[ServiceReport, ServiceFinding]]) -> list[str]:
    lines = []
    for _svc, sf in items:
        ev = common.evidence_lines(sf.finding)
        if ev:
            lines.append(f"- {escape_md(sf.finding.id)}: " + "; ".join(escape_md(e) for e in ev))
    if lines:
        lines = ["Evidence:", "", *lines, ""]
    return lines


def _service_row(where: common.LocationText, svc: ServiceReport, *, extrainfo: bool) -> list[str]:
    """A service without open findings as a table row: its title (with Nmap's extra info where
    asked), CPEs and locations."""
    title = escape_md(common.service_title(svc))
    if extrainfo and svc.extrainfo:
        title += f" ({escape_md(svc.extrainfo)})"
    if svc.product_only:
        title += f"; _{escape_md(common.product_only_note(svc))}_"
    return [title, ", ".join(code_md(c) for c in svc.cpes), _locations(where, svc.locations)]


def _service_section(where: common.LocationText, svc: ServiceReport) -> Iterator[str]:
    worst = svc.worst_severity
    rating = worst.label if worst is not None else "none"
    yield f"### {escape_md(common.service_title(svc))} ({rating})"
    yield ""
    if svc.extrainfo:
        yield from (escape_md(svc.extrainfo), "")
    if svc.cpes:
        yield from ("CPE: " + ", ".join(code_md(c) for c in svc.cpes), "")
    yield from (f"Locations ({len(svc.locations)}): {_locations(where, svc.locations)}", "")
    yield from (f"**Fix:** {escape_md(common.fix_text(svc))}", "")
    for items, intro in (
        (common.confirmed_findings(svc), None),
        (common.unconfirmed_findings(svc), common.UNCONFIRMED_NOTE),
    ):
        if not items:
            continue
        if intro:
            yield from (f"**{escape_md(intro)}**", "")
        yield from _table(_FINDING_HEADER, (_finding_cells(where, svc, sf, False) for sf in items))
        yield from _evidence((svc, sf) for sf in items)
    if svc.product_only:
        yield from (f"_{escape_md(common.product_only_note(svc))}_", "")


def _appendix(
    where: common.LocationText, title: str, intro: str, entries: list[common.AppendixEntry]
) -> Iterator[str]:
    yield from (f"## {title}", "", intro, "")
    if not entries:
        yield from ("None.", "")
        return
    yield from _table(
        _FINDING_HEADER, (_finding_cells(where, e.service, e.item, True) for e in entries)
    )
    yield from _evidence((e.service, e.item) for e in entries)


def _product_only(where: common.LocationText, report: Report) -> Iterator[str]:
    first = True
    for svc in report.services:
        if not svc.product_only:
            continue
        if first:
            first = False
            yield from (
                "### Product-only matches (version unknown)",
                "",
                "Nmap did not identify these services' versions; these CVEs exist for the "
                "product and may or may not apply.",
                "",
            )
        yield from (f"**{escape_md(common.service_title(svc))}**", "")
        yield from _table(
            _FINDING_HEADER, (_finding_cells(where, svc, sf, False) for sf in svc.product_only)
        )


def _changes(report: Report) -> list[str]:
    ch = report.changes
    if ch is None:
        return []
    lines = [f"## {escape_md(common.changes_title(report))}", ""]
    if not ch.items:
        return [*lines, "No changes.", ""]
    rows = []
    for item in ch.items:
        where = common.location_label(item.location) if item.location else item.address or ""
        change = ""
        if item.old or item.new:
            change = f"{code_md(item.old) or '-'} → {code_md(item.new) or '-'}"
        rows.append(
            [
                common.CHANGE_LABELS.get(item.kind, item.kind.value),
                item.severity.label if item.severity is not None else "",
                escape_md(item.vuln_id),
                code_md(where),
                escape_md(item.description),
                change,
            ]
        )
    return lines + list(
        _table(("Change", "Severity", "Vulnerability", "Where", "Description", "Was → now"), rows)
    )


def render_md(report: Report) -> bytes:
    """The Markdown report as UTF-8 bytes (what `write_md` writes)."""
    buffer = io.StringIO()
    write_md(report, buffer)
    return buffer.getvalue().encode("utf-8")


def write_md(report: Report, stream: TextIO) -> None:
    """Write the Markdown report to `stream` as it is made (see common.Lines)."""
    where = common.LocationText(_location_text)
    vulnerable = list(common.vulnerable_services(report))
    others = list(common.other_services(report))
    out = common.Lines(stream)
    out += [
        "# Flan Scan report",
        "",
        escape_md(common.header_text(report)),
        "",
    ]
    if report.vulndb is None:
        out += [f"> **Note:** {escape_md(common.vulndb_lines(report)[0])}", ""]
    out += _changes(report)
    out += ["## Summary", ""]
    statuses, by_severity = common.severity_by_status(report)
    out += _table(
        ("Severity", *statuses),
        ([label, *map(str, counts)] for label, counts in by_severity),
    )
    out += ["Findings per location; confirmed and unconfirmed ones are open.", ""]
    out += ["## Vulnerable services", ""]
    if not vulnerable:
        out += ["No service has a known open vulnerability.", ""]
    for svc in vulnerable:
        out += _service_section(where, svc)
    out += ["## Services with no known vulnerabilities", ""]
    if not others:
        out += ["None.", ""]
    else:
        out += _table(
            ("Service", "CPE", "Locations"),
            (_service_row(where, svc, extrainfo=True) for svc in others),
        )
    manual = list(common.manual_check_services(report))
    if manual:
        out += ["## Needs a manual version check", "", escape_md(common.MANUAL_CHECK_NOTE), ""]
        out += _table(
            ("Service", "CPE", "Locations"),
            (_service_row(where, svc, extrainfo=False) for svc in manual),
        )
    if report.list_product_only:
        out += _product_only(where, report)
    out += ["## Scan", ""]
    out += [f"- **{label}:** {escape_md(value)}" for label, value in common.scan_lines(report)]
    out += ["", f"### Hosts up ({len(report.hosts)})", ""]
    out += _table(
        ("Address", "Host names", "Status", "Open ports"),
        (
            [
                escape_md(h.address),
                escape_md(", ".join(h.hostnames)),
                escape_md(h.status),
                str(h.open_ports),
            ]
            for h in report.hosts
        ),
    )
    out += ["## Vulnerability data", ""]
    out += [f"- {escape_md(line)}" for line in common.vulndb_lines(report)]
    out.append("")
    if report.notes:
        out += ["## Notes", ""]
        out += [f"- {escape_md(note)}" for note in report.notes]
        out.append("")
    for appendix in common.appendices(report):
        out += _appendix(where, appendix.title, appendix.intro, appendix.entries)
    out.flush()
