"""Exact Debian package version comparison (epochs, `~`, `+debNuM`), via python-debian.

dpkg's ordering has corner cases (`~` sorts before the empty string, letters before other
characters, a missing revision before any revision) that a hand-written comparison gets wrong;
python-debian's `Version` implements dpkg's algorithm and is what Debian's own tools use.
"""

from __future__ import annotations

from debian.debian_support import Version


def parse_dpkg_version(text: str) -> Version | None:
    """A dpkg version, or None when `text` is not one (text may come from a scanned host)."""
    try:
        return Version(text.strip())
    except (ValueError, TypeError):
        return None


def dpkg_compare(a: str, b: str) -> int:
    """-1, 0 or 1 as dpkg orders package versions `a` and `b`; ValueError on invalid input."""
    va, vb = Version(a), Version(b)
    return (va > vb) - (va < vb)


def with_epoch(version: str, epoch: str | None) -> str:
    """`version` with `epoch` prefixed, unless it already carries one or epoch is None/0."""
    if epoch in (None, "", "0") or ":" in version:
        return version
    return f"{epoch}:{version}"


def epoch_of(version: str) -> str | None:
    """The epoch of a dpkg version string, or None when it has none."""
    head, sep, _ = version.partition(":")
    return head if sep and head.isdigit() else None
