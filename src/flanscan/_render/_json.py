"""JSON report: the report model as documented by `schemas/report.schema.json`.

Keys come out in a fixed order and lists in the report's order, so the same report always gives
the same bytes. Text is kept as it is (JSON escaping makes it safe); only control and
bidi-override characters are dropped, as in every other format.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any, TextIO

from flanscan._exposure import exposure_of
from flanscan._model import (
    ChangeSummary,
    Finding,
    HostSummary,
    Location,
    Report,
    ScanSummary,
    ServiceFinding,
    ServiceReport,
    VulnDbSummary,
)
from flanscan._remediation import Remediation, remediation_of
from flanscan._render._common import GENERATOR, LocationText, clean, iso_datetime, vuln_url

SCHEMA_ID = "https://flanscan.invalid/schemas/report.schema.json"
FORMAT_VERSION = 1

Json = dict[str, Any]


def _s(value: str | None) -> str | None:
    return clean(value) if value is not None else None


def _strs(values: tuple[str, ...]) -> list[str]:
    return [clean(v) for v in values]


def _location(loc: Location) -> Json:
    return {
        "address": clean(loc.address),
        "hostnames": _strs(loc.hostnames),
        "port": loc.port,
        "protocol": clean(loc.protocol),
    }


def _finding(sf: ServiceFinding, *, with_locations: bool = True) -> Json:
    f: Finding = sf.finding
    v = f.vulnerability
    kev = v.kev
    dist = f.distribution
    rule = f.suppression
    exposure = exposure_of(v)
    return {
        "id": clean(v.id),
        "cvss": v.cvss.score if v.cvss is not None else None,
        "severity": f.severity.label,
        "cvss_version": v.cvss.version if v.cvss is not None else None,
        "cvss_vector": _s(v.cvss.vector) if v.cvss is not None else None,
        "summary": _s(v.summary),
        "published": _s(v.published),
        "cwe": _strs(v.cwes),
        "kev": None
        if kev is None
        else {
            "date_added": _s(kev.date_added),
            "known_ransomware_use": kev.known_ransomware_use,
            "due_date": _s(kev.due_date),
            "vulnerability_name": _s(kev.vulnerability_name),
            "required_action": _s(kev.required_action),
        },
        "epss": v.epss,
        "epss_percentile": v.epss_percentile,
        "url": vuln_url(v),
        "source": clean(v.source),
        "is_exploit": v.is_exploit,
        "ssvc": None
        if v.ssvc_exploitation is None and v.ssvc_automatable is None
        else {"exploitation": _s(v.ssvc_exploitation), "automatable": _s(v.ssvc_automatable)},
        "match": f.confidence.value,
        "match_source": f.match_source.value,
        "confidence": f.source_confidence.value,
        "status": f.status.value,
        "exposure": exposure.exposure.value,
        "exposure_reason": exposure.why or None,
        "evidence": [
            {
                "criteria": clean(ev.criteria),
                "version_range": clean(ev.version_range),
                "detected_version": _s(ev.detected_version),
                "detected_cpe": _s(ev.detected_cpe),
                "banner": clean(ev.banner),
                "platform_conditions": _strs(ev.platform_conditions),
                "alias": _s(ev.alias),
                "record": _s(ev.record),
            }
            for ev in f.evidence
        ],
        "distribution": None
        if dist is None
        else {
            "distribution": clean(dist.distribution),
            "release": _s(dist.release),
            "source_package": _s(dist.source_package),
            "package_version": _s(dist.package_version),
            "tracker": _s(dist.tracker),
            "tracker_status": _s(dist.tracker_status),
            "fixed_version": _s(dist.fixed_version),
            "inherited_from": _s(dist.inherited_from),
            "note": _s(dist.note),
        },
        "suppression": None
        if rule is None
        else {
            "source": clean(rule.source),
            "reason": clean(rule.reason),
            "owner": clean(rule.owner),
            "expires": _s(rule.expires),
        },
        "locations": [_location(loc) for loc in sf.locations] if with_locations else [],
    }


def _remediation(fix: Remediation) -> Json | None:
    if not fix.needed:
        return None
    return {
        "fixed_version": _s(fix.upgrade_to),
        "later_than": fix.later_than,
        "without_fix": _strs(fix.without_fix),
        "text": clean(fix.text),
        "distribution": [
            {
                "distribution": clean(d.distribution),
                "release": _s(d.release),
                "source_package": _s(d.source_package),
                "fixed_version": clean(d.fixed_version),
                "vulnerabilities": _strs(d.findings),
            }
            for d in fix.distribution
        ],
    }


def _service(svc: ServiceReport, *, with_findings: bool = True) -> Json:
    worst = svc.worst_severity
    return {
        "name": _s(svc.name),
        "product": _s(svc.product),
        "version": _s(svc.version),
        "extrainfo": _s(svc.extrainfo),
        "cpe": _strs(svc.cpes),
        "worst_severity": worst.label if worst is not None else None,
        "remediation": _remediation(remediation_of(svc)),
        "locations": [_location(loc) for loc in svc.locations] if with_findings else [],
        "vulnerabilities": [_finding(sf) for sf in svc.findings] if with_findings else [],
        "product_only": [_finding(sf) for sf in svc.product_only] if with_findings else [],
    }


def _scan(scan: ScanSummary) -> Json:
    return {
        "targets": _strs(scan.targets),
        "excluded": _strs(scan.excluded),
        "nmap_commands": _strs(scan.nmap_commands),
        "nmap_version": _s(scan.nmap_version),
        "start": iso_datetime(scan.start),
        "end": iso_datetime(scan.end),
        "profile": _s(scan.profile),
        "ports": _s(scan.ports),
        "hosts_up": scan.hosts_up,
        "hosts_down": scan.hosts_down,
        "xml_files": _strs(scan.xml_files),
        "warnings": _strs(scan.warnings),
        "incomplete_targets": _strs(scan.incomplete_targets),
        "run_id": _s(scan.run_id),
    }


def _host(host: HostSummary) -> Json:
    return {
        "address": clean(host.address),
        "hostnames": _strs(host.hostnames),
        "status": clean(host.status),
        "open_ports": host.open_ports,
    }


def _vulndb(db: VulnDbSummary | None, note: str | None) -> Json:
    if db is None:
        return {"available": False, "note": _s(note) or "no vulnerability database was available"}
    return {
        "available": True,
        "path": clean(db.path),
        "cve_count": db.cve_count,
        "sources": [{"name": clean(n), "date": clean(d)} for n, d in db.sources],
        "built_at": _s(db.built_at),
        "age_days": round(db.age_days, 1) if db.age_days is not None else None,
        "max_age_days": db.max_age_days,
        "stale": db.stale,
        "note": _s(note),
    }


def _changes(ch: ChangeSummary | None) -> Json | None:
    if ch is None:
        return None
    return {
        "since_run": clean(ch.since_run),
        "since": iso_datetime(ch.since),
        "items": [
            {
                "kind": item.kind.value,
                "description": clean(item.description),
                "location": _location(item.location) if item.location is not None else None,
                "address": _s(item.address),
                "vuln_id": _s(item.vuln_id),
                "severity": item.severity.label if item.severity is not None else None,
                "old": _s(item.old),
                "new": _s(item.new),
            }
            for item in ch.items
        ],
    }


def report_to_dict(report: Report, *, with_services: bool = True) -> Json:
    """The report as plain JSON data, keys in documented order (see the JSON Schema);
    `with_services=False` leaves the services out (`write_json` streams them)."""
    by_status: dict[str, int] = {}
    for svc in report.services:
        for sf in svc.findings:
            key = sf.finding.status.value
            by_status[key] = by_status.get(key, 0) + len(sf.locations)
    return {
        "$schema": SCHEMA_ID,
        "format_version": FORMAT_VERSION,
        "generator": GENERATOR,
        "scan": _scan(report.scan),
        "summary": {
            **report.summary(),
            "by_status": dict(sorted(by_status.items())),
            "services": len(report.services),
            "vulnerable_services": sum(1 for s in report.services if s.open_findings),
            "hosts": len(report.hosts),
        },
        "changes": _changes(report.changes),
        "services": [_service(svc) for svc in report.services] if with_services else [],
        "hosts": [_host(h) for h in report.hosts],
        "vulnerability_database": _vulndb(report.vulndb, report.vulndb_note),
        "notes": _strs(report.notes),
    }


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _service_parts(svc: ServiceReport, locations: LocationText) -> Iterator[str]:
    """One service's line in pieces, the same text as `_dumps(_service(svc))`: each location is
    serialised once and each shared list of locations joined once, not under every finding
    (a service's line runs to megabytes at fleet scale)."""
    head = _service(svc, with_findings=False)
    for key in ("locations", "vulnerabilities", "product_only"):  # the last keys, in order
        del head[key]
    yield _dumps(head)[:-1]
    yield ', "locations": ['
    yield locations.joined(svc.locations)
    for key, findings in (("vulnerabilities", svc.findings), ("product_only", svc.product_only)):
        yield f"], {_dumps(key)}: ["
        for i, sf in enumerate(findings):
            if i:
                yield ", "
            finding = _finding(sf, with_locations=False)
            del finding["locations"]  # the last key
            yield _dumps(finding)[:-1]
            yield ', "locations": ['
            yield locations.joined(sf.locations)
            yield "]}"
    yield "]}"


def write_json(report: Report, out: TextIO) -> None:
    """Write the JSON report to `out` as a stream: deterministic, one top-level key per line
    and one service or host per line, so that it diffs well and stays on the C encoder (an
    indented dump runs the pure-Python encoder, several times slower on a large scan)."""
    locations = LocationText(lambda loc: _dumps(_location(loc)))
    head = report_to_dict(report, with_services=False)
    keys = list(head)
    out.write("{\n")
    for i, key in enumerate(keys):
        comma = "," if i < len(keys) - 1 else ""
        if key == "services" and report.services:
            out.write(f" {_dumps(key)}: [\n  ")
            for n, svc in enumerate(report.services):
                if n:
                    out.write(",\n  ")
                out.writelines(_service_parts(svc, locations))
            out.write(f"\n ]{comma}\n")
            continue
        value = head[key]
        if isinstance(value, list) and value:
            out.write(f" {_dumps(key)}: [\n  ")
            out.write(",\n  ".join(_dumps(v) for v in value))
            out.write(f"\n ]{comma}\n")
        else:
            out.write(f" {_dumps(key)}: {_dumps(value)}{comma}\n")
    out.write("}\n")


def render_json(report: Report) -> bytes:
    """The JSON report as UTF-8 bytes (what `write_json` writes)."""
    buffer = io.StringIO()
    write_json(report, buffer)
    return buffer.getvalue().encode("utf-8")
