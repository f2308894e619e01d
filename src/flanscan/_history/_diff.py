"""What changed between two runs: new/fixed findings, status changes, ports, versions, hosts.

A finding is identified by CVE + address + port + protocol. Anything missing from the new run
counts as fixed/closed/gone only when the new run scanned it; otherwise it is "not checked".
"""

from __future__ import annotations

import functools
import ipaddress
from collections import defaultdict
from dataclasses import dataclass

from flanscan._history._rows import FindingRow, RunRows, ServiceRow
from flanscan._history._scope import host_reason_not_checked, port_reason_not_checked
from flanscan._model import (
    ChangeItem,
    ChangeKind,
    ChangeSummary,
    Confidence,
    FindingStatus,
    Location,
    Report,
    Severity,
)

# Values of ChangeItem.old/new for KEV changes; alerts look for IN_KEV.
IN_KEV = "in KEV"
NOT_IN_KEV = "not in KEV"

# Statuses that make a finding worth reporting as new or fixed; moves between these and the
# others (not affected, fixed by distribution) are status changes.
_RELEVANT = frozenset(
    {
        FindingStatus.CONFIRMED.value,
        FindingStatus.UNCONFIRMED_DISTRIBUTION.value,
        FindingStatus.SUPPRESSED.value,
    }
)

_KIND_ORDER = {
    kind: i
    for i, kind in enumerate(
        [
            ChangeKind.HOST_APPEARED,
            ChangeKind.NEW_FINDING,
            ChangeKind.STATUS_CHANGED,
            ChangeKind.FIXED_FINDING,
            ChangeKind.NEW_PORT,
            ChangeKind.CLOSED_PORT,
            ChangeKind.VERSION_CHANGED,
            ChangeKind.HOST_DISAPPEARED,
            ChangeKind.NOT_CHECKED,
        ]
    )
}


def _loc(address: str, port: int, protocol: str) -> Location:
    return Location(address=address, port=port, protocol=protocol)


def _sev_label(value: int) -> str:
    return Severity(value).label


def _finding_words(row: FindingRow) -> str:
    words = [_sev_label(row.severity)]
    if row.kev:
        words.append("in KEV")
    if row.status != FindingStatus.CONFIRMED.value:
        words.append(FindingStatus(row.status).label)
    return ", ".join(words)


def _status_change(old: FindingRow, new: FindingRow) -> list[tuple[str, str, str]]:
    """(description tail, old value, new value) for each way the finding's status moved."""
    changes: list[tuple[str, str, str]] = []
    if old.confidence != new.confidence and new.confidence == Confidence.PRODUCT_ONLY.value:
        changes.append(("version no longer detected", old.confidence, new.confidence))
    elif old.status != new.status:
        o, n = FindingStatus(old.status), FindingStatus(new.status)
        if n is FindingStatus.SUPPRESSED:
            why = f": {new.suppression_reason}" if new.suppression_reason else ""
            owner = f" (owner {new.suppression_owner})" if new.suppression_owner else ""
            text = f"newly suppressed{why}{owner}"
        elif o is FindingStatus.SUPPRESSED and old.suppression_expires:
            text = f"suppression expired ({old.suppression_expires}), now {n.label}"
        elif o is FindingStatus.SUPPRESSED:
            text = f"no longer suppressed, now {n.label}"
        elif n is FindingStatus.FIXED_BY_DISTRIBUTION:
            text = "now fixed by distribution"
        else:
            text = f"now {n.label} (was {o.label})"
        changes.append((text, o.label, n.label))
    if new.kev and not old.kev:
        added = f", added {new.kev_date_added}" if new.kev_date_added else ""
        changes.append((f"now in CISA KEV{added}", NOT_IN_KEV, IN_KEV))
    if new.severity != old.severity:
        o_l, n_l = _sev_label(old.severity), _sev_label(new.severity)
        changes.append((f"severity now {n_l} (was {o_l})", o_l, n_l))
    return changes


