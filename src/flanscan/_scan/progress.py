"""Scan progress as plain data, and the small interface a display implements.

The engine never prints: it hands `ScanProgress` snapshots and one-off notes to a
`ProgressSink`. The CLI picks a live (rich) or plain display; tests use `RecordingProgress`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from flanscan._scan.jobs import Job, PortKey


@dataclass(frozen=True)
class ScanProgress:
    """A snapshot of a running scan, summed over every Nmap process."""

    hosts_total: int
    hosts_done: int = 0
    open_ports: int = 0
    services: int = 0
    elapsed: float = 0.0
    eta: float | None = None  # seconds left, from Nmap's own estimates; None when unknown
    phase: str = "starting"  # "scanning", "discovering ports", "detecting services", ...
    running: int = 0  # Nmap processes running now
    finished: bool = False


class ProgressSink(Protocol):
    """Where the engine reports progress. Implementations must not raise."""

    def note(self, message: str) -> None:
        """Something the user should read once (e.g. the connect-scan fallback)."""

    def update(self, progress: ScanProgress) -> None:
        """A new snapshot; called a few times per second at most."""

    def close(self, progress: ScanProgress) -> None:
        """The scan ended (complete or not); the final snapshot."""


class NullProgress:
    """A sink that shows nothing (library use)."""

    def note(self, message: str) -> None:
        pass

    def update(self, progress: ScanProgress) -> None:
        pass

    def close(self, progress: ScanProgress) -> None:
        pass


@dataclass
class RecordingProgress:
    """A sink that keeps everything it is given (tests, embedding)."""

    notes: list[str] = field(default_factory=list)
    updates: list[ScanProgress] = field(default_factory=list)
    final: ScanProgress | None = None

    def note(self, message: str) -> None:
        self.notes.append(message)

    def update(self, progress: ScanProgress) -> None:
        self.updates.append(progress)

    def close(self, progress: ScanProgress) -> None:
        self.final = progress


def progress_snapshot(
    jobs: Sequence[Job],
    *,
    pending: Sequence[PortKey],
    open_ports: int,
    services: int,
    total: int,
    started: float,
    interrupted: bool,
    all_ports: bool,
    finished: bool = False,
) -> ScanProgress:
    """The progress arithmetic: hosts done (hosts with ports still being probed are not), the
    ETA (Nmap's own estimates, else the rate so far), the phase in words."""
    from flanscan._scan.jobs import running

    now = time.monotonic()
    done = _hosts_done(jobs, pending, total)
    etas = [
        max(0.0, j.remaining - (now - j.remaining_at))
        for j in running(jobs)
        if j.remaining is not None
    ]
    phase = _phase_words(jobs, pending, interrupted=interrupted, all_ports=all_ports,
                         finished=finished)  # fmt: skip
    eta = max(etas) if etas else None
    if eta is None and not finished and 0 < done < total:
        eta = (now - started) * (total - done) / done  # Nmap gave no estimate: our own rate
    return ScanProgress(
        hosts_total=total,
        hosts_done=done,
        open_ports=open_ports,
        services=services,
        elapsed=now - started,
        eta=eta,
        phase=phase,
        running=len(running(jobs)),
        finished=finished,
    )


def _hosts_done(jobs: Sequence[Job], pending: Sequence[PortKey], total: int) -> int:
    """Hosts whose scan ended, less those with ports still waiting for or in service probes."""
    done = 0
    for job in jobs:
        if job.status.phase in ("scan", "discovery") and job.counts_hosts:
            done += job.count if job.status.status == "done" else job.hosts_completed
    busy_hosts = {k[0] for k in pending}
    for job in jobs:
        if job.status.phase == "service" and job.status.status != "done":
            busy_hosts.update(k[0] for k in job.service_keys)
    return max(0, min(done - len(busy_hosts), total))


def _phase_words(
    jobs: Sequence[Job],
    pending: Sequence[PortKey],
    *,
    interrupted: bool,
    all_ports: bool,
    finished: bool,
) -> str:
    """What the scan is doing, in words for the display."""
    from flanscan._scan.jobs import running

    if finished:
        failed = any(j.status.status != "done" for j in jobs)
        return "interrupted" if interrupted else ("incomplete" if failed else "finished")
    if not all_ports:
        return "scanning"
    phases = []
    if running(jobs, "discovery"):
        phases.append("discovering ports")
    if running(jobs, "service") or pending:
        phases.append("detecting services")
    return ", ".join(phases) or "detecting services"
