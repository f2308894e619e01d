"""Integrity, said aloud (issue 13, item 8, except shards): an NVD feed whose `vulnerabilities`
is not a list, or whose own count disagrees with its records, is refused by name; a suppression
rule for every address needs `allow_all: true`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flanscan._errors import UsageError
from flanscan._suppress import load_suppressions

FLAN = [sys.executable, "-m", "flanscan"]


def _import(feed: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLAN, "db", "import", "--db", str(tmp_path / "v.sqlite3"), str(feed)],
                          cwd=tmp_path, env=dict(os.environ), capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("value", [{}, "none", None, 7])
def test_feed_whose_vulnerabilities_is_not_a_list(value: object, tmp_path: Path) -> None:
    feed = tmp_path / "nvdcve-2.0-x.json"
    feed.write_text(json.dumps({"resultsPerPage": 0, "format": "NVD_CVE", "version": "2.0",
                                "timestamp": "2026-01-01T00:00:00.000",
                                "vulnerabilities": value}))  # fmt: skip
    line = _one_line(_import(feed, tmp_path))
    assert feed.name in line and "not a list of records" in line
    assert not (tmp_path / "v.sqlite3").exists()


@pytest.mark.parametrize("field", ["resultsPerPage", "totalResults"])
def test_feed_whose_count_disagrees_with_its_records(
    field: str, nvd_sample: Path, tmp_path: Path
) -> None:
    data = json.loads((nvd_sample / "nvdcve-2.0-sample.json").read_text())
    if field == "totalResults":
        del data["resultsPerPage"]
    data[field] = len(data["vulnerabilities"]) + 5  # records cut from the file
    feed = tmp_path / "nvdcve-2.0-cut.json"
    feed.write_text(json.dumps(data))
    line = _one_line(_import(feed, tmp_path))
    assert feed.name in line and f"{field} says" in line and "cut or altered" in line


def _rules(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text("suppressions:\n" + body)
    return path


@pytest.mark.parametrize(
    "body",
    [
        "  - cve: CVE-2024-0001\n    reason: r\n    owner: o\n",
        "  - cve: CVE-2024-0001\n    address: 0.0.0.0/0\n    reason: r\n    owner: o\n",
        "  - port: 22\n    address: ['127.0.0.1', '::/0']\n    reason: r\n    owner: o\n",
        "  - cve: CVE-2024-0001\n    allow_all: false\n    reason: r\n    owner: o\n",
    ],
)
def test_rule_for_every_address_needs_allow_all(body: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"rules\.yaml:2: rule applies to every address"):
        load_suppressions(_rules(tmp_path, body))


def test_allow_all_true_and_a_scoped_rule_are_accepted(tmp_path: Path) -> None:
    rules = load_suppressions(_rules(tmp_path, (
        "  - cve: CVE-2024-0001\n    allow_all: true\n    reason: r\n    owner: o\n"
        "  - cve: CVE-2024-0002\n    address: 127.0.0.0/8\n    reason: r\n    owner: o\n"
    )))  # fmt: skip
    assert len(rules.rules) == 2
    with pytest.raises(UsageError, match="allow_all: 'yes please' is not true or false"):
        load_suppressions(_rules(tmp_path, (
            "  - cve: CVE-2024-0001\n    allow_all: yes please\n    reason: r\n    owner: o\n"
        )))  # fmt: skip
