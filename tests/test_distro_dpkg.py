"""Dpkg version ordering through the project's API (python-debian underneath)."""

from __future__ import annotations

import pytest

from flanscan._distro import dpkg_compare, parse_dpkg_version
from flanscan._distro._dpkg import epoch_of, with_epoch


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1:9.2p1-2+deb12u3", "1:9.2p1-2+deb12u10"),  # numeric, not lexical: u3 < u10
        ("9.2p1-2+deb12u10", "1:7.0p1-1"),  # any epoch beats none
        ("1.0~rc1-1", "1.0-1"),  # tilde sorts before anything
        ("1.0~~-1", "1.0~rc1-1"),
        ("2.4.62-1~deb12u1", "2.4.62-1"),  # a backport to stable sorts below the unstable build
        ("2.4.62-1", "2.4.62-1+deb12u1"),  # security update of the same build
        ("1:9.2p1", "1:9.2p1-2"),  # no revision sorts below any revision
        ("5:7.0~rc2-2", "5:7.0.12-1"),
        ("5:7.0.15-1~deb12u2", "5:7.0.15-1~deb12u10"),
        ("15.5-0+deb12u1", "15.18-0+deb12u1"),
        ("1.22.1-9", "1.22.1-9+deb12u1"),
        ("1:8.9p1-3ubuntu0.3", "1:8.9p1-3ubuntu0.10"),
        ("1:7.6p1-4ubuntu0.7", "1:7.6p1-4ubuntu0.7+esm1"),
        ("1.0-1", "1.0a-1"),  # the end of a string sorts before a letter
        ("1.0+dfsg-1", "1.0.1-1"),
    ],
)
def test_order(lower: str, higher: str) -> None:
    assert dpkg_compare(lower, higher) == -1
    assert dpkg_compare(higher, lower) == 1


@pytest.mark.parametrize(("a", "b"), [("0:1.0-1", "1.0-1"), ("1.0-01", "1.0-1"), ("1.00", "1.0")])
def test_equal(a: str, b: str) -> None:
    assert dpkg_compare(a, b) == 0


def test_invalid_versions_are_none_not_errors() -> None:
    assert parse_dpkg_version("not a version!") is None
    assert parse_dpkg_version("") is None
    assert parse_dpkg_version("1:9.2p1-2+deb12u10") is not None
    with pytest.raises(ValueError):
        dpkg_compare("bad version!", "1.0")


def test_epoch_helpers() -> None:
    assert with_epoch("9.2p1-2", "1") == "1:9.2p1-2"
    assert with_epoch("1:9.2p1-2", "2") == "1:9.2p1-2"
    assert with_epoch("1.22.1-9", None) == "1.22.1-9"
    assert epoch_of("5:7.0.15-1") == "5"
    assert epoch_of("7.0.15-1") is None
