"""An Nmap worker's record (`WorkerStatus`), the engine's bookkeeping of one (`Job`), and what
the finished set of them says: the targets not fully checked, the warnings, host counts, and
the scan's result. Nothing here schedules or launches anything."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from flanscan._model import ScanSummary
from flanscan._nmapopts import mask_command
from flanscan._records import WorkerPhase, WorkerRecord, WorkerState
from flanscan._scan import nmapout
from flanscan._scan.process import NmapProcess

PortKey = tuple[str, str, int]  # (address, protocol, port)


@dataclass(frozen=True)
class WorkerStatus:
    """One Nmap process of a run and how it ended."""

    name: str
    phase: WorkerPhase
    targets: tuple[str, ...]
    command: tuple[str, ...]
    xml: Path | None  # relative to the run directory; None when Nmap wrote no byte of XML
    log: Path
    status: WorkerState = "pending"
    exit_code: int | None = None
    start: datetime | None = None
    end: datetime | None = None
    error: str | None = None
    hosts: int = 0  # hosts it covers

    def record(self) -> WorkerRecord:
        """This worker as run.json lists it (command masked)."""
        return WorkerRecord(
            name=self.name,
            phase=self.phase,
            status=self.status,
            targets=self.targets,
            hosts=self.hosts,
            command=mask_command(shlex.join(self.command)),
            xml=str(self.xml) if self.xml is not None else None,
            log=str(self.log),
            exit_code=self.exit_code,
            start=self.start,
            end=self.end,
            error=self.error,
        )


@dataclass
class Job:
    """A planned or running Nmap process."""

    status: WorkerStatus
    count: int
    proc: NmapProcess | None = None
    parser: nmapout.NmapOutputParser = field(default_factory=nmapout.NmapOutputParser)
    hosts_completed: int = 0
    remaining: float | None = None
    remaining_at: float = 0.0
    done_line: nmapout.Done | None = None
    service_keys: tuple[tuple[str, str, int], ...] = ()
    counts_hosts: bool = True  # False for the known-ports pass (the full pass counts them)
    after: Job | None = None  # start once this job has ended (full pass after known pass)
    port_scan_done: bool = False  # Nmap reported the end of its (first) port scan


def running(jobs: Sequence[Job], phase: WorkerPhase | None = None) -> list[Job]:
    """The jobs whose Nmap is running (of one phase, when given)."""
    return [
        j for j in jobs
        if j.status.status == "running" and (phase is None or j.status.phase == phase)
    ]  # fmt: skip


@dataclass(frozen=True)
class ScanResult:
    """What a scan did: where its XML is, which Nmap commands ran, and whether it finished."""

    run_dir: Path
    targets: tuple[str, ...]
    excludes: tuple[str, ...]
    profile: str  # "top1000" | "all" | the Nmap port list given to --ports
    profile_description: str
    ports: str  # port scope in Nmap's words: "top-1000", "1-65535", "U:161"
    nmap_path: str
    nmap_version: str
    start: datetime
    end: datetime
    workers: tuple[WorkerStatus, ...]
    complete: bool
    interrupted: bool = False
    warnings: tuple[str, ...] = ()
    incomplete_targets: tuple[str, ...] = ()
    skipped_targets: tuple[str, ...] = ()  # named, but left out by Nmap (unresolved, timed out)
    hosts_total: int = 0
    hosts_up: int = 0
    hosts_down: int = 0
    open_ports: int = 0
    services: int = 0

    @property
    def xml_files(self) -> tuple[Path, ...]:
        """Absolute paths of the XML files Nmap wrote (empty files left out)."""
        paths = [self.run_dir / w.xml for w in self.workers if w.xml is not None]
        return tuple(p for p in paths if p.is_file() and p.stat().st_size > 0)

    @property
    def nmap_commands(self) -> tuple[str, ...]:
        return tuple(
            mask_command(shlex.join(w.command)) for w in self.workers if w.status != "not-started"
        )

    def summary(self) -> ScanSummary:
        """The report's header: what was scanned, how and when."""
        return ScanSummary(
            targets=self.targets,
            excluded=self.excludes,
            nmap_commands=self.nmap_commands,
            nmap_version=self.nmap_version or None,
            start=self.start,
            end=self.end,
            profile=self.profile_description,
            xml_files=tuple(str(p) for p in self.xml_files),
            warnings=self.warnings,
            hosts_up=self.hosts_up,
            hosts_down=self.hosts_down,
            ports=self.ports,
            incomplete_targets=self.incomplete_targets,
            run_id=self.run_dir.name,
        )


def drop_empty_xml(jobs: Sequence[Job], run_dir: Path) -> None:
    """A worker stopped before Nmap wrote anything has no XML: its empty file is removed and
    run.json says `"xml": null` (its targets are listed as not checked)."""
    for job in jobs:
        xml = job.status.xml
        if xml is None or job.status.status == "done":
            continue
        if job.proc is not None and job.proc.returncode is None:
            continue  # still running after the drain: Nmap may yet write to it
        path = run_dir / xml
        try:
            empty = path.stat().st_size == 0
        except FileNotFoundError:
            empty = True
        if empty:
            path.unlink(missing_ok=True)
            job.status = replace(job.status, xml=None)


def incomplete_targets(
    jobs: Sequence[Job], pending: Sequence[PortKey], skipped: Mapping[str, str]
) -> list[str]:
    """Targets of every worker that did not finish, hosts with ports never probed, and targets
    Nmap left out (`skipped`: target -> why)."""
    targets: list[str] = []
    for job in jobs:
        if job.status.status not in ("done",):
            targets.extend(job.status.targets)
    targets.extend(k[0] for k in pending)
    targets.extend(skipped)
    return list(dict.fromkeys(targets))


def failure_warnings(
    jobs: Sequence[Job], pending: Sequence[PortKey], interrupted: bool, skipped: Mapping[str, str]
) -> list[str]:
    """What the user must know about workers that failed and work left undone."""
    warnings: list[str] = []
    for job in jobs:
        if job.status.status == "failed":
            warnings.append(
                f"Nmap worker {job.status.name} failed ({job.status.error}); its targets "
                f"were not fully checked (log: {job.status.log})"
            )
    if pending:
        warnings.append(
            f"{len(pending)} open port(s) found by discovery were never probed for "
            "their service (scan interrupted)"
        )
    for target, reason in skipped.items():
        warnings.append(f"target {target} was not checked: {reason}")
    if interrupted:
        warnings.append("the scan was interrupted; results cover only what finished")
    return warnings


def host_counts(jobs: Sequence[Job]) -> tuple[int, int]:
    """(hosts up, hosts down) from the Nmap workers that counted them."""
    up = down = 0
    for job in jobs:
        if job.counts_hosts and job.status.phase != "service" and job.done_line is not None:
            up += job.done_line.hosts_up
            down += job.done_line.addresses - job.done_line.hosts_up
    return up, down
