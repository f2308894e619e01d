"""Retrying storage operations with growing pauses (permanent failures are not retried)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from flanscan._storage._sink import StorageError

T = TypeVar("T")

DELAYS_ENV = "FLAN_UPLOAD_RETRY_DELAYS"


@dataclass(frozen=True)
class RetryPolicy:
    """`len(delays) + 1` attempts, sleeping `delays[i]` seconds after failed attempt i+1."""

    delays: tuple[float, ...] = (1.0, 4.0, 15.0)

    @property
    def attempts(self) -> int:
        return len(self.delays) + 1

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """Defaults, or FLAN_UPLOAD_RETRY_DELAYS="0.1,0.2" (seconds between attempts)."""
        raw = os.environ.get(DELAYS_ENV, "").strip()
        if not raw:
            return cls()
        try:
            return cls(tuple(float(x) for x in raw.split(",") if x.strip()))
        except ValueError:
            return cls()


def retrying(
    operation: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, StorageError], None] | None = None,
) -> T:
    """Run `operation` until it succeeds; re-raise its last StorageError after the last attempt
    (at once when the error is permanent)."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return operation()
        except StorageError as exc:
            if exc.permanent or attempt == policy.attempts:
                raise
            if on_retry is not None:
                on_retry(attempt, exc)
            sleep(policy.delays[attempt - 1])
    raise AssertionError("unreachable")
