"""Change summaries and run lists as terminal text or JSON (for `flan diff` and `flan history`)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from flanscan._history._store import RunRef, run_open_severities
from flanscan._model import ChangeKind, ChangeSummary

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]+")

_KIND_LABEL = {
    ChangeKind.NEW_FINDING: "new finding",
    ChangeKind.FIXED_FINDING: "fixed",
    ChangeKind.STATUS_CHANGED: "status changed",
    ChangeKind.NEW_PORT: "new port",
    ChangeKind.CLOSED_PORT: "closed port",
    ChangeKind.VERSION_CHANGED: "version changed",
    ChangeKind.HOST_APPEARED: "host appeared",
    ChangeKind.HOST_DISAPPEARED: "host gone",
    ChangeKind.NOT_CHECKED: "not checked",
}


def terminal_safe(text: str) -> str:
    """Host-supplied text without control characters (no escape sequences reach a terminal)."""
    return _CONTROL.sub(" ", text)


def changes_as_dict(changes: ChangeSummary) -> dict[str, Any]:
    """JSON-ready form of a change summary (`flan diff --format json`)."""
    counts = Counter(i.kind.value for i in changes.items)
    return {
        "since_run": changes.since_run,
        "since": changes.since.isoformat() if changes.since else None,
        "counts": {k.value: counts.get(k.value, 0) for k in ChangeKind},
        "items": [
            {
                "kind": i.kind.value,
                "description": i.description,
                "location": (
                    {
                        "address": i.location.address,
                        "port": i.location.port,
                        "protocol": i.location.protocol,
                    }
                    if i.location
                    else None
                ),
                "address": i.address,
                "vuln_id": i.vuln_id,
                "severity": i.severity.label if i.severity is not None else None,
                "old": i.old,
                "new": i.new,
            }
            for i in changes.items
        ],
    }


def _plural(label: str, n: int) -> str:
    if n == 1 or label in ("fixed", "not checked", "host gone"):
        return label
    if label.endswith("changed"):
        return label
    words = label.split(" ")
    if label.startswith("host"):
        return "hosts " + " ".join(words[1:])
    return label + "s"


def changes_headline(changes: ChangeSummary) -> str:
    """ "Changes since 2026-03-01 12:00 UTC (run X): 2 new findings, 1 fixed, ..." """
    since = changes.since.strftime("%Y-%m-%d %H:%M UTC") if changes.since else "the earlier run"
    counts = Counter(i.kind for i in changes.items)
    parts = [f"{counts[k]} {_plural(_KIND_LABEL[k], counts[k])}" for k in _KIND_LABEL if counts[k]]
    run = f" (run {changes.since_run})" if changes.since_run else ""
    return f"Changes since {since}{run}: " + (", ".join(parts) if parts else "none")


def changes_as_text(changes: ChangeSummary) -> str:
    """One line per change under a headline, for the terminal."""
    lines = [terminal_safe(changes_headline(changes))]
    width = max((len(_KIND_LABEL[i.kind]) for i in changes.items), default=0)
    for item in changes.items:
        lines.append(f"  {_KIND_LABEL[item.kind]:<{width}}  {terminal_safe(item.description)}")
    return "\n".join(lines) + "\n"


def run_as_dict(ref: RunRef) -> dict[str, Any]:
    return {
        "id": ref.id,
        "started": ref.started.isoformat() if ref.started else None,
        "ended": ref.ended.isoformat() if ref.ended else None,
        "recorded": ref.recorded.isoformat(),
        "targets": list(ref.targets),
        "excluded": list(ref.excluded),
        "profile": ref.profile,
        "ports": ref.ports,
        "hosts": ref.host_count,
        "open_findings": ref.open_findings,
        "severity_counts": ref.severity_counts,
        "incomplete_targets": list(ref.incomplete_targets),
        "run_dir": ref.run_dir,
        "source": ref.source,
    }


def runs_as_text(refs: list[RunRef]) -> str:
    """A table of runs, newest first."""
    header = ("RUN", "STARTED (UTC)", "TARGETS", "HOSTS", "OPEN FINDINGS")
    rows = [header]
    for r in refs:
        when = (r.started or r.recorded).strftime("%Y-%m-%d %H:%M")
        targets = ", ".join(r.targets) or "-"
        if len(targets) > 40:
            targets = targets[:39] + "…"
        incomplete = " (incomplete)" if r.incomplete_targets else ""
        sev = run_open_severities(r)
        findings = f"{r.open_findings}" + (f" ({sev})" if r.open_findings else "")
        rows.append((r.id + incomplete, when, targets, str(r.host_count), findings))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    out = []
    for row in rows:
        cells = [terminal_safe(c).ljust(w) for c, w in zip(row[:-1], widths, strict=True)]
        out.append("  ".join([*cells, terminal_safe(row[-1])]).rstrip())
    return "\n".join(out) + "\n"
