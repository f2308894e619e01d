"""What to upgrade to: per service, the smallest upstream version that fixes all of its open
findings, and for distribution builds the tracker's fixed package versions.

The upstream fix is read from the upper bounds of the ranges that matched: an excluded end
(`< 9.3p2`) is the fixed version; an included end (`<= 9.3`) only says that some later version
fixes it ("later than 9.3"). A finding whose ranges have no upper bound has no fixed version
known. This module is the one reader of the range notation the matcher writes
(`MatchEvidence.version_range`: `< X`, `>= A, <= B`, `= X`, several ranges joined by `; `,
`fixed in A, B (per release branch)`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from flanscan._distro._dpkg import parse_dpkg_version
from flanscan._match.versions import compare_versions
from flanscan._model import Finding, FindingStatus, ServiceReport


@dataclass(frozen=True, order=True)
class _Bound:
    version: str
    inclusive: bool  # True: `<= version` (still affected), False: `< version` (fixed)


@dataclass(frozen=True)
class DistributionFix:
    """The fixed package version a distribution's tracker gives for a detected package build."""

    distribution: str
    release: str | None
    source_package: str | None
    fixed_version: str
    findings: tuple[str, ...]  # the CVE ids this version fixes

    @property
    def text(self) -> str:
        where = " ".join(p for p in (self.distribution, self.release) if p)
        package = self.source_package or "package"
        return f"{package} {self.fixed_version} ({where})"


@dataclass(frozen=True)
class Remediation:
    """The fix of one service's open findings; `upgrade_to` None with open findings means no
    fixed version is known for any of them."""

    upgrade_to: str | None = None
    later_than: bool = False  # True: a version later than `upgrade_to` (an included end)
    without_fix: tuple[str, ...] = ()  # open CVE ids no known version fixes
    distribution: tuple[DistributionFix, ...] = ()
    open_findings: int = 0

    @property
    def needed(self) -> bool:
        return self.open_findings > 0

    @property
    def upstream_text(self) -> str:
        """`upgrade to 9.3p2`, `upgrade to a version later than 9.3`, or that none is known."""
        if self.upgrade_to is None:
            return "no fixed version known" if self.needed else "nothing to fix"
        if self.later_than:
            text = f"upgrade to a version later than {self.upgrade_to}"
        else:
            text = f"upgrade to {self.upgrade_to} or later"
        if self.without_fix:
            text += f" (no fixed version known for {', '.join(self.without_fix)})"
        return text

    @property
    def text(self) -> str:
        """One line: the upstream fix, then the distribution packages."""
        if not self.needed:
            return "nothing to fix"
        parts = [self.upstream_text]
        if self.distribution:
            fixes = ", ".join(d.text for d in self.distribution)
            parts.append(f"distribution build: update to {fixes}")
        return "; ".join(parts)


_FIXED_IN = re.compile(r"^fixed in (.+?) \(per release branch\)$")


def _range_bounds(text: str, detected: str | None) -> list[_Bound] | None:
    """The upper bounds one range text gives; [] when it has none (any version, `>= X`);
    None when it is not in the matcher's notation."""
    text = text.strip()
    fixed_in = _FIXED_IN.match(text)
    if fixed_in:
        fixes = [v.strip() for v in fixed_in[1].split(",") if v.strip()]
        # Per release branch: the first fix above the detected version is this branch's.
        above = sorted(
            (v for v in fixes if detected and (compare_versions(detected, v) or 0) < 0),
            key=_VersionKey,
        )
        return [_Bound(above[0], False)] if above else []
    bounds: list[_Bound] = []
    for one in text.split(";"):
        for part in one.split(","):
            part = part.strip()
            if part.startswith("<="):
                bounds.append(_Bound(part[2:].split("(")[0].strip(), True))
            elif part.startswith("<"):
                bounds.append(_Bound(part[1:].split("(")[0].strip(), False))
            elif part.startswith("="):
                bounds.append(_Bound(part[1:].split("(")[0].strip(), True))
    return bounds


class _VersionKey:
    """Sort key from `compare_versions` (incomparable versions sort as equal)."""

    def __init__(self, version: str) -> None:
        self.version = version

    def __lt__(self, other: _VersionKey) -> bool:
        return (compare_versions(self.version, other.version) or 0) < 0


def _later(a: _Bound, b: _Bound) -> _Bound:
    """The bound a fix must pass: the higher version; at the same version an included end
    (`<= X`: X is affected) is later than an excluded one (`< X`: X fixes)."""
    order = compare_versions(a.version, b.version)
    if order is None:
        order = (a.version > b.version) - (a.version < b.version)
    if order == 0:
        return a if a.inclusive else b
    return a if order > 0 else b


def _finding_bound(finding: Finding) -> _Bound | None:
    """The upper bound a version must pass to be out of every range this finding matched."""
    found: _Bound | None = None
    for ev in finding.evidence:
        bounds = _range_bounds(ev.version_range, ev.detected_version)
        for bound in bounds or ():
            # Only ends above the detected version are still ahead of the service.
            if ev.detected_version and bound.version:
                order = compare_versions(ev.detected_version, bound.version)
                if order is not None and (order > 0 or (order == 0 and not bound.inclusive)):
                    continue
            found = bound if found is None else _later(found, bound)
    return found


def _distribution_fixes(findings: Iterable[Finding]) -> tuple[DistributionFix, ...]:
    best: dict[tuple[str, str | None, str | None], tuple[str, list[str]]] = {}
    for f in findings:
        dist = f.distribution
        if dist is None or not dist.fixed_version or dist.fixed_version == "0":
            continue
        key = (dist.distribution, dist.release, dist.source_package)
        if key not in best:
            best[key] = (dist.fixed_version, [f.id])
            continue
        current, ids = best[key]
        ids.append(f.id)
        new, old = parse_dpkg_version(dist.fixed_version), parse_dpkg_version(current)
        if new is not None and old is not None and new > old:
            best[key] = (dist.fixed_version, ids)
    return tuple(
        DistributionFix(d, r, p, version, tuple(sorted(set(ids))))
        for (d, r, p), (version, ids) in sorted(best.items(), key=lambda kv: str(kv[0]))
    )


def remediation_of(service: ServiceReport) -> Remediation:
    """The fix of `service`'s open findings (see the module docstring)."""
    open_findings = [sf.finding for sf in service.findings if sf.finding.status.is_open]
    if not open_findings:
        return Remediation()
    target: _Bound | None = None
    without: list[str] = []
    for finding in open_findings:
        bound = _finding_bound(finding)
        if bound is None:
            without.append(finding.id)
        else:
            target = bound if target is None else _later(target, bound)
    # Distribution builds: what the tracker fixed, for the findings still open on this build.
    in_distribution = [
        f
        for f in open_findings
        if f.distribution is not None and f.status is not FindingStatus.FIXED_BY_DISTRIBUTION
    ]
    return Remediation(
        upgrade_to=target.version if target else None,
        later_than=bool(target and target.inclusive),
        without_fix=tuple(sorted(set(without))),
        distribution=_distribution_fixes(in_distribution),
        open_findings=len({f.id for f in open_findings}),
    )


__all__ = ["DistributionFix", "Remediation", "remediation_of"]
