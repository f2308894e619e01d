"""Scan targets: Flan's `ips.txt` format, command-line targets, excludes and their expansion.

A target is one IPv4 or IPv6 address, a CIDR network, an Nmap-style IPv4 octet range
(`198.18.0-3.1-254`, `198.18.0.*`, `198.18.0.1,3,5-7`) or a hostname. Addresses are held as integer
intervals so that excludes, counting, splitting across workers and sharding stay cheap even for
large networks; hostnames are kept as names (Nmap resolves them).
"""

from __future__ import annotations

import bisect
import ipaddress
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flanscan._errors import UsageError

# Expanding more than this many addresses into a Python list is refused (memory); the
# interval form (`TargetSet`) has no such limit.
MAX_EXPANDED = 1 << 22

# An octet range may not produce more than this many address intervals (e.g. `1-254.*.*.1`).
_MAX_RANGE_INTERVALS = 1 << 20

# Never expanded into targets, whatever network covers them: multicast, reserved (holding the
# broadcast address 255.255.255.255), "this network" and the unspecified address. Probing them
# reaches every host of a segment, or nothing, and no scope means them.
NEVER_SCANNED: dict[int, tuple[tuple[str, str], ...]] = {
    4: (("0.0.0.0/8", "'this network'"), ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved")),
    6: (("::/128", "unspecified"), ("ff00::/8", "multicast")),
}  # fmt: skip

# A scope of more addresses than this is refused unless `--max-hosts` says otherwise: 0.0.0.0/0
# is a typo far more often than a plan.
DEFAULT_MAX_HOSTS = 65_536

_HOST_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
_RANGE_CHARS = re.compile(r"^[0-9.,*-]+$")


@dataclass(frozen=True)
class TargetSpec:
    """One target as written by the user, already validated.

    `kind` is "address", "network", "range" or "hostname"; `family` is 4 or 6 for addresses,
    networks and ranges and None for hostnames. `source` says where it was read ("ips.txt:3",
    "command line").
    """

    text: str
    kind: str
    family: int | None
    source: str

    @property
    def is_hostname(self) -> bool:
        return self.kind == "hostname"


def _shown(text: str) -> str:
    """Quote text from an input file for a one-line error message (no control characters)."""
    cleaned = "".join(c if c.isprintable() else "?" for c in text)
    if len(cleaned) > 60:
        cleaned = cleaned[:57] + "..."
    return f"'{cleaned}'"


def parse_target(text: str, source: str) -> TargetSpec:
    """Validate one target; raise UsageError naming `source` and what is wrong."""
    raw = text.strip()
    where = f"{source}: {_shown(raw)}"
    if not raw:
        raise UsageError(f"{source}: empty target")
    if any(c.isspace() for c in raw):
        raise UsageError(f"{where}: one target per line (found whitespace inside)")
    if raw.startswith("-"):
        raise UsageError(
            f"{where}: a target cannot start with '-' (Nmap options go after `--`; "
            "write an octet range as 0-N)"
        )
    hint = _port_or_url_hint(raw)
    if hint is not None:
        raise UsageError(f"{where}: {hint}")
    if "/" in raw:
        return _parse_network(raw, source, where)
    if ":" in raw:
        return _parse_ipv6(raw, source, where)
    if _RANGE_CHARS.match(raw):
        return _parse_ipv4_or_range(raw, source, where)
    return _parse_hostname(raw, source, where)


_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://(?:[^@/]*@)?(\[[^\]]*\]|[^/:?#]*)(?::(\d+))?")
_HOST_PORT = re.compile(r"^(\[[^\]]+\]|[^:\[\]]+):(\d+)$")


def _port_or_url_hint(raw: str) -> str | None:
    """What to type instead of a URL or host:port (which are not Nmap targets), else None."""
    url = _URL.match(raw)
    match = url or _HOST_PORT.match(raw)
    if match is None:
        return None
    host = "".join(c if c.isprintable() else "?" for c in match.group(1).strip("[]"))
    port = match.group(2)
    what = "a URL" if url else "host:port"
    if not host:
        return f"{what} is not a target: give the host name or address alone"
    ports = f" --ports {port}" if port else ""
    return f"{what} is not a target: scan the host, e.g. `flan scan {host}{ports}`"


def _parse_network(raw: str, source: str, where: str) -> TargetSpec:
    addr, _, prefix = raw.partition("/")
    # ASCII digits only: int() reads fullwidth and Arabic-Indic digits too, ipaddress does not.
    if not (prefix.isascii() and prefix.isdigit()):
        raise UsageError(f"{where}: the network prefix after '/' must be a number (digits 0-9)")
    if "%" in addr:
        raise UsageError(
            f"{where}: a scoped IPv6 address (%interface) is one address: drop the /prefix"
        )
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        if ":" not in addr and not _RANGE_CHARS.match(addr):
            raise UsageError(
                f"{where}: a /prefix needs an IP address, not a hostname "
                "(list the hostname alone, or its network in CIDR form)"
            ) from None
        raise UsageError(f"{where}: {_address_problem(addr)}") from None
    if int(prefix) > ip.max_prefixlen:
        raise UsageError(f"{where}: prefix /{prefix} is longer than /{ip.max_prefixlen}")
    # Nmap scans the whole network when host bits are set (198.18.0.5/24 = 198.18.0.0/24).
    try:
        ipaddress.ip_network(f"{ip}/{int(prefix)}", strict=False)
    except ValueError as exc:
        raise UsageError(f"{where}: not a valid network ({exc})") from None
    return TargetSpec(raw, "network", ip.version, source)


def _parse_ipv6(raw: str, source: str, where: str) -> TargetSpec:
    if "-" in raw or "*" in raw or "," in raw:
        raise UsageError(f"{where}: ranges are supported for IPv4 only; use CIDR for IPv6")
    try:
        ipaddress.IPv6Address(raw)
    except ValueError as exc:
        raise UsageError(f"{where}: not a valid IPv6 address ({exc})") from None
    return TargetSpec(raw, "address", 6, source)


def _address_problem(text: str) -> str:
    try:
        ipaddress.ip_address(text)
    except ValueError as exc:
        return f"not a valid IP address ({exc})"
    return "not a valid IP address"


def _parse_ipv4_or_range(raw: str, source: str, where: str) -> TargetSpec:
    octets = raw.split(".")
    if len(octets) != 4:
        raise UsageError(f"{where}: an IPv4 address or range needs 4 octets, found {len(octets)}")
    if all(o.isdigit() for o in octets):
        try:
            ipaddress.IPv4Address(raw)
        except ValueError as exc:
            raise UsageError(f"{where}: not a valid IPv4 address ({exc})") from None
        return TargetSpec(raw, "address", 4, source)
    for number, octet in enumerate(octets, 1):
        problem = _octet_problem(octet)
        if problem:
            raise UsageError(f"{where}: octet {number} {_shown(octet)}: {problem}")
    spec = TargetSpec(raw, "range", 4, source)
    if _range_interval_count(raw) > _MAX_RANGE_INTERVALS:
        raise UsageError(f"{where}: this octet range is too fragmented; use CIDR networks")
    return spec


def _octet_problem(octet: str) -> str | None:
    if octet == "":
        return "is empty"
    if octet == "*":
        return None
    for part in octet.split(","):
        if part == "":
            return "has an empty item in its list"
        lo, dash, hi = part.partition("-")
        if not dash:
            if not lo.isdigit():
                return f"{_shown(part)} is not a number"
            if int(lo) > 255:
                return f"{lo} is larger than 255"
            continue
        lo = lo or "0"
        hi = hi or "255"
        if not (lo.isdigit() and hi.isdigit()):
            return f"{_shown(part)} is not a range of numbers"
        if int(lo) > 255 or int(hi) > 255:
            return f"{_shown(part)} goes beyond 255"
        if int(lo) > int(hi):
            return f"range {_shown(part)} runs backwards"
    return None


def _parse_hostname(raw: str, source: str, where: str) -> TargetSpec:
    name = raw[:-1] if raw.endswith(".") else raw
    if len(name) > 253:
        raise UsageError(f"{where}: a hostname is at most 253 characters")
    labels = name.split(".")
    for label in labels:
        if label == "":
            raise UsageError(f"{where}: not a valid hostname (empty label between dots)")
        if len(label) > 63:
            raise UsageError(f"{where}: not a valid hostname (a label is at most 63 characters)")
        if not _HOST_LABEL.match(label):
            raise UsageError(
                f"{where}: not a valid hostname, IP address, network or range "
                "(letters, digits, '-' and '.' only)"
            )
    if labels[-1].isdigit():
        raise UsageError(f"{where}: not a valid IPv4 address or hostname")
    return TargetSpec(raw, "hostname", None, source)


def _strip_comment(line: str) -> str:
    return line.split("#", 1)[0].strip()


def parse_target_lines(lines: Iterable[str], source: str) -> list[TargetSpec]:
    """Parse `ips.txt` lines (comments, blank lines allowed); errors name `source:line`."""
    specs = []
    for number, line in enumerate(lines, 1):
        text = _strip_comment(line)
        if text:
            specs.append(parse_target(text, f"{source}:{number}"))
    return specs


def read_targets_file(path: str | Path) -> list[TargetSpec]:
    """Read a Flan `ips.txt` file: one target per line, `#` comments, blank lines.

    Raises UsageError naming the file (and the line) when it cannot be read or a line is bad.
    """
    name = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{name}: cannot read target file ({exc.strerror or exc})") from None
    lines = data.split(b"\n")
    decoded = []
    for number, raw in enumerate(lines, 1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            decoded.append(raw.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError:
            raise UsageError(f"{name}:{number}: not valid UTF-8 text") from None
    return parse_target_lines(decoded, name)


def parse_exclude_option(value: str, source: str = "--exclude") -> list[TargetSpec]:
    """Parse an `--exclude` value: a comma-separated list, as Nmap's own `--exclude` takes."""
    return [parse_target(part, source) for part in value.split(",") if part.strip()]


# --------------------------------------------------------------------------- intervals

Interval = tuple[int, int]  # inclusive [start, end]


def _octet_values(octet: str) -> list[Interval]:
    if octet == "*":
        return [(0, 255)]
    runs = []
    for part in octet.split(","):
        lo, dash, hi = part.partition("-")
        if dash:
            runs.append((int(lo or 0), int(hi or 255)))
        else:
            runs.append((int(lo), int(lo)))
    return _merge(runs)


def _range_interval_count(text: str) -> int:
    octets = [_octet_values(o) for o in text.split(".")]
    count = 1
    for runs in octets[:3]:
        count *= sum(hi - lo + 1 for lo, hi in runs)
    return count * len(octets[3])


def _spec_intervals(spec: TargetSpec) -> Iterator[Interval]:
    if spec.kind == "address":
        value = int(ipaddress.ip_address(spec.text.split("%", 1)[0]))
        yield (value, value)
    elif spec.kind == "network":
        net = ipaddress.ip_network(spec.text, strict=False)
        yield (int(net.network_address), int(net.broadcast_address))
    elif spec.kind == "range":
        octets = [_octet_values(o) for o in spec.text.split(".")]
        heads = [[v for lo, hi in runs for v in range(lo, hi + 1)] for runs in octets[:3]]
        for a, b, c in itertools.product(*heads):
            base = (a << 24) | (b << 16) | (c << 8)
            for lo, hi in octets[3]:
                yield (base | lo, base | hi)


def _merge(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for lo, hi in sorted(intervals):
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def _subtract(intervals: list[Interval], holes: list[Interval]) -> list[Interval]:
    result: list[Interval] = []
    j = 0
    for lo, hi in intervals:
        while j < len(holes) and holes[j][1] < lo:
            j += 1
        k = j
        start = lo
        while k < len(holes) and holes[k][0] <= hi:
            if holes[k][0] > start:
                result.append((start, holes[k][0] - 1))
            start = max(start, holes[k][1] + 1)
            k += 1
        if start <= hi:
            result.append((start, hi))
    return result


def _address_text(family: int, value: int) -> str:
    return str(ipaddress.IPv4Address(value) if family == 4 else ipaddress.IPv6Address(value))


@dataclass(frozen=True)
class _Family:
    """Sorted, disjoint address intervals of one IP family, with prefix sums for indexing."""

    family: int
    intervals: tuple[Interval, ...] = ()
    _starts: tuple[int, ...] = field(default=(), repr=False, compare=False)  # index of first addr

    @classmethod
    def of(cls, family: int, intervals: list[Interval]) -> _Family:
        starts = []
        total = 0
        for lo, hi in intervals:
            starts.append(total)
            total += hi - lo + 1
        return cls(family, tuple(intervals), tuple(starts))

    @property
    def count(self) -> int:
        if not self.intervals:
            return 0
        lo, hi = self.intervals[-1]
        return self._starts[-1] + hi - lo + 1

    def at(self, index: int) -> str:
        k = bisect.bisect_right(self._starts, index) - 1
        return _address_text(self.family, self.intervals[k][0] + index - self._starts[k])

    def __iter__(self) -> Iterator[str]:
        for lo, hi in self.intervals:
            for value in range(lo, hi + 1):
                yield _address_text(self.family, value)

    def slice(self, start: int, stop: int) -> list[Interval]:
        """Intervals covering addresses number start..stop-1 (in address order)."""
        out: list[Interval] = []
        k = max(bisect.bisect_right(self._starts, start) - 1, 0)
        while k < len(self.intervals) and start < stop:
            lo, hi = self.intervals[k]
            offset = start - self._starts[k]
            take = min(hi - lo + 1 - offset, stop - start)
            if take > 0:
                out.append((lo + offset, lo + offset + take - 1))
                start += take
            k += 1
        return out


def nmap_blocks(family: int, intervals: Iterable[Interval]) -> list[str]:
    """The fewest CIDR blocks (or single addresses) covering the intervals, as Nmap targets."""
    cls = ipaddress.IPv4Address if family == 4 else ipaddress.IPv6Address
    out = []
    for lo, hi in intervals:
        for net in ipaddress.summarize_address_range(cls(lo), cls(hi)):
            out.append(str(net.network_address) if net.num_addresses == 1 else net.with_prefixlen)
    return out


@dataclass(frozen=True)
class TargetSet:
    """What a scan covers after excludes: IPv4 and IPv6 address intervals, and hostnames.

    The order is deterministic: IPv4 addresses ascending, IPv6 addresses ascending, then the
    hostnames (and scoped IPv6 addresses) in the order given, without duplicates.
    """

    v4: _Family
    v6: _Family
    names: tuple[str, ...] = ()

    @classmethod
    def build(cls, specs: Sequence[TargetSpec], excludes: Sequence[TargetSpec] = ()) -> TargetSet:
        """Combine targets, drop excluded addresses and hostnames (compared case-insensitively)."""
        by_family: dict[int, list[Interval]] = {4: [], 6: []}
        holes: dict[int, list[Interval]] = {4: [], 6: []}
        names: list[str] = []
        for spec in specs:
            if _kept_as_name(spec):
                names.append(spec.text)
            else:
                assert spec.family is not None
                by_family[spec.family].extend(_spec_intervals(spec))
        for family, blocks in NEVER_SCANNED.items():
            for block, _ in blocks:
                net = ipaddress.ip_network(block)
                holes[family].append((int(net.network_address), int(net.broadcast_address)))
        excluded_names = set()
        for spec in excludes:
            if _kept_as_name(spec):
                excluded_names.add(spec.text.lower().rstrip("."))
            else:
                assert spec.family is not None
                holes[spec.family].extend(_spec_intervals(spec))
        families = [
            _Family.of(f, _subtract(_merge(by_family[f]), _merge(holes[f]))) for f in (4, 6)
        ]
        seen: set[str] = set()
        kept = []
        for name in names:
            key = name.lower().rstrip(".")
            if key not in seen and key not in excluded_names:
                seen.add(key)
                kept.append(name)
        return cls(families[0], families[1], tuple(kept))

    def contains(self, address: str) -> bool:
        """True when the address (or a hostname given as a target) is in the set."""
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            key = address.lower().rstrip(".")
            return any(n.lower().rstrip(".") == key for n in self.names)
        if "%" in address:
            return address in self.names
        fam = self.v4 if ip.version == 4 else self.v6
        value = int(ip)
        k = bisect.bisect_right(fam.intervals, (value, 1 << 129)) - 1
        return k >= 0 and fam.intervals[k][0] <= value <= fam.intervals[k][1]

    @property
    def count(self) -> int:
        """Number of targets: addresses plus hostnames."""
        return self.v4.count + self.v6.count + len(self.names)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[str]:
        yield from self.v4
        yield from self.v6
        yield from self.names

    def at(self, index: int) -> str:
        """The target at position `index` of the deterministic order."""
        if index < 0 or index >= self.count:
            raise IndexError(index)
        if index < self.v4.count:
            return self.v4.at(index)
        index -= self.v4.count
        if index < self.v6.count:
            return self.v6.at(index)
        return self.names[index - self.v6.count]

    def strided(self, index: int, count: int) -> Iterator[str]:
        """Every `count`-th target starting at `index`: a balanced, deterministic 1/count share.

        Consecutive addresses of one network go to different shares, so live hosts that cluster
        at the start of a subnet are spread evenly.
        """
        if count < 1 or not 0 <= index < count:
            raise ValueError(f"share {index} of {count} does not exist")
        for position in range(index, self.count, count):
            yield self.at(position)

    def nmap_targets(self) -> list[str]:
        """The set as compact Nmap target arguments (CIDR blocks, addresses, hostnames)."""
        return (
            nmap_blocks(4, self.v4.intervals) + nmap_blocks(6, self.v6.intervals) + list(self.names)
        )


def _kept_as_name(spec: TargetSpec) -> bool:
    # A scoped IPv6 address (with a %interface suffix) loses its scope as an integer:
    # pass it on verbatim.
    return spec.kind == "hostname" or "%" in spec.text


def expand_targets(specs: Sequence[TargetSpec], excludes: Sequence[TargetSpec] = ()) -> list[str]:
    """Every address to scan, in a deterministic order, excludes removed; hostnames kept as names.

    Raises UsageError when the expansion would exceed MAX_EXPANDED entries (use `TargetSet`).
    """
    targets = TargetSet.build(specs, excludes)
    if targets.count > MAX_EXPANDED:
        raise UsageError(
            f"the targets cover {targets.count:,} addresses, more than {MAX_EXPANDED:,} can be "
            "listed one by one; split them into smaller networks"
        )
    return list(targets)


# --------------------------------------------------------------------------- scope checks


def _never_scanned_in(spec: TargetSpec) -> list[str]:
    """The never-scanned blocks a target overlaps, described ("224.0.0.0/4 (multicast)")."""
    if spec.family is None or _kept_as_name(spec):
        return []
    found = []
    spans = _merge(_spec_intervals(spec))
    for block, what in NEVER_SCANNED[spec.family]:
        net = ipaddress.ip_network(block)
        lo, hi = int(net.network_address), int(net.broadcast_address)
        if any(a <= hi and b >= lo for a, b in spans):
            found.append(f"{block} ({what})")
    return found


def check_scope(
    specs: Sequence[TargetSpec],
    excludes: Sequence[TargetSpec] = (),
    max_hosts: int = DEFAULT_MAX_HOSTS,
) -> list[str]:
    """Refuse, before anything is scanned, a scope of more than `max_hosts` addresses (naming
    the target that made it large) and a target made only of never-scanned addresses; return
    notes about networks scanned without their multicast or reserved part."""
    notes = []
    for spec in specs:
        blocks = _never_scanned_in(spec)
        if not blocks:
            continue
        if TargetSet.build([spec]).count == 0:
            raise UsageError(
                f"{spec.source}: {_shown(spec.text)} is only {', '.join(blocks)} addresses: "
                "flan never scans multicast or reserved ranges"
            )
        notes.append(
            f"{spec.text}: {', '.join(blocks)} addresses are not scanned "
            "(flan never scans multicast or reserved ranges)"
        )
    total = TargetSet.build(specs, excludes).count
    if total > max_hosts:
        biggest = max(specs, key=lambda spec: TargetSet.build([spec]).count)
        size = TargetSet.build([biggest]).count
        raise UsageError(
            f"{biggest.source}: {_shown(biggest.text)} covers {size:,} addresses; the scope "
            f"({total:,} addresses) is over --max-hosts {max_hosts:,}: check the prefix (a /0 "
            "is the whole Internet), or raise --max-hosts if you mean it"
        )
    return notes


# --------------------------------------------------------------------------- worker split

# Up to this many targets a group is split by striding (address i goes to part i mod n), which
# balances live hosts clustered at the start of subnets; larger groups are cut into contiguous
# blocks so that each part stays a short list of CIDR networks.
STRIDE_LIMIT = 1 << 16


@dataclass(frozen=True)
class TargetChunk:
    """The share of the targets one Nmap process scans (one IP family: Nmap needs -6 for v6)."""

    family: int
    targets: tuple[str, ...]  # Nmap target arguments: addresses, CIDR blocks, hostnames
    count: int  # hosts covered


def split_targets(targets: TargetSet, parts: int, *, names_family: int = 4) -> list[TargetChunk]:
    """Split the targets into at most `parts` balanced chunks, never mixing IPv4 and IPv6.

    Hostnames go with `names_family` (6 when the user passes Nmap's -6); scoped IPv6 addresses
    always go with IPv6.
    """
    groups: list[tuple[_Family, list[str]]] = []
    v6_names = [n for n in targets.names if ":" in n or names_family == 6]
    v4_names = [n for n in targets.names if n not in v6_names]
    for fam, names in ((targets.v4, v4_names), (targets.v6, v6_names)):
        if fam.count or names:
            groups.append((fam, names))
    if not groups:
        return []
    counts = [fam.count + len(names) for fam, names in groups]
    total = sum(counts)
    parts = max(parts, len(groups))
    shares = [max(1, min(c, round(parts * c / total))) for c in counts]
    while sum(shares) > parts:
        biggest = max(range(len(shares)), key=lambda i: shares[i])
        shares[biggest] -= 1
    chunks: list[TargetChunk] = []
    for (fam, names), count, share in zip(groups, counts, shares, strict=True):
        chunks.extend(_split_group(fam, names, count, share))
    return chunks


def _split_group(fam: _Family, names: list[str], count: int, share: int) -> list[TargetChunk]:
    if share <= 1:
        return [
            TargetChunk(fam.family, tuple(nmap_blocks(fam.family, fam.intervals) + names), count)
        ]
    if count <= STRIDE_LIMIT:
        items = [*fam, *names]
        return [
            TargetChunk(fam.family, tuple(items[k::share]), len(items[k::share]))
            for k in range(share)
        ]
    chunks = []
    for k in range(share):
        start, stop = fam.count * k // share, fam.count * (k + 1) // share
        blocks = nmap_blocks(fam.family, fam.slice(start, stop))
        mine = names[k::share]
        chunks.append(TargetChunk(fam.family, tuple(blocks + mine), stop - start + len(mine)))
    return chunks
