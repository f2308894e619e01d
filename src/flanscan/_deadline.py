"""A total deadline for one network call.

Client libraries (httpx, smtplib, boto3, google-cloud-storage) only offer per-read timeouts: a
peer that sends one byte every few seconds keeps a call alive forever. `call_with_deadline`
runs the call on a daemon thread and gives up when the total time is spent; the abandoned
thread ends with its socket's own timeout or with the process (flan is a command that exits).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DeadlineExceeded(Exception):
    """The call did not finish within its total deadline."""


def deadline_from_env(name: str, default: float) -> float:
    """Seconds from environment variable `name` (a positive number), else `default`."""
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return value if value > 0 else default


def call_with_deadline(fn: Callable[[], T], seconds: float, what: str) -> T:
    """`fn()`, or DeadlineExceeded naming `what` when it takes longer than `seconds` in all.
    Exceptions of `fn` are raised here unchanged."""
    box: dict[str, object] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread below
            box["error"] = exc

    thread = threading.Thread(target=run, name=f"deadline: {what}", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise DeadlineExceeded(f"{what}: no complete answer within {seconds:g} s (total deadline)")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["value"]  # type: ignore[return-value]
