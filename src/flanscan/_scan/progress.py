"""Scan progress as plain data, and the small interface a display implements.

The engine never prints: it hands `ScanProgress` snapshots and one-off notes to a
`ProgressSink`. The CLI picks a live (rich) or plain display; tests use `RecordingProgress`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


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
