"""No secret leaked (issue 13, item 6): URL query passwords, credentials in refused s3:// and
gs:// URLs and Slack tokens in mistyped URLs are masked in every message, through one helper."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from flanscan._secrets import mask_text, mask_url

FLAN = [sys.executable, "-m", "flanscan"]
SECRET = "s3cr3t-9d1c"

# (input, what must remain visible)
MASKED_URLS = [
    (f"postgresql://flan@127.0.0.1:5432/h?password={SECRET}&sslmode=disable", "sslmode=disable"),
    (f"postgresql://flan:{SECRET}@127.0.0.1/h", "flan:***@127.0.0.1"),
    (f"s3://AKIA{SECRET}:{SECRET}@bucket/prefix", "@bucket/prefix"),
    (f"gs://{SECRET}@bucket/prefix", "@bucket/prefix"),
    (f"https://hooks.slack.com/services/T000/B000/{SECRET}", "https://hooks.slack.com/services/"),
    (f"slack+https://chat.invalid/hooks/{SECRET}", "slack+https://chat.invalid/"),
    (f"https://hook.invalid/x?token={SECRET}", "https://hook.invalid/x?token=***"),
    (f"https://hook.invalid/x?api-key={SECRET}&a=1", "a=1"),
    (f"https://s3.invalid/o?X-Amz-Signature={SECRET}", "X-Amz-Signature=***"),
    (f"https://user:{SECRET}@hook.invalid/", "user:***@hook.invalid"),
]


@pytest.mark.parametrize(("url", "kept"), MASKED_URLS)
def test_mask_url(url: str, kept: str) -> None:
    masked = mask_url(url)
    assert SECRET not in masked and kept in masked and "***" in masked
    assert SECRET not in mask_text(f"error: cannot reach {url}: refused")


def test_mask_text_catches_a_scheme_less_slack_address() -> None:
    text = mask_text(f"--notify hooks.slack.com/services/T000/B000/{SECRET}: unsupported")
    assert SECRET not in text and "hooks.slack.com/services/***" in text


def test_mask_url_survives_unparsable_urls() -> None:
    assert SECRET not in mask_url(f"http://[{SECRET}/x")


def _flan(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLAN, *args], cwd=cwd, env=dict(os.environ), capture_output=True,
                          text=True, timeout=120)  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ["scan", "127.0.0.1", "--no-db", "--output", f"s3://AKIAX:{SECRET}@bucket/p"],
        ["scan", "127.0.0.1", "--no-db", "--output", f"gs://{SECRET}@bucket/p"],
        ["merge", f"s3://key:{SECRET}@bucket/run", "--no-db"],
        ["scan", "127.0.0.1", "--no-db", "--notify", f"hooks.slack.com/services/T0/B0/{SECRET}"],
        ["scan", "127.0.0.1", "--no-db", "--notify", f"htps://hooks.slack.com/services/{SECRET}"],
        [
            "scan",
            "127.0.0.1",
            "--no-db",
            "--history",
            f"postgresql://flan@127.0.0.1:1/h?password={SECRET}&connect_timeout=2",
        ],
        ["history", "--history", f"postgresql://flan:{SECRET}@127.0.0.1:1/h"],
        [
            "scan",
            "127.0.0.1",
            "--no-db",
            "--notify",
            f"smtp://u:{SECRET}@127.0.0.1/?to=a@b.invalid",
        ],
    ],
)
def test_refused_urls_never_show_their_secret(args: list[str], tmp_path: Path) -> None:
    result = _flan(args, tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flan: error:"), result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert not (tmp_path / "flan-results").exists()  # refused before scanning
