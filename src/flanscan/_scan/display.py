"""Progress displays for the terminal: a live rich bar, or a few plain log lines."""

from __future__ import annotations

import time
from typing import IO, Any

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn

from flanscan._scan.progress import ScanProgress


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def describe(progress: ScanProgress) -> str:
    """One line: hosts done / total, open ports, services, elapsed, ETA."""
    return (
        f"{progress.hosts_done}/{progress.hosts_total} hosts, {progress.open_ports} open ports, "
        f"{progress.services} services, {_clock(progress.elapsed)} elapsed, "
        f"ETA {_clock(progress.eta)}"
    )


class LiveDisplay:
    """A rich progress bar driven by the engine's snapshots (for a terminal)."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} hosts"),
            TextColumn("· {task.fields[ports]} open ports · {task.fields[services]} services"),
            TextColumn("· {task.fields[elapsed]} elapsed · ETA {task.fields[eta]}"),
            console=console,
            transient=False,
        )
        self._task: TaskID | None = None

    def _fields(self, p: ScanProgress) -> dict[str, Any]:
        return {
            "ports": p.open_ports,
            "services": p.services,
            "elapsed": _clock(p.elapsed),
            "eta": _clock(p.eta),
        }

    def note(self, message: str) -> None:
        self._console.print(f"[yellow]note:[/] {message}", highlight=False, markup=True)

    def update(self, progress: ScanProgress) -> None:
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task(
                progress.phase, total=max(progress.hosts_total, 1), **self._fields(progress)
            )
        self._progress.update(
            self._task,
            description=progress.phase,
            completed=progress.hosts_done,
            **self._fields(progress),
        )

    def close(self, progress: ScanProgress) -> None:
        self.update(progress)
        self._progress.stop()


class PlainDisplay:
    """A few plain lines (for logs and pipes): the start, phase changes, a heartbeat, the end."""

    def __init__(self, stream: IO[str], heartbeat: float = 60.0) -> None:
        self._stream = stream
        self._heartbeat = heartbeat
        self._phase: str | None = None
        self._last = 0.0

    def _say(self, text: str) -> None:
        print(f"flan: {text}", file=self._stream, flush=True)

    def note(self, message: str) -> None:
        self._say(f"note: {message}")

    def update(self, progress: ScanProgress) -> None:
        now = time.monotonic()
        if progress.phase != self._phase:
            self._phase = progress.phase
            self._last = now
            self._say(f"{progress.phase}: {describe(progress)}")
        elif now - self._last >= self._heartbeat:
            self._last = now
            self._say(f"{progress.phase}: {describe(progress)}")

    def close(self, progress: ScanProgress) -> None:
        self._say(f"scan {progress.phase}: {describe(progress)}")
