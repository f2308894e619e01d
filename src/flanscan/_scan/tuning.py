"""How many Nmap processes to run, and how many service probes each keeps in flight.

Nmap's service scan spends most of its time waiting: a service that sends no banner holds its
probe for the NULL probe's wait (about 6 s) before the next probe is tried. Nmap probes only
10 services of a host group at once by default, so a process with 64 hosts of 3 services each
waits in about 13 rounds. Hiding that wait needs probes in flight, not processes: one more
process costs ~80 MB (Nmap loads its whole probe and signature database), one more probe in
flight a socket. So flan runs few processes and raises each one's parallelism to the number of
services its share is likely to hold (`--min-parallelism`), within a memory allowance.

Workers are started a few at a time: every Nmap reads the replies to its port scan with a packet
capture filtered to the scanner's own address, so while several processes port-scan at once each
one also receives (and discards) the replies to all the others; for a host group of more than 20
hosts Nmap does not name the hosts in the filter. Eight processes port-scanning 256 loopback
hosts at once spent 8.1 s of CPU where one process spent 2.4 s. So at most
`PORT_SCANS_AT_ONCE` workers are starting or port-scanning at a time; a worker holds its place
until Nmap reports its port scan done, or for `PORT_SCAN_HOLD` seconds at most (where the network
is slow the port scan takes minutes and the others must only be staggered, not queued).
Figures and the reasoning: docs/scanning.md, "Workers and parallelism".
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

# Peak RSS of one `nmap -sS -sV` process (Nmap 7.93, 64 hosts, measured 77 MB) with headroom.
NMAP_PROCESS_MB = 90
# flan's own process (Python, the report built after the scan) before Nmap starts.
FLAN_MB = 150
# The whole process tree stays under this (and under half the available memory).
TREE_BUDGET_MB = 1024
# Services expected per live host when sizing parallelism: a few (ssh, a web server, ...).
SERVICES_PER_HOST = 3
# Nmap's default service-scan parallelism at -T3: raising below this changes nothing.
NMAP_DEFAULT_PARALLELISM = 10
# Upper bound of the probes one process keeps in flight (Nmap's own cap for the service scan);
# it is also the port scan's floor, so a larger value would crowd a slow network.
MAX_PARALLELISM = 100
# Nmap scans at most 64 hosts at once for 1000 ports: a share's concurrent services are those.
NMAP_HOST_GROUP = 64
# A share smaller than this gains nothing from another process (Nmap start-up costs ~0.3 s).
MIN_HOSTS_PER_WORKER = 8
# Nmap names the hosts in its capture filter for host groups up to this size (scan_engine.cc):
# then concurrent processes do not read each other's replies and need no staggering.
NMAP_FILTER_HOSTS = 20
# Workers of larger host groups starting or port-scanning at once, and how long one holds its
# place at most (seconds).
PORT_SCANS_AT_ONCE = 2
PORT_SCAN_HOLD = 5.0
# Flags that already say how hard to push: then flan adds none of its own.
USER_TIMING_FLAGS = ("-T", "--min-parallelism", "-M", "--max-parallelism", "--scan-delay",
                     "--max-scan-delay")  # fmt: skip


@dataclass(frozen=True)
class Tuning:
    workers: int
    min_parallelism: int | None  # None: Nmap's default
    memory_mb: int  # the allowance the choice was made in
    port_scans_at_once: int  # workers started and port-scanning at a time (= workers: no gate)


def available_memory_mb(meminfo: Path = Path("/proc/meminfo")) -> int:
    """MemAvailable in MB (a large value where /proc is not readable)."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 64 * 1024


def choose(
    hosts: int,
    cores: int | None = None,
    available_mb: int | None = None,
    user_timing: bool = False,
    workers: int | None = None,
) -> Tuning:
    """Workers and per-process parallelism for a top-ports (-sV) scan of `hosts` targets
    (`workers`: the user's --workers, then only the parallelism is chosen)."""
    cores = cores or os.cpu_count() or 1
    avail = available_memory_mb() if available_mb is None else available_mb
    allowance = min(TREE_BUDGET_MB, avail // 2)
    by_memory = max(1, (allowance - FLAN_MB) // NMAP_PROCESS_MB)
    by_cores = max(4, min(32, 4 * cores))
    by_hosts = max(1, math.ceil(hosts / MIN_HOSTS_PER_WORKER))
    workers = workers or max(1, min(hosts, by_memory, by_cores, by_hosts))
    share = min(NMAP_HOST_GROUP, math.ceil(hosts / workers))
    at_once = workers if share <= NMAP_FILTER_HOSTS else min(workers, PORT_SCANS_AT_ONCE)
    if user_timing:
        return Tuning(workers, None, allowance, at_once)
    wanted = min(MAX_PARALLELISM, share * SERVICES_PER_HOST)
    parallelism = wanted if wanted > NMAP_DEFAULT_PARALLELISM else None
    return Tuning(workers, parallelism, allowance, at_once)
