"""The read interface the matcher needs from the vulnerability database.

Kept apart from `_vulndb` so the matcher depends on an interface, not on the storage.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

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


class AffectedData(NamedTuple):
    """One source's affected-version statement for a CVE (CVE 5 record or override), as stored
    by `flanscan._vulndb` (see `_vulndb/sources/cve5.py` and `overrides.py` for the shapes)."""

    cve_id: str
    source: str  # "cve5" | "overrides"
    data: dict[str, Any]


class UnstableFix(NamedTuple):
    """A distribution's statement for its development release (Debian unstable)."""

    cve_id: str
    package: str
    fixed_version: str | None  # "0": the package was never affected; None: not fixed
    note: str | None


@runtime_checkable
class TierLookup(Protocol):
    """What the sources beyond NVD configurations offer the matcher (optional for a lookup)."""

    def affected_candidates(self, names: Sequence[str]) -> Sequence[AffectedData]:
        """Statements whose index names (`s:vendor / product`, `p:package`, `c:vendor:product`)
        include any of `names`."""
        ...

    def unstable_fixes(self, packages: Sequence[str]) -> Sequence[UnstableFix]:
        """Debian unstable rows for these source packages."""
        ...

    def description_candidates(self, product: str) -> Sequence[tuple[str, str]]:
        """(CVE id, description) of CVEs without NVD configurations naming a registry product."""
        ...

    def debian_packages(self) -> Sequence[str]:
        """Every source package name the distribution data mentions for unstable."""
        ...
