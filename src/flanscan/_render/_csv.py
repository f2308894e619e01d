"""CSV report: one row per finding and location, plus one row per location with no finding.

Every finding of every status is a row (the `status` column says which are open), so the file is
the complete list a spreadsheet can filter. A location where no finding applies gets one row with
the vulnerability columns empty, so every open port scanned appears at least once. Product-only
matches (version unknown) are rows (confidence `product-only`) only when the report lists them
(`Report.list_product_only`); the JSON report always lists them.

Cells are neutralised against spreadsheet formula injection (OWASP "CSV Injection"): a text cell
starting with = + - @ tab or CR gets a leading apostrophe. Text is one line per cell.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from functools import partial
from typing import TextIO

from flanscan._exposure import exposure_of
from flanscan._model import Location, Report, ServiceFinding, ServiceReport, Vulnerability
from flanscan._remediation import remediation_of
from flanscan._render import _common as common

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")

COLUMNS = (
    "service",
    "product",
    "version",
    "cpe",
    "address",
    "hostnames",
    "port",
    "protocol",
    "vulnerability",
    "severity",
    "cvss",
    "cvss_version",
    "status",
    "match",
    "match_source",
    "confidence",
    "exposure",
    "kev_date_added",
    "kev_known_ransomware_use",
    "epss",
    "epss_percentile",
    "published",
    "cwe",
    "summary",
    "url",
    "evidence",
    "fix",
)


def neutralise(text: str) -> str:
    """One line of untrusted text that no spreadsheet will evaluate as a formula."""
    text = common.one_line(text)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def _num(value: float | None, fmt: str) -> str:
    return format(value, fmt) if value is not None else ""


def _service_cells(svc: ServiceReport, text: Callable[[str], str] = neutralise) -> list[str]:
    return [
        text(svc.name or ""),
        text(svc.product or ""),
        text(svc.version or ""),
        text(" ".join(svc.cpes)),
    ]


def _address_cells(loc: Location, text: Callable[[str], str] = neutralise) -> list[str]:
    return [text(loc.address), text(" ".join(loc.hostnames)), str(loc.port), text(loc.protocol)]


def _location_cells(svc: ServiceReport, loc: Location) -> list[str]:
    return _service_cells(svc) + _address_cells(loc)


def _vulnerability_cells(v: Vulnerability, text: Callable[[str], str] = neutralise) -> list[str]:
    """The cells that depend on the vulnerability alone (id, cvss, exposure .. url), in column
    order; `_finding_cells` puts the finding's own cells between them."""
    kev = v.kev
    ransomware = ""
    if kev is not None and kev.known_ransomware_use is not None:
        ransomware = "known" if kev.known_ransomware_use else "unknown"
    return [
        text(v.id),
        _num(v.cvss.score if v.cvss else None, ".1f"),
        text(v.cvss.version) if v.cvss else "",
        exposure_of(v).exposure.value,
        text(common.fmt_date(kev.date_added)) if kev else "",
        ransomware,
        _num(v.epss, ".5f"),
        _num(v.epss_percentile, ".5f"),
        text(common.fmt_date(v.published)),
        text(" ".join(v.cwes)),
        text(v.summary or ""),
        text(common.vuln_url(v) or ""),
    ]


def _finding_cells(
    sf: ServiceFinding,
    text: Callable[[str], str] = neutralise,
    of_vulnerability: Callable[[Vulnerability], list[str]] = _vulnerability_cells,
) -> list[str]:
    f = sf.finding
    vid, cvss, cvss_version, *rest = of_vulnerability(f.vulnerability)
    return [
        vid,
        f.severity.label,
        cvss,
        cvss_version,
        f.status.value,
        f.confidence.value,
        f.match_source.value,
        f.source_confidence.value,
        *rest,
        text(" | ".join(common.evidence_lines(f))),
    ]


def _fix(svc: ServiceReport) -> list[str]:
    """The service's remediation, the last cell of each of its rows (empty: nothing to fix)."""
    remediation = remediation_of(svc)
    return [neutralise(remediation.text) if remediation.needed else ""]


_EMPTY_FINDING = [""] * (len(COLUMNS) - 9)  # all but the location cells and the fix


