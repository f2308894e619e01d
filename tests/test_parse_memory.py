"""The parser's memory stays flat with the number of hosts (ratio-based, not a timing test)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from flanscan._parse import NmapXmlFile

HEADER = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE nmaprun>\n'
    '<nmaprun scanner="nmap" args="nmap -6 -sV fd00:f1a5::/64" start="1700000000" version="7.93" '
    'xmloutputversion="1.05">\n'
    '<scaninfo type="syn" protocol="tcp" numservices="1000" services="1-1000"/>\n'
)


def write_scan(path: Path, count: int) -> None:
    """A -sV scan of `count` hosts shaped like Nmap 7.93 output (three open ports each)."""
    with path.open("w") as out:
        out.write(HEADER)
        for i in range(count):
            addr = f"fd00:f1a5::{i + 1:x}"  # the lab's range; this file is never scanned
            out.write(
                f'<host starttime="1700000001" endtime="1700000002"><status state="up" '
                f'reason="syn-ack"/><address addr="{addr}" addrtype="ipv6"/><hostnames>'
                f'<hostname name="h{i}.lab" type="PTR"/></hostnames><ports>'
                '<extraports state="closed" count="997"><extrareasons reason="reset" count="997"/>'
                '</extraports><port protocol="tcp" portid="22"><state state="open" '
                'reason="syn-ack"/><service name="ssh" product="OpenSSH" '
                'version="9.2p1 Debian 2+deb12u3" extrainfo="protocol 2.0" ostype="Linux" '
                'method="probed" conf="10"><cpe>cpe:/a:openbsd:openssh:9.2p1</cpe>'
                "<cpe>cpe:/o:linux:linux_kernel</cpe></service></port>"
                '<port protocol="tcp" portid="80"><state state="open" reason="syn-ack"/>'
                '<service name="http" product="nginx" version="1.22.1" method="probed" '
                f'conf="10"><cpe>cpe:/a:igor_sysoev:nginx:1.22.1</cpe></service><script '
                f'id="http-title" output="Welcome to host {i}"/></port>'
                '<port protocol="tcp" portid="6379"><state state="open" reason="syn-ack"/>'
                '<service name="redis" method="table" conf="3"/></port></ports>'
                '<times srtt="100" rttvar="50" to="100000"/></host>\n'
            )
            if i % 500 == 0:
                out.write(f'<taskprogress task="Service scan" time="1700000003" percent="{i}"/>\n')
        out.write(
            '<runstats><finished time="1700000100" exit="success"/>'
            f'<hosts up="{count}" down="0" total="{count}"/></runstats></nmaprun>\n'
        )


def peak_while_iterating(path: Path) -> tuple[int, int, int]:
    """(hosts, services, peak traced bytes) for one pass that keeps nothing."""
    tracemalloc.start()
    try:
        hosts = services = 0
        for host in NmapXmlFile(path).hosts():
            hosts += 1
            services += len(host.services)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return hosts, services, peak


def test_memory_flat_over_tens_of_thousands_of_hosts(tmp_path: Path) -> None:
    warm, small, large = tmp_path / "warm.xml", tmp_path / "small.xml", tmp_path / "large.xml"
    write_scan(warm, 100)
    write_scan(small, 1_000)
    write_scan(large, 20_000)
    peak_while_iterating(warm)  # first-use allocations (imports, caches) are not counted
    hosts_s, services_s, peak_s = peak_while_iterating(small)
    hosts_l, services_l, peak_l = peak_while_iterating(large)
    assert (hosts_s, services_s) == (1_000, 3_000)
    assert (hosts_l, services_l) == (20_000, 60_000)
    print(f"peak: {peak_s} bytes for 1,000 hosts, {peak_l} bytes for 20,000 hosts")
    # Twenty times the hosts (about 20 MB of XML) must not cost noticeably more memory;
    # keeping the parsed elements instead would cost several MB (checked when written).
    assert peak_l < 1.5 * peak_s + 256 * 1024, (peak_s, peak_l)
    assert peak_l < 5 * 1024 * 1024
