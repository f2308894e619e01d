"""Sharding a scan: which 1/N of the expanded targets shard I of N scans.

Shard I of N (0-based, like Kubernetes' JOB_COMPLETION_INDEX) takes every N-th target of the
deterministic order of `TargetSet` (IPv4 ascending, IPv6 ascending, then hostnames), starting at
position I. Consecutive addresses of one network therefore go to different shards, so hosts of
one CIDR are spread evenly and shard sizes differ by at most one.

Beyond `STRIDE_LIMIT` targets a strided share cannot be written compactly (every address would be
a separate Nmap argument), so shard I takes the contiguous positions
[count*I//N, count*(I+1)//N) instead, as CIDR blocks: still balanced within one, with memory
bounded by the number of blocks, whatever the size of the networks.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from flanscan._errors import UsageError
from flanscan._targets import TargetSet, TargetSpec, nmap_blocks, parse_target

# Up to this many targets (after excludes) shards are strided; above, contiguous CIDR blocks.
STRIDE_LIMIT = 1 << 16

_SHARD_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
MAX_SHARDS = 10_000


@dataclass(frozen=True)
class Shard:
    """Shard `index` (0-based) of `count`."""

    index: int
    count: int

    @property
    def name(self) -> str:
        """The shard's directory name in a run: `shard-<I>-of-<N>`."""
        return f"shard-{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


_DIR_RE = re.compile(r"^shard-(\d+)-of-(\d+)$")


def shard_from_dir_name(name: str) -> Shard | None:
    """The shard a `shard-<I>-of-<N>` directory name stands for, or None."""
    m = _DIR_RE.match(name)
    if not m:
        return None
    index, count = int(m.group(1)), int(m.group(2))
    return Shard(index, count) if 0 <= index < count else None


def parse_shard(text: str, source: str = "--shard") -> Shard:
    """Parse `I/N` (0 <= I < N); raise UsageError naming `source` otherwise."""
    m = _SHARD_RE.match(text)
    if not m:
        raise UsageError(f"{source} {text!r}: write INDEX/COUNT, e.g. 0/3 (indexes start at 0)")
    index, count = int(m.group(1)), int(m.group(2))
    if not 1 <= count <= MAX_SHARDS:
        raise UsageError(f"{source} {text!r}: the shard count must be 1 to {MAX_SHARDS}")
    if index >= count:
        raise UsageError(
            f"{source} {text!r}: the index must be 0 to {count - 1} (indexes start at 0, "
            "like Kubernetes' JOB_COMPLETION_INDEX)"
        )
    return Shard(index, count)


def shard_targets(targets: TargetSet, shard: Shard) -> list[str]:
    """Nmap target arguments for `shard`'s share of `targets` (possibly empty)."""
    if targets.count <= STRIDE_LIMIT:
        return list(targets.strided(shard.index, shard.count))
    start = targets.count * shard.index // shard.count
    stop = targets.count * (shard.index + 1) // shard.count
    out: list[str] = []
    offset = 0
    for fam in (targets.v4, targets.v6):
        lo, hi = max(start - offset, 0), min(stop - offset, fam.count)
        if lo < hi:
            out.extend(nmap_blocks(fam.family, fam.slice(lo, hi)))
        offset += fam.count
    lo, hi = max(start - offset, 0), min(stop - offset, len(targets.names))
    out.extend(targets.names[lo:hi])
    return out


def select_shard(
    specs: Sequence[TargetSpec], excludes: Sequence[TargetSpec], shard: Shard
) -> list[TargetSpec]:
    """The targets shard `shard` scans, as validated specs (excludes already applied).

    Raises UsageError when every target is excluded; an empty list means this shard has nothing
    to do (more shards than targets).
    """
    targets = TargetSet.build(specs, excludes)
    if targets.count == 0:
        raise UsageError("nothing to scan: every target is excluded")
    source = f"shard {shard}"
    return [parse_target(text, source) for text in shard_targets(targets, shard)]