def rows(report: Report) -> Iterator[list[str]]:
    """The CSV rows after the header, in the report's order."""
    for svc in report.services:
        fix = _fix(svc)
        covered: set[Location] = set()
        for sf in svc.findings:
            cells = _finding_cells(sf) + fix
            for loc in sf.locations:
                covered.add(loc)
                yield _location_cells(svc, loc) + cells
        # Product-only matches are rows only when the report lists them (--show-product-only).
        for sf in svc.product_only if report.list_product_only else ():
            cells = _finding_cells(sf) + fix
            for loc in sf.locations:
                covered.add(loc)
                yield _location_cells(svc, loc) + cells
        for loc in svc.locations:
            if loc not in covered:
                yield [*_location_cells(svc, loc), *_EMPTY_FINDING, *fix]


class _CellsText:
    """Cells as CSV text by the csv module itself, without a line end: a row is its location's
    cells and its finding's cells joined by a comma, each part made once (RFC 4180 quotes
    each field on its own, so the joined text is the row csv.writer would write)."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = csv.writer(self._buffer, lineterminator="")

    def __call__(self, cells: list[str]) -> str:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerow(cells)
        return self._buffer.getvalue()


class _Neutralised(dict[str, str]):
    """`neutralise` remembered per distinct text for one render: addresses, host names and
    service cells repeat on every row of a host or service, and a vulnerability's summary under
    every service it applies to; the regular expressions are most of the renderer's work."""

    def __missing__(self, text: str) -> str:
        value = self[text] = neutralise(text)
        return value


class _VulnerabilityCells:
    """Each vulnerability's own cells made once per render (it is listed under many services).
    Keys are object ids, so the instance keeps what it keyed alive and lives only while its
    report does."""

    def __init__(self, text: Callable[[str], str]) -> None:
        self._text = text
        self._cells: dict[int, tuple[Vulnerability, list[str]]] = {}

    def __call__(self, v: Vulnerability) -> list[str]:
        hit = self._cells.get(id(v))
        if hit is None:
            hit = self._cells[id(v)] = (v, _vulnerability_cells(v, self._text))
        return hit[1]


def _location_text(
    as_text: _CellsText, text: Callable[[str], str], service_text: str, loc: Location
) -> str:
    return service_text + as_text(_address_cells(loc, text))


def write_csv(report: Report, out: TextIO) -> None:
    """Write the CSV report (RFC 4180: comma, double quotes, CRLF) to `out` as a stream; the
    rows are those of `rows(report)`."""
    as_text = _CellsText()
    text = _Neutralised().__getitem__
    of_vulnerability = _VulnerabilityCells(text)
    out.write(as_text(list(COLUMNS)) + "\r\n")
    for svc in report.services:
        fix = _fix(svc)
        empty = "," + as_text(_EMPTY_FINDING + fix) + "\r\n"
        # A row is the service's cells, the location's, then the finding's: each part is
        # made once and the parts are joined by commas (RFC 4180 quotes each field alone).
        service_text = as_text(_service_cells(svc, text)) + ","
        prefix = common.LocationText(partial(_location_text, as_text, text, service_text))
        listed = [*svc.findings, *(svc.product_only if report.list_product_only else ())]
        # id -> (tuple, its locations' cells): the findings of a service share these tuples.
        covered: dict[int, tuple[tuple[Location, ...], list[str]]] = {}
        for sf in listed:
            if not sf.locations:
                continue
            hit = covered.get(id(sf.locations))
            if hit is None:
                hit = covered[id(sf.locations)] = (
                    sf.locations,
                    [*map(prefix.one, sf.locations), ""],
                )
            row_end = "," + as_text(_finding_cells(sf, text, of_vulnerability) + fix) + "\r\n"
            # Rows of one finding: each location's cells, then the finding's (one join; the
            # list's last item is empty so the last row ends too, without copying the text).
            out.write(row_end.join(hit[1]))
        seen = {loc for locs, _ in covered.values() for loc in locs}
        for loc in svc.locations:
            if loc not in seen:
                out.write(prefix.one(loc) + empty)


def render_csv(report: Report) -> bytes:
    """The CSV report as UTF-8 bytes (what `write_csv` writes)."""
    buffer = io.StringIO()
    write_csv(report, buffer)
    return buffer.getvalue().encode("utf-8")
