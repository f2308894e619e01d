"""SARIF 2.1.0 report, for code-scanning dashboards: one rule per CVE, one result per finding and
location (valid against the OASIS schema; tests/data/schemas/sarif-schema-2.1.0.json).

A network service has no source file: each result's physical location is the service's address
as a relative URI (`hosts/198.18.0.11/tcp/22`, what dashboards need to show and group a result)
and its logical location the service (`198.18.0.11:22/tcp`). Findings the report does not count
as open (suppressed, fixed by the distribution, not affected) are results too, carrying a SARIF
`suppressions` entry with the reason, so a dashboard hides them without losing them. Results
have a `partialFingerprints` entry (CVE, address, port, protocol) so that runs line up.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Iterator
from typing import Any, TextIO
from urllib.parse import quote

from flanscan._model import Finding, FindingStatus, Location, Report, Severity
from flanscan._remediation import remediation_of
from flanscan._render._common import (
    GENERATOR,
    one_line,
    service_title,
    tool_version,
    utc_z,
    vuln_url,
)

SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)

Json = dict[str, Any]

_LEVEL = {
    Severity.CRITICAL: "error",
    Severity.HIGH: "error",
    Severity.MEDIUM: "warning",
    Severity.LOW: "note",
    Severity.NONE: "note",
    Severity.UNKNOWN: "warning",  # no score yet: not to be hidden as a note
}


def _rule(finding: Finding) -> Json:
    v = finding.vulnerability
    summary = one_line(v.summary or v.id)
    rule: Json = {
        "id": one_line(v.id),
        "name": one_line(v.id),
        "shortDescription": {"text": summary[:200] if len(summary) > 200 else summary},
        "fullDescription": {"text": summary},
        "defaultConfiguration": {"level": _LEVEL[finding.severity]},
        "properties": {
            "tags": ["security", "vulnerability", *(["kev"] if v.kev else [])],
            "precision": "high" if finding.source_confidence.value == "high" else "medium",
        },
    }
    url = vuln_url(v)
    if url is not None:
        rule["helpUri"] = url
    if v.cvss is not None:
        # GitHub code scanning ranks security results by this property (a CVSS-like score).
        rule["properties"]["security-severity"] = f"{v.cvss.score:.1f}"
    return rule


def _uri(loc: Location) -> str:
    return f"hosts/{quote(loc.address, safe='')}/{quote(loc.protocol, safe='')}/{loc.port}"


def _suppression(finding: Finding) -> list[Json]:
    if finding.status.is_open:
        return []
    if finding.status is FindingStatus.SUPPRESSED and finding.suppression is not None:
        rule = finding.suppression
        why = f"{rule.reason} (rule {rule.source}, owner {rule.owner}"
        why += f", expires {rule.expires})" if rule.expires else ")"
        return [{"kind": "external", "status": "accepted", "justification": one_line(why)}]
    dist = finding.distribution
    why = finding.status.label
    if dist is not None:
        tracker = dist.tracker or dist.distribution
        fixed = f", fixed in {dist.fixed_version}" if dist.fixed_version else ""
        why = f"{why}: {tracker} says {dist.tracker_status or 'not affected'}{fixed}"
    return [{"kind": "external", "status": "accepted", "justification": one_line(why)}]


def _results(report: Report, rules: list[Json]) -> Iterator[Json]:
    """Each finding and location's result, as it is made; fills `rules` (one per CVE) on the way."""
    index: dict[str, int] = {}
    for svc in report.services:
        title = service_title(svc)
        fix = remediation_of(svc)
        listed = [*svc.findings, *(svc.product_only if report.list_product_only else ())]
        for sf in listed:
            f = sf.finding
            if f.id not in index:
                index[f.id] = len(rules)
                rules.append(_rule(f))
            text = f"{one_line(f.id)} ({f.severity.label}) in {title}"
            if f.status.is_open and fix.needed:
                text += f"; fix: {one_line(fix.text)}"
            if not f.status.is_open:
                text += f"; {f.status.label}"
            properties = {
                "status": f.status.value,
                "match": f.confidence.value,
                "match_source": f.match_source.value,
                "confidence": f.source_confidence.value,
                "service": title,
                "kev": f.vulnerability.kev is not None,
            }
            suppressions = _suppression(f)
            for loc in sf.locations:
                key = f"{f.id}|{loc.address}|{loc.port}|{loc.protocol}"
                result: Json = {
                    "ruleId": one_line(f.id),
                    "ruleIndex": index[f.id],
                    "level": _LEVEL[f.severity],
                    "message": {"text": f"{text} at {loc.label}"},
                    "locations": [
                        {
                            "physicalLocation": {
                                "artifactLocation": {"uri": _uri(loc)},
                                "region": {"startLine": 1},
                            },
                            "logicalLocations": [
                                {"fullyQualifiedName": one_line(loc.label), "kind": "service"}
                            ],
                        }
                    ],
                    "partialFingerprints": {
                        "flanFinding/v1": hashlib.sha256(key.encode()).hexdigest()
                    },
                    "properties": properties,
                }
                if suppressions:
                    result["suppressions"] = suppressions
                yield result


def _run_head(report: Report) -> Json:
    run: Json = {"columnKind": "unicodeCodePoints"}
    if report.scan.start is not None:
        invocation: Json = {
            "executionSuccessful": not report.scan.incomplete_targets,
            "startTimeUtc": utc_z(report.scan.start),
        }
        if report.scan.end is not None:
            invocation["endTimeUtc"] = utc_z(report.scan.end)
        run["invocations"] = [invocation]
    return run


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def write_sarif(report: Report, out: TextIO) -> None:
    """Write the SARIF log to `out` as a stream: one result per line as it is made (a fleet has
    one per finding and location), then the tool with its rules, which the results fill."""
    rules: list[Json] = []
    out.write('{"$schema": ' + _dumps(SARIF_SCHEMA) + ', "version": "2.1.0", "runs": [{\n')
    out.write(' "results": [')
    for n, result in enumerate(_results(report, rules)):
        out.write(("," if n else "") + "\n  " + _dumps(result))
    out.write("\n ],\n")
    for key, value in _run_head(report).items():
        out.write(f" {_dumps(key)}: {_dumps(value)},\n")
    driver = {"name": GENERATOR, "version": tool_version(), "rules": rules}
    out.write(' "tool": {"driver": ' + _dumps(driver) + "}\n}]}\n")


def render_sarif(report: Report) -> bytes:
    """The SARIF 2.1.0 log as UTF-8 JSON bytes (what `write_sarif` writes: same report, same
    bytes)."""
    buffer = io.StringIO()
    write_sarif(report, buffer)
    return buffer.getvalue().encode("utf-8")
