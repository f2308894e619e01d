"""Sharding: a deterministic, balanced 1/N of the expanded targets; hosts of one CIDR spread."""

from __future__ import annotations

import ipaddress

import pytest

from flanscan._errors import UsageError
from flanscan._run.environment import shard_from_env
from flanscan._run.shard import (
    STRIDE_LIMIT,
    Shard,
    parse_shard,
    select_shard,
    shard_from_dir_name,
    shard_targets,
)
from flanscan._targets import TargetSet, expand_targets, parse_target


def _specs(*texts: str) -> list:  # type: ignore[type-arg]
    return [parse_target(t, "test") for t in texts]


@pytest.mark.parametrize(
    ("text", "expected"), [("0/3", Shard(0, 3)), ("2/3", Shard(2, 3)), (" 0 / 1 ", Shard(0, 1))]
)
def test_parse_shard(text: str, expected: Shard) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("3/3", "0 to 2"), ("1/0", "1 to"), ("a/3", "INDEX/COUNT"), ("-1/3", "INDEX/COUNT"),
     ("1", "INDEX/COUNT"), ("0/10001", "1 to 10000")],
)  # fmt: skip
def test_bad_shard_is_a_usage_error_naming_the_input(text: str, fragment: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_shard(text)
    assert text in str(err.value) and fragment in str(err.value)


def test_shard_from_kubernetes_environment() -> None:
    assert shard_from_env({}) is None
    assert shard_from_env({"JOB_COMPLETION_INDEX": "2", "FLAN_SHARD_COUNT": "4"}) == Shard(2, 4)
    with pytest.raises(UsageError, match="FLAN_SHARD_COUNT"):
        shard_from_env({"JOB_COMPLETION_INDEX": "2"})
    with pytest.raises(UsageError, match="0 to 3"):
        shard_from_env({"JOB_COMPLETION_INDEX": "4", "FLAN_SHARD_COUNT": "4"})


def test_dir_names_round_trip() -> None:
    assert shard_from_dir_name(Shard(3, 7).name) == Shard(3, 7)
    assert shard_from_dir_name("shard-7-of-7") is None
    assert shard_from_dir_name("xml") is None


@pytest.mark.parametrize("count", [1, 2, 3, 4, 7])
def test_shards_partition_the_expanded_list_balanced_within_one(count: int) -> None:
    specs = _specs("127.0.1.0/24", "127.0.3.5-9", "::1", "localhost")
    expected = expand_targets(specs, _specs("127.0.1.7"))
    targets = TargetSet.build(specs, _specs("127.0.1.7"))
    shares = [shard_targets(targets, Shard(i, count)) for i in range(count)]
    flat = [t for share in shares for t in share]
    assert sorted(flat) == sorted(expected)  # every target exactly once
    assert len(set(flat)) == len(flat)
    sizes = [len(s) for s in shares]
    assert max(sizes) - min(sizes) <= 1
    # Deterministic: computing again (another pod) gives the same share.
    assert shard_targets(TargetSet.build(specs, _specs("127.0.1.7")), Shard(0, count)) == shares[0]


def test_hosts_of_one_network_spread_over_every_shard() -> None:
    targets = TargetSet.build(_specs("127.0.9.0/24", "127.0.10.0/28"))
    shares = [set(shard_targets(targets, Shard(i, 4))) for i in range(4)]
    small = {str(a) for a in ipaddress.ip_network("127.0.10.0/28")}
    first_hosts = {f"127.0.9.{i}" for i in range(8)}  # live hosts cluster at a subnet's start
    for share in shares:
        assert len(share & small) == 4
        assert len(share & first_hosts) == 2


def test_large_networks_become_contiguous_cidr_blocks_not_lists() -> None:
    # A /8 is 16.7 M addresses: each shard gets a few CIDR blocks, never millions of strings.
    targets = TargetSet.build(_specs("127.0.0.0/8"))
    assert targets.count > STRIDE_LIMIT
    shares = [shard_targets(targets, Shard(i, 3)) for i in range(3)]
    sizes = [sum(ipaddress.ip_network(b).num_addresses for b in share) for share in shares]
    assert sum(sizes) == 1 << 24 and max(sizes) - min(sizes) <= 1
    assert all(len(share) < 64 for share in shares)
    nets = [ipaddress.ip_network(b) for share in shares for b in share]
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])


def test_select_shard_gives_specs_and_handles_more_shards_than_hosts() -> None:
    specs = _specs("127.0.0.1", "127.0.0.2")
    assert [s.text for s in select_shard(specs, [], Shard(1, 2))] == ["127.0.0.2"]
    assert select_shard(specs, [], Shard(4, 5)) == []
    with pytest.raises(UsageError, match="every target is excluded"):
        select_shard(specs, _specs("127.0.0.0/30"), Shard(0, 2))
