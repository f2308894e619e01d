"""Distribution release names: Debian `debNuM` numbers and Ubuntu version numbers to codenames,
and a few upstream versions that identify a release when the revision does not say.

The security trackers key their data by codename ("bookworm", "jammy"); banners carry numbers
("+deb12u10", "0ubuntu0.22.04.2") or only a revision ("3ubuntu0.10"), so this is the bridge.
"""

from __future__ import annotations

import re

DEBIAN_RELEASES: dict[str, str] = {
    "7": "wheezy",
    "8": "jessie",
    "9": "stretch",
    "10": "buster",
    "11": "bullseye",
    "12": "bookworm",
    "13": "trixie",
    "14": "forky",
    "15": "duke",
}

UBUNTU_RELEASES: dict[str, str] = {
    "12.04": "precise",
    "14.04": "trusty",
    "16.04": "xenial",
    "18.04": "bionic",
    "18.10": "cosmic",
    "19.04": "disco",
    "19.10": "eoan",
    "20.04": "focal",
    "20.10": "groovy",
    "21.04": "hirsute",
    "21.10": "impish",
    "22.04": "jammy",
    "22.10": "kinetic",
    "23.04": "lunar",
    "23.10": "mantic",
    "24.04": "noble",
    "24.10": "oracular",
    "25.04": "plucky",
    "25.10": "questing",
}

# (distribution, source package, upstream version) -> release, for packages whose banner carries
# a revision without a release number. Only the version each release shipped (and kept: these
# packages get fixes backported, never new upstream versions) belongs here. Reviewed against the
# releases' package lists (packages.debian.org, launchpad.net/ubuntu/+source/openssh).
UPSTREAM_RELEASES: dict[tuple[str, str, str], str] = {
    ("debian", "openssh", "6.0p1"): "wheezy",
    ("debian", "openssh", "6.7p1"): "jessie",
    ("debian", "openssh", "7.4p1"): "stretch",
    ("debian", "openssh", "7.9p1"): "buster",
    ("debian", "openssh", "8.4p1"): "bullseye",
    ("debian", "openssh", "9.2p1"): "bookworm",
    ("debian", "openssh", "10.0p1"): "trixie",
    ("ubuntu", "openssh", "5.9p1"): "precise",
    ("ubuntu", "openssh", "6.6.1p1"): "trusty",
    ("ubuntu", "openssh", "7.2p2"): "xenial",
    ("ubuntu", "openssh", "7.6p1"): "bionic",
    ("ubuntu", "openssh", "8.2p1"): "focal",
    ("ubuntu", "openssh", "8.9p1"): "jammy",
    ("ubuntu", "openssh", "9.3p1"): "mantic",
    ("ubuntu", "openssh", "9.6p1"): "noble",
    ("ubuntu", "openssh", "9.7p1"): "oracular",
    ("ubuntu", "openssh", "9.9p1"): "plucky",
}

_DEB_RE = re.compile(r"(?:deb|bpo)(\d+)(?:u\d+)?\b|~deb(\d+)")
_UBUNTU_RE = re.compile(r"(?:ubuntu\d*[.~]|~)(\d\d\.\d\d)(?:\.\d+)*\b")


def debian_release_from_revision(revision: str) -> str | None:
    """`2+deb12u10` -> bookworm, `1~deb12u3` -> bookworm, `1~bpo11+1` -> bullseye, else None."""
    match = _DEB_RE.search(revision)
    if match is None:
        return None
    return DEBIAN_RELEASES.get(match.group(1) or match.group(2))


def ubuntu_release_from_revision(revision: str) -> str | None:
    """`0ubuntu0.22.04.2` -> jammy, `1~22.04.1` -> jammy; None when the number is absent."""
    match = _UBUNTU_RE.search(revision)
    if match is None:
        return None
    return UBUNTU_RELEASES.get(match.group(1))


def release_from_upstream(distribution: str, source_package: str, upstream: str) -> str | None:
    """The release that ships `upstream` of `source_package`, for the few packages listed."""
    return UPSTREAM_RELEASES.get((distribution, source_package, upstream))


def ubuntu_release_from_number(number: str) -> str | None:
    """`22.04` -> jammy."""
    return UBUNTU_RELEASES.get(number)
