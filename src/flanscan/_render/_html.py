"""HTML report: one self-contained, printable file (inline CSS, inline SVG chart, tiny inline JS).

Rendered with Jinja2 with autoescaping on for every expression. Host text only ever lands in
element text or quoted attributes; the inline <style> and <script> are static package files, and
a Content-Security-Policy with their hashes stops any other script or style from running even
if something slipped through. The same template with `pdf=True` gives the print variant that
WeasyPrint turns into the PDF (no tables for long lists: WeasyPrint lays tables out slowly).
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from types import SimpleNamespace
from typing import Any, TextIO

import jinja2
from markupsafe import Markup

from flanscan._model import ChangeKind, HostSummary, Location, Report
from flanscan._render import _common as common

# Long lists (locations, hosts) are printed as flowing text in paragraphs of this many items:
# WeasyPrint re-lays out the rest of a text run for every line it breaks, so long runs cost
# quadratic time, while many small paragraphs cost a box each.
FLOW_BATCH = 40
# WeasyPrint needs about a millisecond per line of text, so a complete PDF of a 10,000-host scan
# would take minutes. The PDF lists at most this many locations per list and hosts, and says how
# many more there are; the HTML, JSON, CSV, Markdown and TeX reports are always complete.
PDF_MAX_LOCATIONS = 50  # per service
PDF_MAX_FINDING_LOCATIONS = 12  # per finding that applies to only some of its service's locations
PDF_MAX_HOSTS = 500


def _finalize(value: Any) -> Any:
    # Applied to every {{ expression }} before autoescaping: None prints as nothing, and host
    # text loses control and bidi-override characters. Markup (macros, static CSS/JS) is ours.
    if value is None:
        return ""
    if isinstance(value, str) and not isinstance(value, Markup):
        return common.clean(value)
    return value


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("flanscan", "templates"),
        autoescape=True,
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )


@functools.cache
def _static(name: str) -> str:
    text = resources.files("flanscan").joinpath("templates", name).read_text(encoding="utf-8")
    # Static files are ours, but make sure they can never close their own element.
    if "</" in text:
        raise RuntimeError(f"templates/{name} must not contain '</'")
    return text


def _severity_css() -> str:
    """Badge and service-border colours from common.SEVERITY_COLOURS, the chart's own, so the
    screen, print and PDF styles cannot drift from it."""
    badges = [f".sev-{name} {{ background: {c}; }}" for name, c in common.SEVERITY_COLOURS.items()]
    borders = [
        f".service.worst-{name} {{ border-left-color: {common.SEVERITY_COLOURS[name]}; }}"
        for name in ("critical", "high", "medium", "low")
    ]
    return "\n".join([*badges, *borders, ""])


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _csp(css: str, js: str) -> str:
    # Nothing may load from anywhere; only our own inline style and script (by hash) apply.
    return (
        f"default-src 'none'; style-src {_sha256(css)}; script-src {_sha256(js)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )


def join_locations(locs: Iterable[Location]) -> str:
    """Locations as one comma-separated line (escaped later by the template)."""
    return ", ".join(common.location_label(loc) for loc in locs)


def join_hosts(hosts: Iterable[HostSummary]) -> str:
    """Hosts as one line: `address (names) N open`, separated by ` · `."""
    parts = []
    for host in hosts:
        text = host.address
        if host.hostnames:
            text += " (" + ", ".join(host.hostnames) + ")"
        parts.append(common.one_line(f"{text} {host.open_ports} open"))
    return " · ".join(parts)


def change_label(kind: ChangeKind) -> str:
    return common.CHANGE_LABELS.get(kind, kind.value)


_HELPERS = SimpleNamespace(
    **{name: getattr(common, name) for name in common.__dict__ if not name.startswith("_")},
    join_locations=join_locations,
    join_hosts=join_hosts,
    change_label=change_label,
)


def _helpers() -> SimpleNamespace:
    """The template's helpers for one render: location texts made once per location (a
    location is listed under every finding that applies to it)."""
    where = common.LocationText(common.location_label)
    helpers = {**vars(_HELPERS), "location_label": where.one, "join_locations": where.joined}
    return SimpleNamespace(**helpers)


@dataclass(frozen=True)
class _Bar:
    label: str
    count: int
    width: int
    y: int
    colour: str


def _chart(counts: dict[str, int]) -> SimpleNamespace:
    top = max(counts.values(), default=0) or 1
    bars = [
        _Bar(label, count, round(300 * count / top), 4 + i * 24, common.SEVERITY_COLOURS[label])
        for i, (label, count) in enumerate(counts.items())
    ]
    return SimpleNamespace(bars=bars, width=440, height=8 + 24 * len(bars))


def _render(report: Report, *, pdf: bool) -> bytes:
    # Streaming the template keeps one copy of the text plus its encoding, not many slices.
    return "".join(_generate(report, pdf=pdf)).encode("utf-8")


def _generate(report: Report, *, pdf: bool) -> Iterator[str]:
    css = _severity_css() + _static("report-pdf.css" if pdf else "report.css")
    js = _static("report.js")
    counts = report.summary()
    template = _environment().get_template("report.html.j2")
    context = {
        "report": report,
        "pdf": pdf,
        "flow_batch": FLOW_BATCH,
        "pdf_cap": PDF_MAX_LOCATIONS,
        "pdf_finding_cap": PDF_MAX_FINDING_LOCATIONS,
        "pdf_host_cap": PDF_MAX_HOSTS,
        "h": _helpers(),
        "css": Markup(css),  # noqa: S704 - static package file, checked by _static
        "js": Markup(js),  # noqa: S704 - static package file, checked by _static
        "csp": _csp(css, js),
        "counts": counts,
        "chart": _chart(counts),
        "by_status": common.severity_by_status(report),
        "vulnerable": list(common.vulnerable_services(report)),
        "others": list(common.other_services(report)),
        "manual": list(common.manual_check_services(report)),
        "appendices": common.appendices(report),
    }
    return template.generate(context)


def write_html(report: Report, stream: TextIO) -> None:
    """Write the HTML report to `stream` as the template makes it."""
    for chunk in _generate(report, pdf=False):
        stream.write(chunk)


def render_html(report: Report) -> bytes:
    """The self-contained HTML report as UTF-8 bytes."""
    return _render(report, pdf=False)


def render_print_html(report: Report) -> str:
    """The print variant of the HTML report that the PDF renderer lays out."""
    return _render(report, pdf=True).decode("utf-8")