def _service_changed(old: ServiceRow, new: ServiceRow) -> bool:
    """A different product or version; when either run lacks version detection (no -sV),
    only a different service name counts: "not detected" is not a change."""
    if (old.product or old.version) and (new.product or new.version):
        return (old.product, old.version) != (new.product, new.version)
    return bool(old.name and new.name and old.name != new.name)


@dataclass(frozen=True)
class OldFindingCounts:
    """What the diff counts in the old run's findings: all of them per port, and the open exact
    ones per host. The history store has the database count them, so that only the findings
    that changed are read back (see `HistoryStore.diff`)."""

    by_port: dict[tuple[str, int, str], int]
    open_by_host: dict[str, int]


def count_old_findings(old: RunRows) -> OldFindingCounts:
    """The counts from a run whose every finding is in memory."""
    by_port: dict[tuple[str, int, str], int] = defaultdict(int)
    open_by_host: dict[str, int] = defaultdict(int)
    for f in old.findings.values():
        by_port[(f.address, f.port, f.protocol)] += 1
        if f.is_open and f.confidence == Confidence.EXACT.value:
            open_by_host[f.address] += 1
    return OldFindingCounts(dict(by_port), dict(open_by_host))


def diff_rows(
    old: RunRows,
    new: RunRows,
    *,
    since_run: str | None = None,
    old_counts: OldFindingCounts | None = None,
) -> ChangeSummary:
    """Compare two flattened runs; the new run's scope decides what counts as checked.

    With `old_counts`, the runs' `findings` may hold only the findings that differ between
    them (missing from the other run, or another status, KEV flag, severity or confidence):
    the others make no change item."""
    counts = old_counts if old_counts is not None else count_old_findings(old)
    items, gone_hosts = _host_changes(old, new, counts)
    port_items, closed_ports, unchecked_ports = _port_changes(old, new, counts, gone_hosts)
    items += port_items
    items += _finding_changes(old, new, gone_hosts, closed_ports, unchecked_ports)
    items.sort(key=lambda i: (_KIND_ORDER[i.kind], -(i.severity or 0)))  # stable within kind
    return ChangeSummary(
        since_run=since_run if since_run is not None else (old.run_id or ""),
        since=old.started,
        items=tuple(items),
    )


def _host_changes(
    old: RunRows, new: RunRows, counts: OldFindingCounts
) -> tuple[list[ChangeItem], set[str]]:
    """Hosts that appeared, disappeared or were not checked; and the hosts whose ports need no
    items of their own (gone or not checked)."""
    items: list[ChangeItem] = []
    old_up = {a for a, h in old.hosts.items() if h.status == "up"}
    new_up = {a for a, h in new.hosts.items() if h.status == "up"}
    gone_hosts: set[str] = set()  # disappeared or not checked: no per-port items for them
    new_ports_by_host: dict[str, int] = defaultdict(int)
    for k in new.services:
        new_ports_by_host[k[0]] += 1
    for addr in sorted(new_up - old_up, key=_addr_key):
        ports = new_ports_by_host.get(addr, 0)
        items.append(
            ChangeItem(
                ChangeKind.HOST_APPEARED,
                f"host {addr} appeared ({ports} open port{'s' if ports != 1 else ''})",
                address=addr,
            )
        )
    old_ports_by_host: dict[str, list[ServiceRow]] = defaultdict(list)
    for svc in old.services.values():
        old_ports_by_host[svc.address].append(svc)
    old_open_by_host = counts.open_by_host
    for addr in sorted(old_up - new_up, key=_addr_key):
        gone_hosts.add(addr)
        host = old.hosts[addr]
        n_ports = len(old_ports_by_host.get(addr, ()))
        n_open = old_open_by_host.get(addr, 0)
        had = f"{n_ports} open port{'s' if n_ports != 1 else ''}, {n_open} open finding" + (
            "s" if n_open != 1 else ""
        )
        # A host the new run answered for as down was checked even if its scope is unclear.
        reason = (
            None if addr in new.hosts else host_reason_not_checked(new.scope, addr, host.hostnames)
        )
        if reason:
            items.append(
                ChangeItem(
                    ChangeKind.NOT_CHECKED,
                    f"host {addr} not checked: {reason} (had {had})",
                    address=addr,
                )
            )
        else:
            items.append(
                ChangeItem(
                    ChangeKind.HOST_DISAPPEARED,
                    f"host {addr} no longer responds (had {had}; not counted as fixed)",
                    address=addr,
                )
            )
    return items, gone_hosts


