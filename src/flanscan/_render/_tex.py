"""LaTeX report that compiles with pdflatex (base/recommended packages and lmodern only).

All text from the report goes through `escape_tex`: the ten LaTeX specials and the characters
T1 fonts print oddly become text commands; brackets are braced, so text after a line break or
an item is never read as an optional argument; control characters are dropped; Latin-1 letters
are kept (utf8 inputenc + T1 handle them) and any other non-ASCII character is transliterated,
because pdflatex stops on a Unicode character it has no definition for. Long unbroken tokens
(CPEs, hashes, hostile junk) get break points so that they cannot run off the page.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator, Sequence
from typing import TextIO

from flanscan._model import Location, Report, ServiceFinding, ServiceReport
from flanscan._render import _common as common

_TEX_MAP = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\textasciicircum{}",
    "_": r"\_",
    "%": r"\%",
    "~": r"\textasciitilde{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    '"': r"\textquotedbl{}",
    "[": "{[}",
    "]": "{]}",
    "-": "-{}",  # no -- / --- ligatures in host text
    "`": r"\textasciigrave{}",
    "'": r"\textquotesingle{}",
}
_SPECIAL = re.compile("[" + re.escape("".join(_TEX_MAP)) + "]")
_LONG_TOKEN = re.compile(r"\S{24,}")
_BREAK_EVERY = 16


def _fold(ch: str) -> str:
    # Latin-1 letters print with T1 fonts; everything else beyond ASCII is transliterated.
    if "\u00c0" <= ch <= "\u00ff" and ch not in "\u00d7\u00f7":
        return ch
    return common.ascii_fold(ch)


def _escape_chunk(text: str) -> str:
    if not text.isascii():
        text = "".join(ch if ch.isascii() else _fold(ch) for ch in text)
    return _SPECIAL.sub(lambda m: _TEX_MAP[m.group()], text)


def _escape_token(token: str) -> str:
    chunks = [token[i : i + _BREAK_EVERY] for i in range(0, len(token), _BREAK_EVERY)]
    return r"\allowbreak{}".join(_escape_chunk(c) for c in chunks)


def escape_tex(text: str | None) -> str:
    """Untrusted text as one paragraph-safe line of LaTeX text."""
    if not text:
        return ""
    text = common.one_line(text)
    out = []
    pos = 0
    for m in _LONG_TOKEN.finditer(text):
        out.append(_escape_chunk(text[pos : m.start()]))
        out.append(_escape_token(m.group()))
        pos = m.end()
    out.append(_escape_chunk(text[pos:]))
    return "".join(out)


PREAMBLE = r"""\documentclass[10pt,a4paper]{article}
\usepackage[T1]{fontenc}
\usepackage[utf8]{inputenc}
\usepackage{lmodern}
\usepackage{textcomp}
\usepackage[margin=16mm]{geometry}
\usepackage[table]{xcolor}
\usepackage{longtable}
\usepackage{array}
\definecolor{sevcritical}{HTML}{7B1FA2}
\definecolor{sevhigh}{HTML}{C62828}
\definecolor{sevmedium}{HTML}{B85C00}
\definecolor{sevlow}{HTML}{2E7D32}
\definecolor{sevnone}{HTML}{546E7A}
\definecolor{sevunknown}{HTML}{616161}
\newcommand{\sev}[2]{\colorbox{#1}{\textcolor{white}{\textbf{\footnotesize #2}}}}
\newcommand{\kev}[1]{\colorbox{black}{\textcolor{yellow}{\textbf{\footnotesize #1}}}}
\setlength{\parindent}{0pt}
\setlength{\parskip}{3pt}
\sloppy
\emergencystretch=3em
\title{Flan Scan report}
\date{}
\author{}
\begin{document}
"""


def _sev(label: str) -> str:
    return rf"\sev{{sev{label}}}{{{label}}}"


def _location_text(loc: Location) -> str:
    return escape_tex(common.location_label(loc))


def _locations(where: common.LocationText, locs: Sequence[Location]) -> str:
    # `where` makes each location's text once per report (see common.LocationText).
    return where.joined(locs)


def _finding(
    where: common.LocationText, svc: ServiceReport, sf: ServiceFinding, with_service: bool
) -> list[str]:
    f = sf.finding
    v = f.vulnerability
    facts = [escape_tex(common.fmt_score(v.cvss))]
    if v.kev is not None:
        facts.append(rf"\kev{{{escape_tex(common.fmt_kev(v.kev))}}}")
    if v.epss is not None:
        facts.append("EPSS " + escape_tex(common.fmt_epss(v)))
    if v.published:
        facts.append("published " + escape_tex(common.fmt_date(v.published)))
    if v.cwes:
        facts.append(escape_tex(common.fmt_cwes(v)))
    facts.append(r"\emph{" + escape_tex(common.status_cell(svc, sf)) + "}")
    head = rf"\textbf{{{escape_tex(v.id)}}} {_sev(f.severity.label)} "
    head += r" \textperiodcentered{} ".join(facts)
    lines = [r"\begin{minipage}{\linewidth}", head]
    if with_service:
        lines.append(r"\\ \textbf{Service:} " + escape_tex(common.service_title(svc)))
    url = common.vuln_url(v)
    if v.summary:
        lines.append(r"\\ " + escape_tex(v.summary))
    own = common.finding_locations(sf, svc)
    if own is not None:
        lines.append(r"\\ {\small At: " + _locations(where, own) + "}")
    if url:
        lines.append(r"\\ {\footnotesize\ttfamily " + escape_tex(url) + "}")
    ev = common.evidence_lines(f)
    if ev:
        lines.append(r"\\ {\footnotesize Evidence: " + "; ".join(escape_tex(e) for e in ev) + "}")
    lines += [r"\end{minipage}", r"\medskip", ""]
    return lines


def _service(where: common.LocationText, svc: ServiceReport) -> Iterator[str]:
    # A generator: one service's findings can run to hundreds of megabytes at fleet scale.
    worst = svc.worst_severity
    title = escape_tex(common.service_title(svc))
    yield rf"\subsection*{{{title} {_sev(worst.label) if worst else ''}}}"
    if svc.extrainfo:
        yield escape_tex(svc.extrainfo) + r"\par"
    if svc.cpes:
        yield r"{\small\ttfamily " + escape_tex(" ".join(svc.cpes)) + r"}\par"
    locations = _locations(where, svc.locations)
    yield rf"\textbf{{Locations ({len(svc.locations)}):}} {{\small {locations}}}\par"
    yield r"\textbf{Fix:} " + escape_tex(common.fix_text(svc)) + r"\par"
    yield r"\medskip"
    for sf in common.confirmed_findings(svc):
        yield from _finding(where, svc, sf, False)
    unconfirmed = common.unconfirmed_findings(svc)
    if unconfirmed:
        yield from (r"\textbf{" + escape_tex(common.UNCONFIRMED_NOTE) + r"}\par", r"\medskip")
    for sf in unconfirmed:
        yield from _finding(where, svc, sf, False)
    if svc.product_only:
        yield r"\emph{" + escape_tex(common.product_only_note(svc)) + r"}\par"


def _appendix(
    where: common.LocationText, title: str, intro: str, entries: list[common.AppendixEntry]
) -> Iterator[str]:
    yield from (rf"\section*{{{title}}}", escape_tex(intro) + r"\par", r"\medskip")
    if not entries:
        yield r"None.\par"
        return
    for e in entries:
        yield from _finding(where, e.service, e.item, True)


def _changes(report: Report) -> list[str]:
    ch = report.changes
    if ch is None:
        return []
    lines = [rf"\section*{{{escape_tex(common.changes_title(report))}}}"]
    if not ch.items:
        return [*lines, r"No changes.\par"]
    lines.append(r"\begin{itemize}")
    for item in ch.items:
        text = r"\textbf{" + escape_tex(common.CHANGE_LABELS.get(item.kind, item.kind.value)) + "}"
        if item.severity is not None:
            text += " " + _sev(item.severity.label)
        if item.vuln_id:
            text += " " + escape_tex(item.vuln_id)
        where = common.location_label(item.location) if item.location else item.address
        if where:
            text += r" {\small\ttfamily " + escape_tex(where) + "}"
        text += ": " + escape_tex(item.description)
        if item.old or item.new:
            text += rf" ({escape_tex(item.old)} $\rightarrow$ {escape_tex(item.new)})"
        lines.append(r"\item{} " + text)
    lines.append(r"\end{itemize}")
    return lines


def render_tex(report: Report) -> bytes:
    """The LaTeX report as UTF-8 bytes (what `write_tex` writes; compile with pdflatex)."""
    buffer = io.StringIO()
    write_tex(report, buffer)
    return buffer.getvalue().encode("utf-8")


def _service_items(where: common.LocationText, services: list[ServiceReport]) -> list[str]:
    lines = [r"\begin{itemize}"]
    for svc in services:
        text = r"\textbf{" + escape_tex(common.service_title(svc)) + "}"
        if svc.extrainfo:
            text += " (" + escape_tex(svc.extrainfo) + ")"
        if svc.cpes:
            text += r" {\small\ttfamily " + escape_tex(" ".join(svc.cpes)) + "}"
        if svc.product_only:
            text += r" \emph{" + escape_tex(common.product_only_note(svc)) + "}"
        text += r"\\ {\small " + _locations(where, svc.locations) + "}"
        lines.append(r"\item{} " + text)
    lines.append(r"\end{itemize}")
    return lines


def write_tex(report: Report, stream: TextIO) -> None:
    """Write the LaTeX report to `stream` as it is made (see common.Lines)."""
    where = common.LocationText(_location_text)
    vulnerable = list(common.vulnerable_services(report))
    others = list(common.other_services(report))
    out = common.Lines(stream, [PREAMBLE, r"\maketitle", r"\thispagestyle{empty}"])
    out.append(escape_tex(common.header_text(report)) + r"\par")
    if report.vulndb is None:
        out.append(
            r"\fbox{\parbox{0.95\linewidth}{"
            + escape_tex(common.vulndb_lines(report)[0])
            + "}}\\par"
        )
    out += _changes(report)
    out += [
        r"\section*{Summary}",
        r"{\footnotesize\begin{tabular}{lrrrrr}",
    ]
    statuses, by_severity = common.severity_by_status(report)
    out.append(
        r"\textbf{Severity} & "
        + " & ".join(r"\textbf{" + escape_tex(s) + "}" for s in statuses)
        + r" \\ \hline"
    )
    out += [
        _sev(label) + " & " + " & ".join(map(str, counts)) + r" \\" for label, counts in by_severity
    ]
    out += [
        r"\end{tabular}}\par",
        escape_tex("Findings per location; confirmed and unconfirmed ones are open.") + r"\par",
        r"\section*{Vulnerable services}",
    ]
    if not vulnerable:
        out.append(r"No service has a known open vulnerability.\par")
    for svc in vulnerable:
        out += _service(where, svc)
    out.append(r"\section*{Services with no known vulnerabilities}")
    if not others:
        out.append(r"None.\par")
    else:
        out += _service_items(where, others)
    manual = list(common.manual_check_services(report))
    if manual:
        out.append(r"\section*{Needs a manual version check}")
        out.append(escape_tex(common.MANUAL_CHECK_NOTE) + r"\par")
        out += _service_items(where, manual)
    if report.list_product_only:
        for i, svc in enumerate(s for s in report.services if s.product_only):
            if i == 0:
                out += [
                    r"\subsection*{Product-only matches (version unknown)}",
                    r"Nmap did not identify these services' versions; these CVEs exist for the "
                    r"product and may or may not apply.\par\medskip",
                ]
            out.append(r"\textbf{" + escape_tex(common.service_title(svc)) + r"}\par\medskip")
            for sf in svc.product_only:
                out += _finding(where, svc, sf, False)
    out += [r"\section*{Scan}", r"\begin{description}"]
    out += [
        rf"\item[{escape_tex(label)}] {escape_tex(value)}"
        for label, value in common.scan_lines(report)
    ]
    out += [r"\end{description}", rf"\subsection*{{Hosts up ({len(report.hosts)})}}"]
    if report.hosts:
        out += [
            r"{\small\begin{longtable}{>{\ttfamily}p{0.3\linewidth}p{0.45\linewidth}lr}",
            r"\textbf{Address} & \textbf{Host names} & \textbf{Status} & \textbf{Open ports}"
            r" \\ \hline\endhead",
        ]
        out += [
            f"{escape_tex(h.address)} & {escape_tex(', '.join(h.hostnames))} & "
            f"{escape_tex(h.status)} & {h.open_ports} \\\\"
            for h in report.hosts
        ]
        out.append(r"\end{longtable}}")
    out.append(r"\section*{Vulnerability data}")
    out += [escape_tex(line) + r"\par" for line in common.vulndb_lines(report)]
    if report.notes:
        out += [r"\subsection*{Notes}", r"\begin{itemize}"]
        out += [r"\item{} " + escape_tex(note) for note in report.notes]
        out.append(r"\end{itemize}")
    for appendix in common.appendices(report):
        out += _appendix(where, appendix.title, appendix.intro, appendix.entries)
    out.append(r"\end{document}")
    out.flush()
    stream.write("\n")
