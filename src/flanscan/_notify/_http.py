"""Alerts over HTTP: a generic JSON webhook, and Slack-compatible incoming webhooks."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

import httpx

from flanscan._notify._message import Alert, clean
from flanscan._notify._retry import PermanentFailure, TransientFailure

SLACK_PREFIX = "slack+"
SLACK_HOSTS = ("hooks.slack.com",)
SLACK_MAX_ENTRIES = 20  # Slack allows 50 blocks per message; keep it readable


def is_slack(url: str) -> bool:
    """`slack+https://...` (any Slack-compatible receiver, e.g. Mattermost) or hooks.slack.com."""
    if url.startswith(SLACK_PREFIX):
        return True
    return (urlsplit(url).hostname or "") in SLACK_HOSTS


def _slack_escape(text: str) -> str:
    # Slack mrkdwn control characters; host-supplied text must not become links or mentions.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(alert: Alert) -> dict[str, object]:
    """Slack message: the title, then one section per vulnerability with its link."""
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": {"type": "plain_text", "text": clean(alert.title, 150)}}
    ]
    since = alert.since.strftime("%Y-%m-%d %H:%M UTC") if alert.since else "the previous run"
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": _slack_escape(f"Run {alert.run_id or '-'}: changes since {since}"),
                }
            ],
        }
    )
    for e in alert.entries[:SLACK_MAX_ENTRIES]:
        kev = " · *in CISA KEV*" if e.kev else ""
        shown = ", ".join(e.locations[:10]) + (
            f" and {len(e.locations) - 10} more" if len(e.locations) > 10 else ""
        )
        text = (
            f"*<{e.link}|{_slack_escape(e.vuln_id)}>* ({e.severity.label}{kev}, {e.why}) "
            f"{_slack_escape(e.service)}\n{_slack_escape(shown)}"
        )
        if e.summary:
            text += f"\n_{_slack_escape(clean(e.summary, 200))}_"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    rest = len(alert.entries) - SLACK_MAX_ENTRIES
    if rest > 0:
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"and {rest} more vulnerabilities"}],
            }
        )
    return {"text": _slack_escape(alert.title), "blocks": blocks}


def post_json(url: str, payload: dict[str, object], timeout: float) -> None:
    """POST the payload; raise Transient/PermanentFailure by what a retry could change."""
    target = url[len(SLACK_PREFIX) :] if url.startswith(SLACK_PREFIX) else url
    try:
        response = httpx.post(
            target,
            content=json.dumps(payload).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "flanscan"},
            timeout=timeout,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise TransientFailure(f"{type(exc).__name__}: {clean(str(exc), 120)}") from exc
    if response.is_success:
        return
    message = f"HTTP {response.status_code} {clean(response.reason_phrase, 60)}"
    if response.status_code >= 500 or response.status_code in (408, 429):
        raise TransientFailure(message)
    raise PermanentFailure(message)
