"""Did a run scan a given host and port? Target containment (CIDR, Nmap ranges, names) and
port scope ("top-1000", "1-65535", "T:22,80,U:53"), so the diff says "not checked", not "fixed"."""

from __future__ import annotations

import functools
import ipaddress
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from flanscan._history._rows import RunScope
from flanscan._nmapopts import PortListError, parse_port_list, split_nmap_argv

NMAP_SERVICES = Path("/usr/share/nmap/nmap-services")

_OCTET_PART = re.compile(r"^(\d{1,3})(?:-(\d{1,3}))?$")


@dataclass(frozen=True)
class _Target:
    """One target line: a network, an address range, an Nmap octet pattern or a host name."""

    text: str

    @functools.cached_property
    def _network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        try:
            return ipaddress.ip_network(self.text, strict=False)
        except ValueError:
            return None

    @functools.cached_property
    def _range(self) -> tuple[int, int] | None:
        # Full range "a.b.c.d-a.b.c.e" (also IPv6 "x::1-x::9").
        if self.text.count("-") != 1:
            return None
        left, right = self.text.split("-")
        try:
            lo = ipaddress.ip_address(left)
            hi = ipaddress.ip_address(right)
        except ValueError:
            return None
        if lo.version != hi.version:
            return None
        return int(lo), int(hi)

    @functools.cached_property
    def _octets(self) -> list[list[tuple[int, int]]] | None:
        # Nmap IPv4 octet syntax: "198.18.0.1-20", "198.18.0-1.*", "198.18.0.1,3,5".
        parts = self.text.split(".")
        if len(parts) != 4:
            return None
        octets: list[list[tuple[int, int]]] = []
        for part in parts:
            ranges: list[tuple[int, int]] = []
            for item in part.split(","):
                if item in ("*", "-"):
                    ranges.append((0, 255))
                    continue
                m = _OCTET_PART.match(item)
                if not m:
                    return None
                lo = int(m.group(1))
                hi = int(m.group(2)) if m.group(2) else lo
                ranges.append((lo, hi))
            octets.append(ranges)
        return octets

    @property
    def is_address_pattern(self) -> bool:
        return self._network is not None or self._range is not None or self._octets is not None

    def contains(self, address: str, hostnames: Iterable[str]) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return self.text.lower() == address.lower()
        if self._network is not None:
            return ip.version == self._network.version and ip in self._network
        if self._range is not None:
            lo, hi = self._range
            return lo <= int(ip) <= hi
        if self._octets is not None:
            if ip.version != 4:
                return False
            values = [int(o) for o in str(ip).split(".")]
            return all(
                any(lo <= v <= hi for lo, hi in ranges)
                for v, ranges in zip(values, self._octets, strict=True)
            )
        # A host name: it covers the host that carried this name in the earlier run.
        name = self.text.lower().rstrip(".")
        return any(h.lower().rstrip(".") == name for h in hostnames)


_target = functools.lru_cache(maxsize=4096)(_Target)


def _any_contains(targets: Iterable[str], address: str, hostnames: Iterable[str]) -> bool:
    names = tuple(hostnames)
    return any(_target(t.strip()).contains(address, names) for t in targets if t.strip())


def host_reason_not_checked(scope: RunScope, address: str, hostnames: Iterable[str]) -> str | None:
    """Why `scope` did not cover the host, or None when it did (unknown targets count as not)."""
    names = tuple(hostnames)
    if _any_contains(scope.incomplete_targets, address, names):
        return "its scan worker did not finish"
    if not scope.targets:
        return "the new run does not say which targets it scanned"
    if not _any_contains(scope.targets, address, names):
        if any(not _target(t.strip()).is_address_pattern for t in scope.targets if t.strip()):
            # A name or input list that may have resolved to this host: cannot tell.
            return "the new run's targets cannot be compared (names or input lists)"
        return "outside the new run's targets"
    if _any_contains(scope.excluded, address, names):
        return "excluded from the new run"
    return None


# --------------------------------------------------------------------------- ports

_PROTO_PREFIX = {"T": "tcp", "U": "udp", "S": "sctp"}


@functools.lru_cache(maxsize=8)
def _top_ports(protocol: str, count: int, services_file: Path = NMAP_SERVICES) -> frozenset[int]:
    """The `count` most frequently open ports of `protocol` as Nmap's --top-ports picks them."""
    ranked: list[tuple[float, int]] = []
    try:
        text = services_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) < 3 or "/" not in fields[1]:
            continue
        port_s, proto = fields[1].split("/", 1)
        if proto != protocol:
            continue
        try:
            ranked.append((float(fields[2]), int(port_s)))
        except ValueError:
            continue
    ranked.sort(key=lambda item: (-item[0], item[1]))
    return frozenset(port for _freq, port in ranked[:count])


def _scans_udp(commands: Iterable[str]) -> bool:
    for cmd in commands:
        try:
            argv = shlex.split(cmd)
        except ValueError:
            argv = cmd.split()
        if any(opt.name == "-sU" for opt in split_nmap_argv(argv[1:]).options):
            return True
    return False


@dataclass(frozen=True)
class PortScope:
    """Ports a run covered, per protocol; None for a protocol means "cannot tell"."""

    exact: dict[str, set[int]] | None  # None: scope unknown

    @classmethod
    def parse(cls, text: str | None, nmap_commands: Iterable[str] = ()) -> PortScope:
        """Parse the run's port scope; unknown forms give an unknown scope."""
        if not text:
            return cls(None)
        udp = _scans_udp(nmap_commands)
        result: dict[str, set[int]] = {"tcp": set(), "udp": set(), "sctp": set()}
        proto: str | None = None  # None: the ports apply to every protocol scanned
        for raw in re.split(r"[,;\s]+", text.strip()):
            if not raw:
                continue
            item = raw
            if len(item) > 2 and item[1] == ":" and item[0].upper() in _PROTO_PREFIX:
                proto = _PROTO_PREFIX[item[0].upper()]
                item = item[2:]
            protos = [proto] if proto else (["tcp", "udp"] if udp else ["tcp"])
            m_top = re.fullmatch(r"top-?(\d+)", item, flags=re.IGNORECASE)
            if m_top:
                for p in protos:
                    top = _top_ports(p, int(m_top.group(1)))
                    if not top:
                        return cls(None)
                    result[p] |= top
                continue
            try:  # one item: the prefix was read above, so it holds no comma
                (only,) = parse_port_list("-" if item.lower() == "all" else item)
            except PortListError:
                return cls(None)
            lo, hi = only.first, only.last
            for p in protos:
                result[p].update(range(lo, hi + 1))
        return cls(result)

    def covers(self, port: int, protocol: str) -> bool | None:
        if self.exact is None:
            return None
        return port in self.exact.get(protocol, set())


def port_reason_not_checked(new: RunScope, old: RunScope, port: int, protocol: str) -> str | None:
    """Why the new run did not scan this port, or None when it did."""
    if new.ports == old.ports:
        return None  # the same scope that found it looked again
    covered = PortScope.parse(new.ports, new.nmap_commands).covers(port, protocol)
    if covered is None:
        return f"the new run's port scope ({new.ports}) cannot be compared"
    if not covered:
        return f"outside the new run's port scope ({new.ports})"
    return None
