"""The flat form of a report: one row per finding per location, as the history stored it
before finding groups (migration 2). Kept here, outside the product, as the plain reference
that the compact form, the SQL diff and the migration are checked against."""

from __future__ import annotations

from flanscan._history._rows import FindingRow, HostRow, RunRows, ServiceRow, scope_of, utc
from flanscan._model import Report


def rows_from_report(report: Report) -> RunRows:
    """Flatten a Report into rows keyed by location (a finding by CVE, address, port, protocol)."""
    rows = RunRows(
        run_id=report.scan.run_id, started=utc(report.scan.start), scope=scope_of(report.scan)
    )
    for host in report.hosts:
        rows.hosts.setdefault(
            host.address, HostRow(host.address, tuple(host.hostnames), host.status, host.open_ports)
        )
    for svc in report.services:
        for loc in svc.locations:
            key = (loc.address, loc.port, loc.protocol)
            rows.services.setdefault(
                key,
                ServiceRow(
                    loc.address,
                    loc.port,
                    loc.protocol,
                    svc.name,
                    svc.product,
                    svc.version,
                    svc.extrainfo,
                    tuple(svc.cpes),
                ),
            )
            if loc.address not in rows.hosts:
                rows.hosts[loc.address] = HostRow(loc.address, tuple(loc.hostnames))
        # Exact findings first so that a product-only duplicate never hides an exact one.
        for sf in (*svc.findings, *svc.product_only):
            f = sf.finding
            vuln = f.vulnerability
            sup = f.suppression
            # One template per finding, copied per location (dataclasses.replace is slower).
            template = (
                f.status.value,
                f.confidence.value,
                int(f.severity),
                vuln.cvss.score if vuln.cvss else None,
                vuln.kev is not None,
                vuln.kev.date_added if vuln.kev else None,
                sup.source if sup else None,
                sup.reason if sup else None,
                sup.owner if sup else None,
                sup.expires if sup else None,
            )
            for loc in sf.locations:
                row = FindingRow(vuln.id, loc.address, loc.port, loc.protocol, *template)
                rows.findings.setdefault(row.key, row)
    # Hosts listed without a port count get one from the services seen.
    counts: dict[str, int] = {}
    for addr, _port, _proto in rows.services:
        counts[addr] = counts.get(addr, 0) + 1
    for addr, hrow in list(rows.hosts.items()):
        if hrow.open_ports == 0 and counts.get(addr):
            rows.hosts[addr] = HostRow(addr, hrow.hostnames, hrow.status, counts[addr])
    return rows
