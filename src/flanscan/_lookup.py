"""The read interface the matcher needs from the vulnerability database.

Kept apart from `_vulndb` so the matcher depends on an interface, not on the storage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Protocol

from flanscan._model import Vulnerability


class CveConfigurations(NamedTuple):
    """A CVE's NVD `configurations` array, exactly as published in the CVE 2.0 record."""

    cve_id: str
    configurations: list[dict[str, Any]]


class VulnLookup(Protocol):
    """What matching asks of a vulnerability database."""

    def candidates(self, vendor: str, product: str) -> Sequence[CveConfigurations]:
        """CVEs (not rejected) whose configurations name `vendor:product` in any cpeMatch."""
        ...

    def vulnerabilities(self, cve_ids: Iterable[str]) -> dict[str, Vulnerability]:
        """Full data (scores, summary, CWE, KEV, EPSS) for the given CVE ids that exist."""
        ...
