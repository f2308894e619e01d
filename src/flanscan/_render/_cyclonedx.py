"""CycloneDX 1.6 JSON with VEX: the services as components, one `vulnerabilities[]` entry per
finding of a service, each with an `analysis` saying what the report decided (valid against the
official schema; tests/data/schemas/bom-1.6.SNAPSHOT.schema.json).

The report's statuses become VEX states: confirmed -> `exploitable` (the detected version is in
an affected range), unconfirmed: distribution build -> `in_triage`, fixed by distribution ->
`resolved`, not affected (the tracker says so) -> `not_affected` with justification
`code_not_present`, suppressed -> `not_affected` with justification
`protected_by_mitigating_control`; the tracker's entry or the rule (file:line, reason, owner,
expiry) is the analysis' `detail`. Where the service runs is in the component's properties.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from flanscan._model import CvssScore, Finding, FindingStatus, Report, ServiceReport, Severity
from flanscan._remediation import remediation_of
from flanscan._render._common import (
    GENERATOR,
    clean,
    one_line,
    tool_version,
    utc_z,
    vuln_url,
)

Json = dict[str, Any]

_STATE = {
    FindingStatus.CONFIRMED: "exploitable",
    FindingStatus.UNCONFIRMED_DISTRIBUTION: "in_triage",
    FindingStatus.FIXED_BY_DISTRIBUTION: "resolved",
    FindingStatus.NOT_AFFECTED: "not_affected",
    FindingStatus.SUPPRESSED: "not_affected",
}
_JUSTIFICATION = {
    FindingStatus.NOT_AFFECTED: "code_not_present",
    FindingStatus.SUPPRESSED: "protected_by_mitigating_control",
}
_METHOD = {"4.0": "CVSSv4", "3.1": "CVSSv31", "3.0": "CVSSv3", "2.0": "CVSSv2"}
_SEVERITY = {
    Severity.CRITICAL: "critical",
    Severity.HIGH: "high",
    Severity.MEDIUM: "medium",
    Severity.LOW: "low",
    Severity.NONE: "none",
    Severity.UNKNOWN: "unknown",
}


def _component(ref: str, svc: ServiceReport) -> Json:
    component: Json = {
        "type": "application",
        "bom-ref": ref,
        "name": one_line(svc.product or svc.name or "unknown service"),
    }
    if svc.version:
        component["version"] = one_line(svc.version)
    if svc.cpes:
        component["cpe"] = one_line(svc.cpes[0])
    properties = [{"name": "flan:location", "value": one_line(loc.label)} for loc in svc.locations]
    if svc.name:
        properties.append({"name": "flan:nmap-service", "value": one_line(svc.name)})
    if svc.extrainfo:
        properties.append({"name": "flan:extrainfo", "value": one_line(svc.extrainfo)})
    fix = remediation_of(svc)
    if fix.needed:
        properties.append({"name": "flan:fix", "value": one_line(fix.text)})
    if properties:
        component["properties"] = properties
    return component


def _rating(cvss: CvssScore, severity: Severity) -> Json:
    rating: Json = {"score": cvss.score, "severity": _SEVERITY[severity]}
    method = _METHOD.get(cvss.version)
    rating["method"] = method or "other"
    if cvss.vector:
        rating["vector"] = clean(cvss.vector)
    if cvss.source:
        rating["source"] = {"name": clean(cvss.source)}
    return rating


def _detail(finding: Finding) -> str:
    if finding.status is FindingStatus.SUPPRESSED and finding.suppression is not None:
        rule = finding.suppression
        text = f"suppressed by {rule.source}: {rule.reason} (owner {rule.owner}"
        return text + (f", expires {rule.expires})" if rule.expires else ")")
    dist = finding.distribution
    if dist is not None:
        parts = [dist.tracker or dist.distribution]
        if dist.release:
            parts.append(f"release {dist.release}")
        if dist.source_package:
            parts.append(f"package {dist.source_package} {dist.package_version or ''}".strip())
        if dist.tracker_status:
            parts.append(f"status {dist.tracker_status}")
        if dist.fixed_version:
            parts.append(f"fixed in {dist.fixed_version}")
        if dist.note:
            parts.append(dist.note)
        return f"{finding.status.label}: " + "; ".join(parts)
    ranges = "; ".join(e.version_range for e in finding.evidence[:3])
    return (
        f"{finding.status.label}: detected version in {ranges}" if ranges else finding.status.label
    )


def _vulnerability(ref: str, component: str, finding: Finding, locations: list[str]) -> Json:
    v = finding.vulnerability
    entry: Json = {"bom-ref": ref, "id": one_line(v.id)}
    url = vuln_url(v)
    source: Json = {"name": "NVD" if v.id.upper().startswith("CVE-") else clean(v.source)}
    if url is not None:
        source["url"] = url
    entry["source"] = source
    if v.cvss is not None:
        entry["ratings"] = [_rating(v.cvss, finding.severity)]
    cwes = [int(c[4:]) for c in v.cwes if c.upper().startswith("CWE-") and c[4:].isdigit()]
    if cwes:
        entry["cwes"] = cwes
    if v.summary:
        entry["description"] = clean(v.summary)
    if v.published:
        entry["published"] = _published(v.published)
    analysis: Json = {"state": _STATE[finding.status]}
    justification = _JUSTIFICATION.get(finding.status)
    if justification is not None:
        analysis["justification"] = justification
    if finding.status is FindingStatus.FIXED_BY_DISTRIBUTION:
        analysis["response"] = ["update"]
    analysis["detail"] = one_line(_detail(finding))
    entry["analysis"] = analysis
    entry["affects"] = [{"ref": component}]
    entry["properties"] = [
        {"name": "flan:status", "value": finding.status.value},
        {"name": "flan:match-source", "value": finding.match_source.value},
        {"name": "flan:confidence", "value": finding.source_confidence.value},
        *({"name": "flan:location", "value": loc} for loc in locations),
        *([{"name": "flan:kev-date-added", "value": clean(v.kev.date_added)}] if v.kev else []),
    ]
    return entry


def _published(text: str) -> str:
    """CycloneDX wants a full date-time; the report keeps the feed's date (maybe date only)."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return "1970-01-01T00:00:00Z"
    return utc_z(value)


