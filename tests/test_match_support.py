"""Test helper for the matcher tests: the real NVD sample served through `VulnLookup`.

`SampleLookup` is test-only. It reads ../shared/nvd-sample/nvdcve-2.0-sample.json and answers
`candidates()` / `vulnerabilities()` the way the Protocol in flanscan/_lookup.py says: rejected
CVEs and CVEs without configurations are never candidates. The tests at the bottom check that
the helper keeps that contract, so the matcher tests built on it can be trusted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from flanscan._lookup import CveConfigurations
from flanscan._model import CvssScore, Vulnerability

SAMPLE_NAME = "nvdcve-2.0-sample.json"


def _unescape(name: str) -> str:
    return name.replace("\\", "").lower()


def _names(configurations: list[dict[str, Any]]) -> set[tuple[str, str]]:
    out: set[tuple[str, str]] = set()
    for conf in configurations:
        for node in conf.get("nodes", []):
            for m in node.get("cpeMatch", []):
                parts = m["criteria"].split(":")
                out.add((_unescape(parts[3]), _unescape(parts[4])))
    return out


def _cvss(metrics: dict[str, Any]) -> CvssScore | None:
    for key, version in (
        ("cvssMetricV40", "4.0"),
        ("cvssMetricV31", "3.1"),
        ("cvssMetricV30", "3.0"),
        ("cvssMetricV2", "2.0"),
    ):
        entries = metrics.get(key) or []
        entries = sorted(entries, key=lambda e: e.get("type") != "Primary")
        if entries:
            data = entries[0]["cvssData"]
            return CvssScore(
                float(data["baseScore"]), version, data.get("vectorString"), entries[0]["source"]
            )
    return None


class SampleLookup:
    """The NVD sample as a `VulnLookup` (test helper, not the real database)."""

    def __init__(self, records: Iterable[dict[str, Any]]) -> None:
        self.records = {r["id"]: r for r in records}
        self.calls: list[tuple[str, str]] = []
        self._index: dict[tuple[str, str], list[str]] = {}
        for cve_id, rec in sorted(self.records.items()):
            if rec.get("vulnStatus") == "Rejected" or not rec.get("configurations"):
                continue
            for name in _names(rec["configurations"]):
                self._index.setdefault(name, []).append(cve_id)

    def candidates(self, vendor: str, product: str) -> Sequence[CveConfigurations]:
        self.calls.append((vendor, product))
        ids = self._index.get((_unescape(vendor), _unescape(product)), [])
        return [CveConfigurations(i, self.records[i]["configurations"]) for i in ids]

    def vulnerabilities(self, cve_ids: Iterable[str]) -> dict[str, Vulnerability]:
        out: dict[str, Vulnerability] = {}
        for cve_id in cve_ids:
            rec = self.records.get(cve_id)
            if rec is None:
                continue
            summary = next(
                (d["value"] for d in rec.get("descriptions", []) if d["lang"] == "en"), None
            )
            cwes = tuple(
                d["value"]
                for w in rec.get("weaknesses", [])
                for d in w["description"]
                if d["value"].startswith("CWE-")
            )
            out[cve_id] = Vulnerability(
                id=cve_id,
                summary=summary,
                published=rec.get("published", "")[:10] or None,
                cvss=_cvss(rec.get("metrics") or {}),
                cwes=tuple(dict.fromkeys(cwes)),
                url=f"https://nvd.nist.gov/vuln/detail/{cve_id}",
            )
        return out


@cache
def load_records(path: Path) -> tuple[dict[str, Any], ...]:
    """The sample's `cve` objects (cached: the file is read-only)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return tuple(v["cve"] for v in data["vulnerabilities"])


@pytest.fixture
def records(nvd_sample: Path) -> dict[str, dict[str, Any]]:
    """CVE id -> the sample's `cve` object."""
    return {r["id"]: r for r in load_records(nvd_sample / SAMPLE_NAME)}


@pytest.fixture
def lookup(nvd_sample: Path) -> SampleLookup:
    return SampleLookup(load_records(nvd_sample / SAMPLE_NAME))


# --------------------------------------------------------------------------- the helper's contract


def test_helper_never_serves_rejected_or_unanalysed_records(
    lookup: SampleLookup, records: dict[str, dict[str, Any]]
) -> None:
    served = {i for ids in lookup._index.values() for i in ids}
    rejected = {i for i, r in records.items() if r.get("vulnStatus") == "Rejected"}
    unanalysed = {i for i, r in records.items() if not r.get("configurations")}
    assert rejected and unanalysed
    assert not served & (rejected | unanalysed)
    assert "CVE-2023-48795" in unanalysed  # Terrapin copy without configurations


def test_helper_candidates_name_the_product(lookup: SampleLookup) -> None:
    found = lookup.candidates("openbsd", "openssh")
    assert found
    for cve in found:
        assert any(
            "cpe:2.3:a:openbsd:openssh:" in m["criteria"]
            for conf in cve.configurations
            for node in conf["nodes"]
            for m in node["cpeMatch"]
        )
