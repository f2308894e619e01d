"""Progress displays for the terminal: a live rich bar, or a few plain log lines."""

from __future__ import annotations

import time
from typing import IO, Any

from rich.console import Console
from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TaskID
from rich.text import Text

from flanscan._scan.progress import ScanProgress


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


# Nmap's own estimate of the time left goes stale between snapshots (a host that stalls gives
# none for a while): the display counts it down from when it was given, and drops it once it ran
# out or is older than this, rather than show a number no longer true.
_ETA_STALE_AFTER = 60.0


def describe(progress: ScanProgress, since: float = 0.0) -> str:
    """Hosts done / total, open ports, services, elapsed, time left: `since` seconds after the
    snapshot was taken (elapsed counts up, the time left down; no stale ETA)."""
    parts = [
        f"{progress.hosts_done}/{progress.hosts_total} hosts",
        f"{progress.open_ports} open",
        f"{progress.services} svc",
        _clock(progress.elapsed + since),
    ]
    if progress.eta is not None and not progress.finished and since <= _ETA_STALE_AFTER:
        left = progress.eta - since
        if left > 0:
            parts.append(f"ETA {_clock(left)}")
    return ", ".join(parts)


def progress_line(progress: ScanProgress, since: float = 0.0, width: int = 78) -> str:
    """`phase: counts`, at most `width` columns: the phase is shortened to fit, never the
    counts (78: an 80-column terminal less the spinner)."""
    counts = describe(progress, since)
    room = width - len(counts) - 2
    phase = progress.phase
    if len(phase) > room:
        phase = phase[: max(room - 1, 0)] + "…" if room > 1 else ""
    line = f"{phase}: {counts}" if phase else counts
    return line[:width]


class _LineColumn(ProgressColumn):
    """The whole progress text, made when the line is drawn (not when the snapshot came)."""

    def render(self, task: Task) -> Text:
        snapshot: ScanProgress = task.fields["snapshot"]
        since = time.monotonic() - float(task.fields["at"])
        return Text(progress_line(snapshot, since))


class LiveDisplay:
    """A one-line live display driven by the engine's snapshots (for a terminal): a spinner and
    `progress_line`, which fits an 80-column terminal."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._progress = Progress(
            SpinnerColumn(), _LineColumn(), console=console, transient=False, expand=False
        )
        self._task: TaskID | None = None

    def note(self, message: str) -> None:
        self._console.print(f"[yellow]note:[/] {message}", highlight=False, markup=True)

    def update(self, progress: ScanProgress) -> None:
        fields: dict[str, Any] = {"snapshot": progress, "at": time.monotonic()}
        if self._task is None:
            self._progress.start()
            self._task = self._progress.add_task(
                progress.phase, total=max(progress.hosts_total, 1), **fields
            )
        self._progress.update(self._task, completed=progress.hosts_done, **fields)

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
            self._say(progress_line(progress, width=74))
        elif now - self._last >= self._heartbeat:
            self._last = now
            self._say(progress_line(progress, width=74))

    def close(self, progress: ScanProgress) -> None:
        self._say(f"scan {progress.phase}: {describe(progress)}")  # the last line: no ETA