def cyclonedx_document(report: Report) -> Json:
    """The CycloneDX 1.6 BOM with VEX of `report` as plain data."""
    components: list[Json] = []
    vulnerabilities: list[Json] = []
    for n, svc in enumerate(report.services, 1):
        ref = f"service-{n}"
        components.append(_component(ref, svc))
        listed = [*svc.findings, *(svc.product_only if report.list_product_only else ())]
        for m, sf in enumerate(listed, 1):
            labels = [one_line(loc.label) for loc in sf.locations]
            vulnerabilities.append(_vulnerability(f"{ref}-finding-{m}", ref, sf.finding, labels))
    metadata: Json = {
        "tools": {
            "components": [{"type": "application", "name": GENERATOR, "version": tool_version()}]
        },
        "properties": [{"name": "flan:target", "value": one_line(t)} for t in report.scan.targets],
    }
    when = report.scan.end or report.scan.start
    if when is not None:
        metadata["timestamp"] = utc_z(when)
    bom: Json = {"bomFormat": "CycloneDX", "specVersion": "1.6"}
    if report.scan.run_id:
        # The same run gives the same serial number (a rebuilt report replaces the earlier).
        bom["serialNumber"] = uuid.uuid5(uuid.NAMESPACE_URL, f"flan:{report.scan.run_id}").urn
    bom.update(
        {"version": 1, "metadata": metadata, "components": components,
         "vulnerabilities": vulnerabilities}
    )  # fmt: skip
    return bom


def render_cyclonedx(report: Report) -> bytes:
    """The CycloneDX 1.6 JSON (VEX) as UTF-8 bytes, keys in a fixed order."""
    return (json.dumps(cyclonedx_document(report), ensure_ascii=False, indent=1) + "\n").encode()


__all__ = ["cyclonedx_document", "render_cyclonedx"]
