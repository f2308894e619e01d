"""Retry a delivery a few times with growing pauses; the pauses are configurable (tests)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from flanscan._deadline import deadline_from_env


class PermanentFailure(Exception):
    """A failure that retrying cannot fix (bad request, refused recipient, bad credentials)."""


class TransientFailure(Exception):
    """A failure worth retrying (connection refused, timeout, HTTP 5xx or 429)."""


@dataclass(frozen=True)
class RetryPolicy:
    """`attempts` tries in all, sleeping `delays[i]` before try i+2 (the last delay repeats)."""

    attempts: int = 3
    delays: tuple[float, ...] = (2.0, 10.0)
    timeout: float = 15.0  # total deadline per attempt (HTTP request, SMTP session)

    @classmethod
    def from_env(cls) -> RetryPolicy:
        """Defaults, or FLAN_NOTIFY_RETRY_DELAYS="0.1,0.2" (also sets attempts to delays + 1)
        and FLAN_NOTIFY_TIMEOUT (seconds, the total deadline of one attempt)."""
        timeout = deadline_from_env("FLAN_NOTIFY_TIMEOUT", cls.timeout)
        raw = os.environ.get("FLAN_NOTIFY_RETRY_DELAYS", "").strip()
        if not raw:
            return cls(timeout=timeout)
        try:
            delays = tuple(float(x) for x in raw.split(",") if x.strip())
        except ValueError:
            return cls(timeout=timeout)
        return cls(attempts=len(delays) + 1, delays=delays, timeout=timeout)

    def delay(self, attempt: int) -> float:
        """Pause after failed attempt number `attempt` (1-based)."""
        if not self.delays:
            return 0.0
        return self.delays[min(attempt - 1, len(self.delays) - 1)]


def with_retries(
    send: Callable[[], None], policy: RetryPolicy, sleep: Callable[[float], None] = time.sleep
) -> tuple[int, str | None]:
    """Call `send` until it succeeds; return (attempts made, last error or None)."""
    error: str | None = None
    for attempt in range(1, max(1, policy.attempts) + 1):
        try:
            send()
            return attempt, None
        except PermanentFailure as exc:
            return attempt, str(exc)
        except TransientFailure as exc:
            error = str(exc)
        if attempt < policy.attempts:
            sleep(policy.delay(attempt))
    return max(1, policy.attempts), error
