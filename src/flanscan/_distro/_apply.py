"""Distribution-aware findings: decide, per CVE, what the distribution's tracker says about the
package build a service runs, and record why.

Decisions (the finding is always kept; only its status and evidence change):
- tracker: fixed_version "0" in that release                      -> not-affected
- tracker: resolved, and the detected package version >= fixed    -> fixed-by-distribution
- tracker: resolved, and the detected package version <  fixed    -> confirmed (fix not installed)
- tracker: resolved, revision unknown, fix older than any build of the detected upstream
  version in that release                                         -> fixed-by-distribution
- tracker: resolved, revision unknown, fix only in a newer upstream version -> confirmed
- tracker: resolved, revision unknown, fix backported to this upstream version
                                                                  -> unconfirmed-distribution-build
- tracker: open                                                   -> confirmed (no fix released)
- anything else for a banner that says "distribution build"       -> unconfirmed-distribution-build
- a banner without a distribution marker whose host's release is known from another service is
  looked up the same way, but stays confirmed when the tracker cannot decide.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

from flanscan._distro._banner import TRACKED, DistroBuild, detect_build
from flanscan._distro._dpkg import epoch_of, parse_dpkg_version, with_epoch
from flanscan._distro._packages import source_package_for
from flanscan._distro._tracker import DistroTracker, TrackerEntry
from flanscan._model import (
    DistributionEvidence,
    Finding,
    FindingStatus,
    HostObservation,
    ServiceObservation,
)


@dataclasses.dataclass(frozen=True)
class _Context:
    build: DistroBuild
    marked: bool  # the service's own banner says it is a distribution build
    inherited_from: str | None = None


def _describe(service: ServiceObservation) -> str:
    return f"{service.port}/{service.protocol} {service.banner}".strip()


# (distribution, release) -> the first two services saying so: (port, protocol), label.
_Releases = dict[tuple[str, str], list[tuple[tuple[int, str], str]]]
_Detect = Callable[[ServiceObservation], DistroBuild | None]
_last_host: list[tuple[HostObservation, _Detect, _Releases]] = []


def _releases_of(host: HostObservation, detect: _Detect = detect_build) -> _Releases:
    """Every release the host's services name, computed once per host: asked for each of its
    services, a per-service scan of all the others made one host with 10,000 ports quadratic."""
    if _last_host and _last_host[0][0] is host and _last_host[0][1] is detect:
        return _last_host[0][2]
    found: _Releases = {}
    for other in host.services:
        build = detect(other)
        if build is not None and build.release is not None:
            seen = found.setdefault((build.distribution, build.release), [])
            if len(seen) < 2:
                seen.append(((other.port, other.protocol), _describe(other)))
    _last_host[:] = [(host, detect, found)]
    return found


def host_release(
    host: HostObservation,
    service: ServiceObservation | None = None,
    detect: Callable[[ServiceObservation], DistroBuild | None] = detect_build,
) -> tuple[str, str, str] | None:
    """(distribution, release, "port/proto banner") from the host's other services, when they
    agree on one release; None when none says, or two disagree (e.g. a container on the host)."""
    own = (service.port, service.protocol) if service is not None else None
    found: dict[tuple[str, str], str] = {}
    for named, sayers in _releases_of(host, detect).items():
        others = [label for key, label in sayers if key != own]
        if others:
            found[named] = others[0]
    if len(found) != 1:
        return None
    ((distribution, release), label) = next(iter(found.items()))
    return distribution, release, label


def _context(
    host: HostObservation,
    service: ServiceObservation,
    detect: Callable[[ServiceObservation], DistroBuild | None] = detect_build,
) -> _Context | None:
    build = detect(service)
    if build is not None and build.release is not None:
        return _Context(build, marked=True)
    inherited = host_release(host, service, detect)
    if build is None:
        if inherited is None:
            return None
        distribution, release, label = inherited
        # Only a plain version is one ("9.6.0 or later" is a bound, not the running version).
        words = (service.version or "").split()
        upstream = words[0] if len(words) == 1 else None
        source = source_package_for(service.cpes, service.product, upstream)
        if source is None:
            return None
        build = DistroBuild(
            distribution=distribution,
            marker="",
            release=release,
            source_package=source,
            upstream_version=upstream,
            release_from="another service on the host",
        )
        return _Context(build, marked=False, inherited_from=label)
    if inherited is not None and inherited[0] == build.distribution:
        build = dataclasses.replace(
            build, release=inherited[1], release_from="another service on the host"
        )
        return _Context(build, marked=True, inherited_from=inherited[2])
    return _Context(build, marked=True)


def _evidence(ctx: _Context, entry: TrackerEntry | None, note: str) -> DistributionEvidence:
    build = ctx.build
    return DistributionEvidence(
        distribution=build.distribution,
        release=build.release,
        source_package=build.source_package,
        package_version=build.package_version,
        tracker=entry.tracker if entry else None,
        tracker_status=_status_words(entry) if entry else None,
        fixed_version=entry.fixed_version if entry and entry.fixed_version != "0" else None,
        inherited_from=ctx.inherited_from,
        note=note,
    )


def _status_words(entry: TrackerEntry) -> str:
    if entry.fixed_version == "0":
        return "not-affected"
    words = entry.status
    if entry.urgency and entry.urgency != "not yet assigned":
        words += f" ({entry.urgency})"
    return words


def _decide(
    ctx: _Context, finding: Finding, tracker: DistroTracker | None
) -> tuple[FindingStatus, DistributionEvidence]:
    build = ctx.build
    base = FindingStatus.UNCONFIRMED_DISTRIBUTION if ctx.marked else finding.status
    where = f"{build.distribution} {build.release}" if build.release else build.distribution
    if build.distribution not in TRACKED:
        note = (
            f"{where} build ({build.marker}): the distribution backports fixes and the banner "
            "shows no package release, so the upstream version cannot confirm this CVE"
        )
        return base, _evidence(ctx, None, note)
    if build.release is None:
        note = (
            f"{where} build ({build.marker}): the banner does not say which release, and no "
            "other service on the host does; the CVE may be fixed by a backport"
        )
        return base, _evidence(ctx, None, note)
    if build.source_package is None:
        note = f"{where} build: no known source package for this product; tracker not consulted"
        return base, _evidence(ctx, None, note)
    if tracker is None or not tracker.covers(build.distribution, build.release):
        note = (
            f"{where} build: no {build.distribution} tracker data for {build.release} in the "
            "database (`flan db update` downloads it; offline, `flan db import` its files); "
            "the CVE may be fixed by a backport"
        )
        return base, _evidence(ctx, None, note)
    entry = tracker.entry(build.distribution, build.release, build.source_package, finding.id)
    if entry is None:
        note = (
            f"the {build.distribution} tracker lists no entry for {finding.id} in "
            f"{build.source_package} ({build.release})"
        )
        return base, _evidence(ctx, None, note)
    ref = f"{entry.tracker}: {entry.package} {finding.id} {entry.release} ({entry.url})"
    if entry.fixed_version == "0":
        return FindingStatus.NOT_AFFECTED, _evidence(
            ctx, entry, f"{ref}: {build.release} was never affected"
        )
    if entry.status == "open":
        extra = f"; {entry.note}" if entry.note else ""
        return FindingStatus.CONFIRMED, _evidence(
            ctx, entry, f"{ref}: no fix released for {build.release} yet{extra}"
        )
    if entry.status == "resolved" and entry.fixed_version:
        return _compare(ctx, entry, ref, base)
    return base, _evidence(ctx, entry, f"{ref}: status {entry.status}")


def _compare(
    ctx: _Context, entry: TrackerEntry, ref: str, base: FindingStatus
) -> tuple[FindingStatus, DistributionEvidence]:
    build = ctx.build
    fixed_text = entry.fixed_version or ""
    fixed = parse_dpkg_version(fixed_text)
    if fixed is None:
        return base, _evidence(ctx, entry, f"{ref}: unreadable fixed version {fixed_text!r}")
    epoch_note = ""
    if build.package_version is not None:
        installed_text = build.package_version
        if not build.epoch_known and epoch_of(installed_text) is None:
            # Unlisted package: within one release its epoch is the one of the tracker's fix.
            installed_text = with_epoch(installed_text, epoch_of(fixed_text))
            epoch_note = " (epoch taken from the tracker's fixed version)"
        installed = parse_dpkg_version(installed_text)
        if installed is not None:
            if installed >= fixed:
                return FindingStatus.FIXED_BY_DISTRIBUTION, _evidence(
                    ctx,
                    entry,
                    f"{ref}: fixed in {fixed_text}; detected {installed_text}"
                    f"{epoch_note} includes the fix",
                )
            return FindingStatus.CONFIRMED, _evidence(
                ctx,
                entry,
                f"{ref}: fixed in {fixed_text}; detected {installed_text}"
                f"{epoch_note} is older, the fix is not installed",
            )
    if build.upstream_version:
        # The lowest dpkg version any build of this upstream version can have: no revision.
        lowest_text = with_epoch(build.upstream_version, epoch_of(fixed_text))
        lowest = parse_dpkg_version(lowest_text)
        if lowest is not None and lowest >= fixed:
            return FindingStatus.FIXED_BY_DISTRIBUTION, _evidence(
                ctx,
                entry,
                f"{ref}: fixed in {fixed_text}, older than any {build.release} "
                f"build of upstream {build.upstream_version}",
            )
    if build.upstream_version and _newer_upstream(fixed.upstream_version, build.upstream_version):
        return FindingStatus.CONFIRMED, _evidence(
            ctx,
            entry,
            f"{ref}: fixed in {fixed_text}, a newer upstream version than the detected "
            f"{build.upstream_version}",
        )
    # The release has a fix for this very upstream version: a backport that the banner cannot
    # show, so neither "fixed" nor "confirmed" is honest.
    return FindingStatus.UNCONFIRMED_DISTRIBUTION, _evidence(
        ctx,
        entry,
        f"{ref}: fixed in {fixed_text}; the banner does not show the package "
        "revision, so whether the fix is installed is unknown",
    )


_REPACK_RE = re.compile(r"[+~](?:dfsg|ds|repack|really)[\w.]*$")


def _newer_upstream(fixed_upstream: str | None, detected: str) -> bool:
    """Whether a fix's upstream version (repack suffixes like +dfsg dropped) is past `detected`."""
    if not fixed_upstream:
        return False
    fixed = parse_dpkg_version(_REPACK_RE.sub("", fixed_upstream))
    seen = parse_dpkg_version(detected)
    return fixed is not None and seen is not None and fixed > seen


