"""Alerts after a scan: one message per run listing what is new, to JSON webhooks, Slack-
compatible webhooks, and email. Failures are retried, then returned (never raised), so the
caller keeps the results and turns failures into exit code 4.

    failures = send_alerts(["https://hooks.example/flan"], report, changes, Severity.HIGH)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from flanscan._deadline import DeadlineExceeded, call_with_deadline
from flanscan._errors import UsageError
from flanscan._model import ChangeSummary, Report, Severity
from flanscan._notify._http import SLACK_PREFIX, is_slack, post_json, slack_payload
from flanscan._notify._message import Alert, AlertEntry, build_alert
from flanscan._notify._retry import (
    PermanentFailure,
    RetryPolicy,
    TransientFailure,
    with_retries,
)
from flanscan._notify._smtp import SCHEMES as SMTP_SCHEMES
from flanscan._notify._smtp import parse_smtp_url, send_email, valid_url
from flanscan._secrets import mask_text

__all__ = [
    "Alert",
    "AlertEntry",
    "DeliveryFailure",
    "RetryPolicy",
    "build_alert",
    "check_notify_urls",
    "describe_destination",
    "send_alerts",
]


@dataclass(frozen=True)
class DeliveryFailure:
    """An alert that did not arrive; `destination` has no secrets (no path, no credentials)."""

    destination: str
    error: str
    attempts: int

    def __str__(self) -> str:
        tries = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        return mask_text(f"{self.destination}: {self.error} (after {tries})")


def describe_destination(url: str) -> str:
    """Kind and host of an alert URL: webhook paths (Slack's is the secret) are left out."""
    kind = "email" if urlsplit(url).scheme in SMTP_SCHEMES else (
        "slack" if is_slack(url) else "webhook"
    )  # fmt: skip
    bare = url[len(SLACK_PREFIX) :] if url.startswith(SLACK_PREFIX) else url
    parts = urlsplit(bare)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ":?"
    return f"{kind} {parts.scheme}://{parts.hostname or '?'}{port}"


def check_notify_urls(urls: Sequence[str]) -> None:
    """Reject unusable --notify values before scanning (UsageError naming the value)."""
    for url in urls:
        valid_url(url)
        scheme = urlsplit(url).scheme
        if scheme in SMTP_SCHEMES:
            parse_smtp_url(url)
        elif scheme in ("http", "https", "slack+https", "slack+http"):
            if not urlsplit(url).hostname:
                raise UsageError(f"--notify {describe_destination(url)}: the URL has no host")
        else:
            shown = f"{scheme}://..." if "://" in url else mask_text(url)
            raise UsageError(
                f"--notify {shown}: unsupported; use https:// (JSON "
                "webhook), slack+https:// (Slack-compatible), smtps:// or smtp:// (email)"
            )


def _sender(url: str, alert: Alert, timeout: float) -> Callable[[], None]:
    scheme = urlsplit(url).scheme
    send: Callable[[], None]
    if scheme in SMTP_SCHEMES:
        send = lambda: send_email(url, alert, timeout)  # noqa: E731
    else:
        payload = slack_payload(alert) if is_slack(url) else alert.as_json()
        send = lambda: post_json(url, payload, timeout)  # noqa: E731

    def within_deadline() -> None:
        # The libraries' timeouts are per read: a peer trickling bytes would never time out.
        try:
            call_with_deadline(send, timeout, "delivery")
        except DeadlineExceeded as exc:
            raise TransientFailure(str(exc)) from None

    return within_deadline


def send_alerts(
    urls: Sequence[str],
    report: Report,
    changes: ChangeSummary,
    min_severity: Severity = Severity.HIGH,
    *,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[DeliveryFailure]:
    """Send one alert per URL when the run has new open findings at or above `min_severity`
    (or newly in KEV); return the deliveries that failed after retries."""
    alert = build_alert(report, changes, min_severity)
    if alert is None or not urls:
        return []
    policy = retry or RetryPolicy.from_env()
    failures: list[DeliveryFailure] = []
    for url in urls:
        try:
            check_notify_urls([url])
            send = _sender(url, alert, policy.timeout)
        except UsageError as exc:
            failures.append(DeliveryFailure(describe_destination(url), str(exc), 0))
            continue

        def guarded(send: Callable[[], None] = send) -> None:
            try:
                send()
            except UsageError as exc:  # e.g. a malformed URL found late
                raise PermanentFailure(str(exc)) from exc

        attempts, error = with_retries(guarded, policy, sleep)
        if error is not None:
            failures.append(DeliveryFailure(describe_destination(url), error, attempts))
    return failures