def _port_changes(
    old: RunRows, new: RunRows, counts: OldFindingCounts, gone_hosts: set[str]
) -> tuple[list[ChangeItem], set[tuple[str, int, str]], set[tuple[str, int, str]]]:
    """New, closed and not-checked ports and version changes; and the closed and not-checked
    ports (their findings are summarised by the port's item)."""
    items: list[ChangeItem] = []
    old_findings_by_port = counts.by_port
    closed_ports: set[tuple[str, int, str]] = set()
    unchecked_ports: set[tuple[str, int, str]] = set()
    for key in sorted(new.services.keys() - old.services.keys(), key=_port_key):
        svc = new.services[key]
        items.append(
            ChangeItem(
                ChangeKind.NEW_PORT,
                f"{_loc(*key).label} open: {svc.banner}",
                location=_loc(*key),
                address=key[0],
                new=svc.banner,
            )
        )
    for key in sorted(old.services.keys() - new.services.keys(), key=_port_key):
        if key[0] in gone_hosts:
            continue
        svc = old.services[key]
        host_reason = None
        if key[0] not in new.hosts:
            old_host = old.hosts.get(key[0])
            names = old_host.hostnames if old_host else ()
            host_reason = host_reason_not_checked(new.scope, key[0], names)
        reason = host_reason or port_reason_not_checked(new.scope, old.scope, key[1], key[2])
        if not reason and key[0] in new.hosts and _in_incomplete(new, key[0]):
            reason = "its scan worker did not finish"
        if reason:
            unchecked_ports.add(key)
            n = old_findings_by_port.get(key, 0)
            tail = f"; {n} finding{'s' if n != 1 else ''} not rechecked" if n else ""
            items.append(
                ChangeItem(
                    ChangeKind.NOT_CHECKED,
                    f"{_loc(*key).label} ({svc.banner}) not checked: {reason}{tail}",
                    location=_loc(*key),
                    address=key[0],
                    old=svc.banner,
                )
            )
        else:
            closed_ports.add(key)
            items.append(
                ChangeItem(
                    ChangeKind.CLOSED_PORT,
                    f"{_loc(*key).label} closed (was {svc.banner})",
                    location=_loc(*key),
                    address=key[0],
                    old=svc.banner,
                )
            )
    # Filtered before sorting: a fleet keeps most of its hundreds of thousands of ports.
    changed = [
        key
        for key in old.services.keys() & new.services.keys()
        if _service_changed(old.services[key], new.services[key])
    ]
    for key in sorted(changed, key=_port_key):
        o_svc, n_svc = old.services[key], new.services[key]
        items.append(
            ChangeItem(
                ChangeKind.VERSION_CHANGED,
                f"{_loc(*key).label}: {o_svc.banner} -> {n_svc.banner}",
                location=_loc(*key),
                address=key[0],
                old=o_svc.banner,
                new=n_svc.banner,
            )
        )
    return items, closed_ports, unchecked_ports


