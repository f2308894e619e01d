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
from collections.abc import Iterator

from flanscan._model import Location, Report, ServiceFinding, ServiceReport
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
    "kev_date_added",
    "kev_known_ransomware_use",
    "epss",
    "epss_percentile",
    "published",
    "cwe",
    "summary",
    "url",
    "evidence",
)


def neutralise(text: str) -> str:
    """One line of untrusted text that no spreadsheet will evaluate as a formula."""
    text = common.one_line(text)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def _num(value: float | None, fmt: str) -> str:
    return format(value, fmt) if value is not None else ""


def _location_cells(svc: ServiceReport, loc: Location) -> list[str]:
    return [
        neutralise(svc.name or ""),
        neutralise(svc.product or ""),
        neutralise(svc.version or ""),
        neutralise(" ".join(svc.cpes)),
        neutralise(loc.address),
        neutralise(" ".join(loc.hostnames)),
        str(loc.port),
        neutralise(loc.protocol),
    ]


def _finding_cells(sf: ServiceFinding) -> list[str]:
    f = sf.finding
    v = f.vulnerability
    kev = v.kev
    ransomware = ""
    if kev is not None and kev.known_ransomware_use is not None:
        ransomware = "known" if kev.known_ransomware_use else "unknown"
    return [
        neutralise(v.id),
        f.severity.label,
        _num(v.cvss.score if v.cvss else None, ".1f"),
        neutralise(v.cvss.version) if v.cvss else "",
        f.status.value,
        f.confidence.value,
        f.match_source.value,
        f.source_confidence.value,
        neutralise(common.fmt_date(kev.date_added)) if kev else "",
        ransomware,
        _num(v.epss, ".5f"),
        _num(v.epss_percentile, ".5f"),
        neutralise(common.fmt_date(v.published)),
        neutralise(" ".join(v.cwes)),
        neutralise(v.summary or ""),
        neutralise(common.vuln_url(v) or ""),
        neutralise(" | ".join(common.evidence_lines(f))),
    ]


_EMPTY_FINDING = [""] * (len(COLUMNS) - 8)


def rows(report: Report) -> Iterator[list[str]]:
    """The CSV rows after the header, in the report's order."""
    for svc in report.services:
        covered: set[Location] = set()
        for sf in svc.findings:
            cells = _finding_cells(sf)
            for loc in sf.locations:
                covered.add(loc)
                yield _location_cells(svc, loc) + cells
        # Product-only matches are rows only when the report lists them (--show-product-only).
        for sf in svc.product_only if report.list_product_only else ():
            cells = _finding_cells(sf)
            for loc in sf.locations:
                covered.add(loc)
                yield _location_cells(svc, loc) + cells
        for loc in svc.locations:
            if loc not in covered:
                yield [*_location_cells(svc, loc), *_EMPTY_FINDING]


def render_csv(report: Report) -> bytes:
    """The CSV report as UTF-8 bytes (RFC 4180: comma, double quotes, CRLF)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows(report))
    return buffer.getvalue().encode("utf-8")
