"""Version ordering for service versions, and the upstream version in Nmap's version text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flanscan._match.versions import (
    compare_versions,
    is_post_release_update,
    split_update,
    upstream_version,
)

# (older, newer): every pair from the issue, plus pre-releases, patch levels and letters.
ORDERED = [
    ("2.4.7", "2.4.62"),
    ("7.4p1", "7.10p1"),
    ("7.4", "7.4p1"),
    ("9.2p1", "9.3p2"),
    ("1.1.1k", "1.1.1w"),
    ("1.0rc1", "1.0"),
    ("9.18.5", "9.18.49"),
    ("1.0alpha", "1.0beta"),
    ("1.0a1", "1.0b1"),
    ("1.0beta2", "1.0rc1"),
    ("1.0-beta2", "1.0-rc1"),
    ("1.0rc1", "1.0rc2"),
    ("1.0rc9", "1.0rc10"),
    ("10.1.0-M17", "10.1.0"),
    ("1.1.1", "1.1.1a"),
    ("1.0.2k", "1.0.2zd"),
    ("0.9.8z", "0.9.8za"),
    ("7.4p1", "7.5"),
    ("9.3", "9.3p1"),
    ("9.11.5", "9.11.5-P4"),
    ("9.11.5-P4", "9.11.6"),
    ("1.3.5", "1.3.5b"),
    ("1.3.5rc3", "1.3.5"),
    ("2.2.36.4", "2.3.0"),
    ("2.3", "2.3.7.2"),
    ("2021-03-02", "2021-03-03"),
    ("20210302", "2021-03-03"),
    ("v1.2", "1.3"),
    ("r22", "r27"),
]


@pytest.mark.parametrize(("older", "newer"), ORDERED)
def test_order(older: str, newer: str) -> None:
    assert compare_versions(older, newer) == -1
    assert compare_versions(newer, older) == 1


@pytest.mark.parametrize(
    ("a", "b"),
    [("2.4", "2.4.0"), ("2.4.0", "2.4.0.0"), ("9.2P1", "9.2p1"), ("v2.4", "2.4"), ("7", "7.0")],
)
def test_equal(a: str, b: str) -> None:
    assert compare_versions(a, b) == 0
    assert compare_versions(b, a) == 0


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("10.5.9", "2021-03-03"),  # a release against a date (Percona's bound in CVE-2021-27928)
        ("1.22.1", "r22"),  # nginx open source against an nginx Plus release
        ("unknown", "1.0"),
        ("", "1.0"),
        ("1.0", "---"),
        ("abc", "abd"),
    ],
)
def test_uncomparable_is_none_not_an_error(a: str, b: str) -> None:
    assert compare_versions(a, b) is None
    assert compare_versions(b, a) is None


def test_identical_strings_compare_equal_even_when_not_versions() -> None:
    assert compare_versions("unknown", "UNKNOWN") == 0


def test_sorting_a_mixed_list_follows_the_pairs() -> None:
    versions = ["7.10p1", "7.4", "7.4p1", "7.5", "7.4p2", "7.10", "6.6.1p1"]
    import functools

    key = functools.cmp_to_key(lambda a, b: compare_versions(a, b) or 0)
    assert sorted(versions, key=key) == [
        "6.6.1p1",
        "7.4",
        "7.4p1",
        "7.4p2",
        "7.5",
        "7.10",
        "7.10p1",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7.4p1", ("7.4", "p1")),
        ("9.2p1", ("9.2", "p1")),
        ("9.11.5-P4", ("9.11.5", "p4")),
        ("9.11.3-S1", ("9.11.3", "s1")),
        ("1.3.5rc3", ("1.3.5", "rc3")),
        ("10.1.0-M17", ("10.1.0", "m17")),
        ("1.1.1k", ("1.1.1k", None)),  # OpenSSL letters stay in the version, as in the NVD
        ("2.4.62", ("2.4.62", None)),
    ],
)
def test_split_update_like_the_nvd(text: str, expected: tuple[str, str | None]) -> None:
    assert split_update(text) == expected


def test_patch_levels_are_post_release_updates() -> None:
    assert is_post_release_update("p1")
    assert is_post_release_update("s1")
    assert not is_post_release_update("rc1")
    assert not is_post_release_update(None)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9.2p1 Debian 2+deb12u7", "9.2p1"),
        ("8.9p1 Ubuntu 3ubuntu0.10", "8.9p1"),
        ("3.4p1 with CMU Andrew patches", "3.4p1"),
        ("2.4.62", "2.4.62"),
        ("9.18.28-1~deb12u2-Debian", "9.18.28"),
        ("9.11.5-P4-5.1+deb10u5-Debian", "9.11.5-P4"),
        ("9.16.1-Ubuntu", "9.16.1"),
        ("8.0.32-0ubuntu0.22.04.2", "8.0.32"),
        ("1.1.1k", "1.1.1k"),
        ("1.3.5rc3", "1.3.5rc3"),
        ("1.3.8b", "1.3.8b"),
        ("10.1.0-M17", "10.1.0-M17"),
        ("2.7.STABLE9", "2.7.STABLE9"),
        ("v1.2.3", "1.2.3"),
    ],
)
def test_upstream_version_of_banner_text(text: str, expected: str) -> None:
    assert upstream_version(text).version == expected


@pytest.mark.parametrize(
    "text",
    [
        "9.6.0 or later",  # Nmap's PostgreSQL guesses
        "9.1.2 - 9.1.3",
        "9.6.4 - 9.6.6 or 9.6.13 - 9.6.19",
        "2.0.8 or later",  # vsftpd
        "2.0.X",
        "3.X - 4.X",  # Samba
        "4.X",  # Exim
        "(Firmware: 1)",
        "",
        None,
    ],
)
def test_ranges_and_guesses_are_unknown_with_a_reason(text: str | None) -> None:
    found = upstream_version(text)
    assert found.version is None
    assert found.reason


# --------------------------------------------------------------------------- properties

_suffix = st.sampled_from(["", "p1", "p2", "rc1", "rc2", "beta1", "alpha", "a", "k", "-P4", ".M3"])
_versions = st.builds(
    lambda parts, suffix: ".".join(map(str, parts)) + suffix,
    st.lists(st.integers(0, 60), min_size=1, max_size=4),
    _suffix,
)


@given(st.text(max_size=30), st.text(max_size=30))
def test_never_raises_on_any_text(a: str, b: str) -> None:
    assert compare_versions(a, b) in (-1, 0, 1, None)
    upstream_version(a)
    split_update(a)


@given(_versions, _versions)
def test_antisymmetric(a: str, b: str) -> None:
    c = compare_versions(a, b)
    assert c is not None
    assert compare_versions(b, a) == -c


@given(_versions, _versions, _versions)
def test_transitive(a: str, b: str, c: str) -> None:
    if compare_versions(a, b) == -1 and compare_versions(b, c) == -1:
        assert compare_versions(a, c) == -1


@given(st.lists(st.integers(0, 99), min_size=1, max_size=4), st.integers(1, 3))
def test_trailing_zeros_do_not_matter(parts: list[int], zeros: int) -> None:
    v = ".".join(map(str, parts))
    assert compare_versions(v, v + ".0" * zeros) == 0


@given(st.lists(st.integers(0, 99), min_size=1, max_size=4), st.integers(1, 30))
def test_patch_level_after_release_and_pre_release_before(parts: list[int], n: int) -> None:
    v = ".".join(map(str, parts))
    assert compare_versions(v, f"{v}p{n}") == -1
    assert compare_versions(f"{v}rc{n}", v) == -1