def apply_distribution(
    host: HostObservation,
    service: ServiceObservation,
    findings: Sequence[Finding],
    tracker: DistroTracker | None,
) -> list[Finding]:
    """Findings with their distribution status and evidence set; none is ever dropped.

    Only findings still `confirmed` are re-examined (a status set earlier is kept)."""
    if not findings:
        return []
    ctx = _context(host, service)
    if ctx is None:
        return list(findings)
    return _decide_all(ctx, findings, tracker)


def _decide_all(
    ctx: _Context, findings: Sequence[Finding], tracker: DistroTracker | None
) -> list[Finding]:
    out: list[Finding] = []
    for finding in findings:
        if finding.status is not FindingStatus.CONFIRMED:
            out.append(finding)
            continue
        status, evidence = _decide(ctx, finding, tracker)
        out.append(dataclasses.replace(finding, status=status, distribution=evidence))
    return out


class DistributionMemo:
    """`apply_distribution` for one tracker, remembered per distinct (build and release, list
    of findings): a scan has many locations but few distinct (banner, release) pairs, and equal
    inputs then give the very same Finding objects (cheap to group by identity)."""

    _MAX = 4096  # hostile banners can each make a new context: bounded

    def __init__(self, tracker: DistroTracker | None) -> None:
        self.tracker = tracker
        # key -> (the input findings, kept so that their ids stay theirs; the result)
        self._memo: dict[
            tuple[_Context, tuple[int, ...]], tuple[tuple[Finding, ...], list[Finding]]
        ] = {}
        # detect_build reads only these fields of a service; banners repeat across hosts.
        self._builds: dict[
            tuple[str | None, str | None, str | None, tuple[str, ...]], DistroBuild | None
        ] = {}

    def _detect(self, service: ServiceObservation) -> DistroBuild | None:
        key = (service.product, service.version, service.extrainfo, service.cpes)
        try:
            return self._builds[key]
        except KeyError:
            pass
        if len(self._builds) >= self._MAX:
            self._builds.clear()
        build = self._builds[key] = detect_build(service)
        return build

    def __call__(
        self, host: HostObservation, service: ServiceObservation, findings: Sequence[Finding]
    ) -> list[Finding]:
        if not findings:
            return []
        ctx = _context(host, service, self._detect)
        if ctx is None:
            return list(findings)
        key = (ctx, tuple(map(id, findings)))
        hit = self._memo.get(key)
        if hit is None:
            if len(self._memo) >= self._MAX:
                self._memo.clear()
            hit = self._memo[key] = (tuple(findings), _decide_all(ctx, findings, self.tracker))
        return list(hit[1])
