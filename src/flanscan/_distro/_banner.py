"""Recognise distribution builds in what Nmap reports for a service.

Examples of what is read (version, extra info, CPEs; all hostile text, parsed with anchored
regular expressions and never evaluated):
- `OpenSSH 9.2p1 Debian 2+deb12u10` -> debian bookworm, openssh 1:9.2p1-2+deb12u10
- `OpenSSH 8.9p1 Ubuntu 3ubuntu0.10` -> ubuntu jammy (from the upstream version), revision known
- `ISC BIND 9.18.49-1~deb12u3 (Debian Linux)` -> debian bookworm, bind9 1:9.18.49-1~deb12u3
- `PostgreSQL DB 15.18 (Debian 15.18-0+deb12u1)` -> debian bookworm, postgresql-15
- `Apache httpd 2.4.62 ((Debian))` -> debian, release and revision unknown
- `Apache httpd 2.4.37 ((Red Hat Enterprise Linux))` -> rhel, nothing else known
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flanscan._distro._dpkg import epoch_of, parse_dpkg_version, with_epoch
from flanscan._distro._packages import epoch_for, source_package_for
from flanscan._distro._releases import (
    debian_release_from_revision,
    release_from_upstream,
    ubuntu_release_from_revision,
)
from flanscan._model import ServiceObservation

# Distributions whose trackers Flan Scan reads; the others are recognised to mark findings
# "unconfirmed: distribution build" (their banners never carry a package release).
TRACKED = ("debian", "ubuntu")


@dataclass(frozen=True)
class DistroBuild:
    """What a service's banner says about the distribution package that runs it."""

    distribution: str  # "debian", "ubuntu", "rhel", "centos", "fedora", ...
    marker: str  # the banner text that identified it, e.g. "Debian 2+deb12u10", "(Debian)"
    release: str | None = None  # codename: "bookworm", "jammy"
    source_package: str | None = None  # "openssh"
    upstream_version: str | None = None  # "9.2p1"
    revision: str | None = None  # "2+deb12u10"
    package_version: str | None = None  # "1:9.2p1-2+deb12u10" (epoch added when known)
    epoch_known: bool = True  # False: the epoch table does not list this source package
    release_from: str | None = None  # how the release was found: "revision", "upstream version"


_MAX = 300  # banners longer than this are cut before matching: bounded regex work per service

# OpenSSH style: "9.2p1 Debian 2+deb12u10", "5.9p1 Debian-5ubuntu1", "8.9p1 Ubuntu 3ubuntu0.10"
_OPENSSH_RE = re.compile(
    r"^(?P<up>\d[\w.+~]*)\s+(?P<dist>Debian|Ubuntu|Raspbian)[\s-]+(?P<rev>\d[\w.+~]*)"
)
# PostgreSQL style inside extra info: "Debian 15.18-0+deb12u1", "Ubuntu 14.11-0ubuntu0.22.04.1"
_NAMED_FULL_RE = re.compile(
    r"\b(?P<dist>Debian|Ubuntu|Raspbian)\s+(?P<up>\d[\w.+~:]*)-(?P<rev>\d[\w.+~]*)"
)
# BIND style: the whole version is the package version: "9.18.49-1~deb12u3",
# "9.18.30-0ubuntu0.22.04.2-Ubuntu", "9.11.5-P4-5.1+deb10u9-Debian"
_INLINE_FULL_RE = re.compile(
    r"^(?P<up>\d[\w.+~:-]*)-(?P<rev>\d[\w.+~]*)(?:-(?P<dist>Debian|Ubuntu|Raspbian))?$"
)
_DISTRO_REVISION_RE = re.compile(r"deb\d+u\d+|bpo\d+|ubuntu", re.IGNORECASE)

# Marker words in version/extra info, most specific first.
_MARKERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\bUbuntu\b", re.IGNORECASE), "ubuntu"),
    (re.compile(r"\bRaspbian\b", re.IGNORECASE), "debian"),
    (re.compile(r"\bDebian\b", re.IGNORECASE), "debian"),
    (re.compile(r"\bRed Hat\b|\bRHEL\b", re.IGNORECASE), "rhel"),
    (re.compile(r"\bCentOS\b", re.IGNORECASE), "centos"),
    (re.compile(r"\bFedora\b", re.IGNORECASE), "fedora"),
    (re.compile(r"\bRocky\b", re.IGNORECASE), "rocky"),
    (re.compile(r"\bAlmaLinux\b", re.IGNORECASE), "almalinux"),
    (re.compile(r"\bAmazon Linux\b|\(Amazon\)", re.IGNORECASE), "amazon"),
    (re.compile(r"\bOracle Linux\b", re.IGNORECASE), "oracle-linux"),
    (re.compile(r"\bSUSE\b", re.IGNORECASE), "suse"),
    (re.compile(r"\bFreeBSD\b"), "freebsd"),
)
_OS_CPES: dict[str, str] = {
    "debian:debian_linux": "debian",
    "canonical:ubuntu_linux": "ubuntu",
    "redhat:enterprise_linux": "rhel",
    "redhat:linux": "rhel",
    "centos:centos": "centos",
    "fedoraproject:fedora": "fedora",
    "freebsd:freebsd": "freebsd",
}
_OS_CPE_RE = re.compile(r"^cpe:(?:/|2\.3:)o:([^:]+):([^:]+)")


