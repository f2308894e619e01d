"""Read Nmap's normal (human) output line by line for live progress.

Nmap prints, with `-v --stats-every`, which ports it finds as it finds them, how many hosts it
has completed and its own estimate of the time remaining; the XML file carries the results.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_DISCOVERED = re.compile(r"^Discovered open port (\d+)/(tcp|udp|sctp) on (\S+)")
_STATS = re.compile(
    r"^Stats: [\d:]+ elapsed; (\d+) hosts? completed \((\d+) up\), (\d+) undergoing"
)
_TIMING = re.compile(
    r"^(.+?) Timing: About ([\d.]+)% done(?:; ETC: [\d:]+ \((\d+):(\d+):(\d+) remaining\))?"
)
_REPORT = re.compile(r"^Nmap scan report for (?:(\S+) \(([^)]+)\)|(\S+))(\s+\[host down)?")
_PORT = re.compile(r"^(\d+)/(tcp|udp|sctp)\s+(\S+)\s+(\S+)")
# Targets Nmap names and then leaves out: a name that does not resolve, a host timeout.
_UNRESOLVED = re.compile(r'^Failed to resolve (?:"(.+)"\.|given hostname/IP: (\S+?)\.)')
_TIMED_OUT = re.compile(r"^Skipping host (\S+)(?: \(([^)]+)\))? due to host timeout")
# The end of a port scan (SYN, connect, UDP, ...): "(N total ports)"; a ping scan counts hosts.
_PORT_SCAN_DONE = re.compile(r"^Completed (.+? Scan) at .*\(\d+ total ports\)")
_DONE = re.compile(r"^Nmap done: (\d+) IP address(?:es)? \((\d+) hosts? up\)")


@dataclass(frozen=True)
class OpenPort:
    address: str
    port: int
    protocol: str


@dataclass(frozen=True)
class Stats:
    hosts_completed: int
    hosts_up: int
    undergoing: int


@dataclass(frozen=True)
class Timing:
    task: str
    percent: float
    remaining: float | None  # seconds, Nmap's own estimate for the current task


@dataclass(frozen=True)
class HostReport:
    address: str
    hostname: str | None
    down: bool


@dataclass(frozen=True)
class PortLine:
    """A row of the port table printed for a host when Nmap is done with it."""

    address: str
    port: int
    protocol: str
    state: str
    service: str
    identified: bool  # a service scan named it (not "unknown", no trailing "?")


@dataclass(frozen=True)
class PortScanDone:
    """Nmap finished the port scan of a host group (service detection comes next)."""

    scan: str  # "SYN Stealth Scan", "Connect Scan", ...


@dataclass(frozen=True)
class Done:
    addresses: int
    hosts_up: int


@dataclass(frozen=True)
class Skipped:
    """A target Nmap gave up on without checking it, and why (in words for the user)."""

    target: str
    reason: str


Event = OpenPort | Stats | Timing | HostReport | PortLine | PortScanDone | Done | Skipped


class NmapOutputParser:
    """Turn Nmap's stdout lines into events; keeps the context of the current port table."""

    def __init__(self) -> None:
        self._host: str | None = None
        self._has_version = False

    def feed(self, line: str) -> Event | None:
        """Parse one line (without its newline); None when it says nothing we track."""
        line = line.rstrip("\r\n")
        if not line.strip():
            return None
        if self._host is not None:
            if line.startswith("PORT "):
                self._has_version = " VERSION" in line
                return None
            m = _PORT.match(line)
            if m:
                service = m.group(4)
                return PortLine(
                    address=self._host,
                    port=int(m.group(1)),
                    protocol=m.group(2),
                    state=m.group(3),
                    service=service,
                    identified=self._has_version
                    and service != "unknown"
                    and not service.endswith("?"),
                )
        m = _DISCOVERED.match(line)
        if m:
            return OpenPort(m.group(3), int(m.group(1)), m.group(2))
        m = _STATS.match(line)
        if m:
            return Stats(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        m = _TIMING.match(line)
        if m:
            remaining = None
            if m.group(3) is not None:
                h, mi, s = (int(m.group(i)) for i in (3, 4, 5))
                remaining = float(h * 3600 + mi * 60 + s)
            return Timing(m.group(1), float(m.group(2)), remaining)
        m = _PORT_SCAN_DONE.match(line)
        if m:
            return PortScanDone(m.group(1))
        m = _REPORT.match(line)
        if m:
            name, addr, bare, down = m.groups()
            self._host = addr or bare
            self._has_version = False
            assert self._host is not None
            return HostReport(self._host, name, bool(down))
        m = _UNRESOLVED.match(line)
        if m:
            return Skipped(m.group(1) or m.group(2), "the name does not resolve")
        m = _TIMED_OUT.match(line)
        if m:
            return Skipped(m.group(2) or m.group(1), "Nmap skipped it after its host timeout")
        m = _DONE.match(line)
        if m:
            self._host = None
            return Done(int(m.group(1)), int(m.group(2)))
        return None
