"""Did a run scan a given host and port? Target containment (flan's target grammar) and
port scope ("top-1000", "1-65535", "T:22,80,U:53"), so the diff says "not checked", not "fixed"."""

from __future__ import annotations

import functools
import ipaddress
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from flanscan._errors import UsageError
from flanscan._history._rows import RunScope
from flanscan._nmapopts import PortListError, parse_port_list, split_nmap_argv
from flanscan._targets import TargetSet, parse_target

NMAP_SERVICES = Path("/usr/share/nmap/nmap-services")


def _full_range(text: str) -> tuple[int, int] | None:
    """`A-B` with two whole addresses of one family, as other tools record a range (flan scan
    refuses it, as Nmap does): read only to compare a recorded run's scope."""
    left, dash, right = text.partition("-")
    try:
        lo, hi = ipaddress.ip_address(left), ipaddress.ip_address(right)
    except ValueError:
        return None
    return (int(lo), int(hi)) if dash and lo.version == hi.version else None


class _Target:
    """One recorded target, read with flan's own target grammar (`_targets.parse_target`): an
    address pattern covers the addresses flan would scan for it; anything else (a host name, a
    pattern flan does not accept) covers the host that carried that name."""

    def __init__(self, text: str) -> None:
        self.text = text
        try:
            spec = parse_target(text, "a recorded run's targets")
        except UsageError:
            spec = None  # compared as a name, like any target flan cannot read as addresses
        self._set = TargetSet.build([spec]) if spec is not None and not spec.is_hostname else None
        self._range = _full_range(text) if spec is None else None

    @property
    def is_address_pattern(self) -> bool:
        return self._set is not None or self._range is not None

    def contains(self, address: str, hostnames: Iterable[str]) -> bool:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            return self.text.lower() == address.lower()
        if self._set is not None:
            return self._set.contains(address)
        if self._range is not None:
            return self._range[0] <= int(ipaddress.ip_address(address)) <= self._range[1]
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