def _clean_version(version: str) -> str:
    """MariaDB reports `5.5.5-10.11.6-MariaDB-0+deb12u1`: keep the package's own version."""
    version = re.sub(r"^5\.5\.5-", "", version)
    return re.sub(r"-MariaDB(?=-|$)", "", version)


def _marker(text: str, cpes: tuple[str, ...]) -> tuple[str, str] | None:
    for pattern, distribution in _MARKERS:
        match = pattern.search(text)
        if match:
            return distribution, match.group(0)
    for cpe in cpes:
        m = _OS_CPE_RE.match(cpe)
        if m and f"{m.group(1)}:{m.group(2)}".lower() in _OS_CPES:
            return _OS_CPES[f"{m.group(1)}:{m.group(2)}".lower()], cpe
    return None


def _distribution_of(named: str, revision: str) -> str:
    # Old Ubuntu OpenSSH banners say "Debian-5ubuntu1": the revision tells the truth.
    if "ubuntu" in revision.lower():
        return "ubuntu"
    return "ubuntu" if named.lower() == "ubuntu" else "debian"


def detect_build(service: ServiceObservation) -> DistroBuild | None:
    """The distribution build a service's banner reveals, or None for no distribution marker."""
    version = _clean_version((service.version or "")[:_MAX].strip())
    extra = (service.extrainfo or "")[:_MAX]
    text = f"{version} {extra}"
    upstream = version.split()[0] if version else None
    revision: str | None = None
    distribution: str | None = None
    marker = ""

    m = _OPENSSH_RE.match(version)
    n = _NAMED_FULL_RE.search(extra) or _NAMED_FULL_RE.search(version)
    i = _INLINE_FULL_RE.match(version)
    if m:
        upstream, revision, marker = m["up"], m["rev"], f"{m['dist']} {m['rev']}"
        distribution = _distribution_of(m["dist"], revision)
    elif n:
        upstream, revision, marker = n["up"], n["rev"], n.group(0)
        distribution = _distribution_of(n["dist"], revision)
    elif i:
        found = _marker(extra, ()) if i["dist"] is None else (i["dist"].lower(), i["dist"])
        if _DISTRO_REVISION_RE.search(i["rev"]) or found:
            upstream, revision, marker = i["up"], i["rev"], version
            distribution = _distribution_of(found[1] if found else "debian", revision)
            if found and found[0] not in ("debian", "ubuntu"):
                distribution = found[0]
    if distribution is None:
        found = _marker(text, service.cpes)
        if found is None:
            return None
        distribution, marker = found
    return _complete(service, distribution, marker, upstream, revision)


def _complete(
    service: ServiceObservation,
    distribution: str,
    marker: str,
    upstream: str | None,
    revision: str | None,
) -> DistroBuild:
    explicit_epoch = epoch_of(upstream) if upstream else None
    if upstream and explicit_epoch:
        upstream = upstream.split(":", 1)[1]
    source = None
    if distribution in TRACKED:  # other distributions name their packages differently
        source = source_package_for(service.cpes, service.product, upstream, service.version or "")
    release = release_from = None
    if distribution in TRACKED:
        if revision:
            if distribution == "debian":
                release = debian_release_from_revision(revision)
            else:
                release = ubuntu_release_from_revision(revision)
            release_from = "package revision" if release else None
        if release is None and revision and source and upstream:
            release = release_from_upstream(distribution, source, upstream)
            release_from = "upstream version shipped by the release" if release else None
    epoch, epoch_known = explicit_epoch, True
    if epoch is None and source:
        epoch, epoch_known = epoch_for(distribution, source)
    package_version = None
    if upstream and revision:
        candidate = with_epoch(f"{upstream}-{revision}", epoch)
        package_version = candidate if parse_dpkg_version(candidate) else None
    return DistroBuild(
        distribution=distribution,
        marker=marker,
        release=release,
        source_package=source,
        upstream_version=upstream,
        revision=revision,
        package_version=package_version,
        epoch_known=epoch_known if source else False,
        release_from=release_from,
    )
