"""Ctrl-C (and SIGTERM, when the caller treats it as one) during a scan, as a flag.

Python raises KeyboardInterrupt at whatever bytecode runs when the signal lands: between
starting an Nmap and recording it as running, the engine would lose track of that process
(never stopped, its empty XML kept). With the handler below, the signal only sets a flag and
the engine's loop stops every Nmap at its next step, within a fraction of a second.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

_Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


class StopRequest:
    """Whether the user asked the scan to stop."""

    def __init__(self) -> None:
        self.requested = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True


def _caught(signum: signal.Signals) -> bool:
    """SIGINT while Python turns it into KeyboardInterrupt; SIGTERM only when the caller
    installed a handler for it (flan scan treats it as Ctrl-C; a library user may not)."""
    current = signal.getsignal(signum)
    if signum == signal.SIGINT:
        return current is signal.default_int_handler
    return callable(current)


@contextmanager
def stop_signals() -> Iterator[StopRequest]:
    """A StopRequest set by Ctrl-C while the block runs (outside the main thread, where no
    handler can be installed, it stays unset and KeyboardInterrupt keeps its usual path)."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous: dict[signal.Signals, _Handler] = {}
    try:
        for signum in (signal.SIGINT, signal.SIGTERM):
            if _caught(signum):
                previous[signum] = signal.signal(signum, stop._handle)
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
