"""Targets: Flan's ips.txt format, command-line targets, excludes, expansion and splitting."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from flanscan._errors import UsageError
from flanscan._targets import (
    TargetSet,
    expand_targets,
    parse_exclude_option,
    parse_target,
    read_targets_file,
    split_targets,
)


def _write(tmp_path: Path, text: str | bytes, name: str = "ips.txt") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_ips_txt_every_kind_comments_blank_lines_and_no_final_newline(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "# lab targets\n"
        "\n"
        "127.0.0.1\n"
        "   127.0.1.0/30   # a small network\n"
        "127.0.2.1-3\n"
        "::1\n"
        "fd00:f1a5::/126\n"
        "localhost\r\n"
        "127.0.3.*\n"
        "127.0.4.1,5,7-8",  # last line without a newline
    )
    specs = read_targets_file(path)
    assert [(s.text, s.kind, s.family) for s in specs] == [
        ("127.0.0.1", "address", 4),
        ("127.0.1.0/30", "network", 4),
        ("127.0.2.1-3", "range", 4),
        ("::1", "address", 6),
        ("fd00:f1a5::/126", "network", 6),
        ("localhost", "hostname", None),
        ("127.0.3.*", "range", 4),
        ("127.0.4.1,5,7-8", "range", 4),
    ]
    assert specs[0].source == f"{path}:3"
    assert specs[-1].source == f"{path}:10"
    expanded = expand_targets(specs)
    assert expanded[:4] == ["127.0.0.1", "127.0.1.0", "127.0.1.1", "127.0.1.2"]
    assert "127.0.4.5" in expanded and "127.0.4.6" not in expanded and "127.0.4.8" in expanded
    assert len([a for a in expanded if a.startswith("127.0.3.")]) == 256
    # IPv4 first, then IPv6, then names; each entry once
    assert expanded[-6:] == ["::1", "fd00:f1a5::", "fd00:f1a5::1", "fd00:f1a5::2",
                             "fd00:f1a5::3", "localhost"]  # fmt: skip
    assert len(expanded) == len(set(expanded)) == 1 + 4 + 3 + 256 + 4 + 1 + 4 + 1


def test_utf8_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, b"\xef\xbb\xbf127.0.0.5\r\n127.0.0.6\r\n")
    assert [s.text for s in read_targets_file(path)] == ["127.0.0.5", "127.0.0.6"]


BAD_LINES = [
    ("127.0.0.256", "not a valid IPv4 address"),
    ("127.0.0.0/33", "prefix /33 is longer than /32"),
    ("::1/129", "prefix /129 is longer than /128"),
    ("127.0.0.0/x", "prefix after '/' must be a number"),
    ("127.0.0.20-10", "runs backwards"),
    ("127.0.0.1-300", "goes beyond 255"),
    ("127.0.0", "needs 4 octets, found 3"),
    ("127.0.0.", "octet 4 '': is empty"),
    ("127.0,,1.0.1", "empty item"),
    ("fd00:f1a5::1::2", "not a valid IPv6 address"),
    ("fd00:f1a5::1-5", "ranges are supported for IPv4 only"),
    ("127.0.0.1 127.0.0.2", "one target per line"),
    ("-oN", "cannot start with '-'"),
    ("-iL", "cannot start with '-'"),
    ("bad_host!", "not a valid hostname"),
    ("host..test", "empty label"),
    ("x" * 64 + ".test", "at most 63 characters"),
    ("lab.test/24", "needs an IP address, not a hostname"),
]


@pytest.mark.parametrize(("line", "problem"), BAD_LINES)
def test_bad_line_names_file_line_and_problem(tmp_path: Path, line: str, problem: str) -> None:
    path = _write(tmp_path, f"# header\n127.0.0.1\n\n{line}\n127.0.0.2\n")
    with pytest.raises(UsageError) as info:
        read_targets_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}:4: ")
    assert problem in message
    assert "\n" not in message


def test_bad_last_line_without_newline_is_reported_with_its_number(tmp_path: Path) -> None:
    path = _write(tmp_path, "127.0.0.1\n127.0.0.999")
    with pytest.raises(UsageError, match=rf"^{path}:2: '127\.0\.0\.999'"):
        read_targets_file(path)


def test_invalid_utf8_and_missing_file(tmp_path: Path) -> None:
    path = _write(tmp_path, b"127.0.0.1\n\xff\xfe\n")
    with pytest.raises(UsageError, match=rf"^{path}:2: not valid UTF-8"):
        read_targets_file(path)
    missing = tmp_path / "nope.txt"
    with pytest.raises(UsageError, match=rf"^{missing}: cannot read target file"):
        read_targets_file(missing)


def test_control_characters_in_a_bad_line_do_not_reach_the_message(tmp_path: Path) -> None:
    path = _write(tmp_path, "bad\x1b[31mhost\n")
    with pytest.raises(UsageError) as info:
        read_targets_file(path)
    assert "\x1b" not in str(info.value)


def test_excludes_remove_addresses_networks_and_names() -> None:
    specs = [parse_target(t, "arg") for t in ("127.0.0.0/28", "localhost", "::1", "ip6-lo")]
    excludes = [
        *parse_exclude_option("127.0.0.0/30,127.0.0.9,LOCALHOST"),
        parse_target("::1", "--exclude-file"),
    ]
    expanded = expand_targets(specs, excludes)
    assert expanded == [f"127.0.0.{i}" for i in range(4, 16) if i != 9] + ["ip6-lo"]
    everything_excluded = TargetSet.build(specs[:1], [parse_target("127.0.0.0/24", "x")])
    assert everything_excluded.count == 0


def test_octet_range_expansion_matches_ipaddress() -> None:
    spec = parse_target("127.1-2.0-1.250-255", "arg")
    expected = [
        str(ipaddress.IPv4Address(f"127.{b}.{c}.{d}"))
        for b in (1, 2)
        for c in (0, 1)
        for d in range(250, 256)
    ]
    assert expand_targets([spec]) == expected


def test_large_network_is_counted_and_shared_without_expansion() -> None:
    big = TargetSet.build([parse_target("127.0.0.0/8", "arg")])
    assert big.count == 1 << 24
    share = list(zip(range(3), big.strided(1, 4), strict=False))
    assert [a for _, a in share] == ["127.0.0.1", "127.0.0.5", "127.0.0.9"]
    chunks = split_targets(big, 3)
    assert sum(c.count for c in chunks) == 1 << 24
    covered = sum(ipaddress.ip_network(t).num_addresses for c in chunks for t in c.targets)
    assert covered == 1 << 24


def test_split_balances_strides_and_never_mixes_families() -> None:
    specs = [parse_target(t, "arg") for t in ("127.0.0.0/24", "::1", "localhost")]
    targets = TargetSet.build(specs)
    chunks = split_targets(targets, 4)
    assert sum(c.count for c in chunks) == targets.count == 258
    v4 = [c for c in chunks if c.family == 4]
    v6 = [c for c in chunks if c.family == 6]
    assert [c.targets for c in v6] == [("::1",)]
    assert max(c.count for c in v4) - min(c.count for c in v4) <= 1
    # consecutive addresses land in different chunks (live hosts cluster at a subnet's start)
    assert {c.targets[0] for c in v4} == {"127.0.0.0", "127.0.0.1", "127.0.0.2"}
    everything = sorted(t for c in chunks for t in c.targets)
    assert everything == sorted([*expand_targets(specs)])
    # with -6, hostnames go with IPv6
    six = split_targets(targets, 4, names_family=6)
    assert "localhost" in [t for c in six if c.family == 6 for t in c.targets]


def test_expand_refuses_huge_lists() -> None:
    with pytest.raises(UsageError, match="addresses"):
        expand_targets([parse_target("fd00:f1a5::/64", "arg")])