def _finding_changes(
    old: RunRows,
    new: RunRows,
    gone_hosts: set[str],
    closed_ports: set[tuple[str, int, str]],
    unchecked_ports: set[tuple[str, int, str]],
) -> list[ChangeItem]:
    """New and fixed findings, and status changes of the findings in both runs."""
    items: list[ChangeItem] = []
    for fkey in sorted(new.findings.keys() - old.findings.keys(), key=_finding_key):
        f = new.findings[fkey]
        if f.status not in _RELEVANT or f.confidence != Confidence.EXACT.value:
            continue
        loc = _loc(f.address, f.port, f.protocol)
        loc_key = (f.address, f.port, f.protocol)
        banner = new.services[loc_key].banner if loc_key in new.services else ""
        on = f" ({banner})" if banner else ""
        items.append(
            ChangeItem(
                ChangeKind.NEW_FINDING,
                f"{f.vuln_id} ({_finding_words(f)}) on {loc.label}{on}",
                location=loc,
                address=f.address,
                vuln_id=f.vuln_id,
                severity=Severity(f.severity),
                new=f.status,
            )
        )
    for fkey in sorted(old.findings.keys() - new.findings.keys(), key=_finding_key):
        f = old.findings[fkey]
        if f.status not in _RELEVANT or f.confidence != Confidence.EXACT.value:
            continue
        port_key = (f.address, f.port, f.protocol)
        if f.address in gone_hosts or port_key in unchecked_ports:
            continue  # summarised by the host's or port's own item
        if port_key not in closed_ports and port_key not in new.services:
            continue  # pragma: no cover - every old port is closed, unchecked or gone
        loc = _loc(f.address, f.port, f.protocol)
        if port_key in closed_ports:
            why = " (port closed)"
        elif _service_changed(old.services.get(port_key, _NO_SVC), new.services[port_key]):
            why = f" (now {new.services[port_key].banner})"
        else:
            why = ""
        items.append(
            ChangeItem(
                ChangeKind.FIXED_FINDING,
                f"{f.vuln_id} ({_sev_label(f.severity)}) no longer found on {loc.label}{why}",
                location=loc,
                address=f.address,
                vuln_id=f.vuln_id,
                severity=Severity(f.severity),
                old=f.status,
            )
        )
    # The findings in both runs that moved, found before sorting (most did not).
    moved: dict[tuple[str, str, int, str], list[tuple[str, str, str]]] = {}
    for fkey in old.findings.keys() & new.findings.keys():
        o_f, n_f = old.findings[fkey], new.findings[fkey]
        if o_f.confidence == Confidence.PRODUCT_ONLY.value and (
            n_f.confidence == Confidence.PRODUCT_ONLY.value
        ):
            continue
        how = _status_change(o_f, n_f)
        if how:
            moved[fkey] = how
    for fkey in sorted(moved, key=_finding_key):
        n_f = new.findings[fkey]
        loc = _loc(n_f.address, n_f.port, n_f.protocol)
        for text, o_val, n_val in moved[fkey]:
            items.append(
                ChangeItem(
                    ChangeKind.STATUS_CHANGED,
                    f"{n_f.vuln_id} on {loc.label}: {text}",
                    location=loc,
                    address=n_f.address,
                    vuln_id=n_f.vuln_id,
                    severity=Severity(n_f.severity),
                    old=o_val,
                    new=n_val,
                )
            )
    return items


_NO_SVC = ServiceRow("", 0, "")


def _in_incomplete(rows: RunRows, address: str) -> bool:
    return bool(rows.scope.incomplete_targets) and (
        host_reason_not_checked(rows.scope, address, rows.hosts[address].hostnames)
        == "its scan worker did not finish"
    )


@functools.lru_cache(maxsize=65536)
def _addr_key(address: str) -> tuple[int, str]:
    try:
        ip = ipaddress.ip_address(address)
        return (ip.version, f"{int(ip):040d}")
    except ValueError:
        return (9, address)


def _port_key(key: tuple[str, int, str]) -> tuple[tuple[int, str], int, str]:
    return (_addr_key(key[0]), key[1], key[2])


def _finding_key(key: tuple[str, str, int, str]) -> tuple[object, ...]:
    return (_addr_key(key[1]), key[2], key[3], key[0])


def diff_reports(old: Report, new: Report) -> ChangeSummary:
    """What changed from `old` to `new`, computed from the two reports without a store."""
    from flanscan._history._compact_diff import diff_compact  # it builds on this module
    from flanscan._history._groups import compact_from_report

    since = old.scan.run_id or (old.scan.xml_files[0] if old.scan.xml_files else "")
    return diff_compact(compact_from_report(old), compact_from_report(new), since_run=since)
