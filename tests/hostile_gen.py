"""Generators of hostile inputs too big (or too repetitive) to keep as files: the tests of
issue 13 item 7 and bench/bench_hostile.py write them into a temporary directory, streaming."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

NVD_HEAD = (
    b'{"resultsPerPage":1,"startIndex":0,"totalResults":1,"format":"NVD_CVE","version":"2.0",'
    b'"timestamp":"2024-01-01T00:00:00.000","vulnerabilities":['
)
MIB = 1 << 20


def nested_arrays_feed(path: Path, depth: int = 100_000) -> Path:
    """An NVD feed whose one record is `depth` nested arrays (about 2 bytes per level)."""
    path.write_bytes(NVD_HEAD + b"[" * depth + b"]" * depth + b"]}")
    return path


def gzip_of_spaces(path: Path, mib: int = 1024) -> Path:
    """An NVD feed gzip: the header, then `mib` MiB of spaces in the records array (~1 MB)."""
    with gzip.open(path, "wb", compresslevel=9) as out:
        out.write(NVD_HEAD)
        block = b" " * MIB
        for _ in range(mib):
            out.write(block)
        out.write(b"]}")
    return path


def zip_bomb(path: Path, mib: int = 2048) -> Path:
    """An OSV-style zip whose one `.json` member inflates to `mib` MiB of spaces (~2 MB)."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        with z.open("UBUNTU-CVE-2024-0001.json", "w", force_zip64=True) as member:
            member.write(b'{"id": "UBUNTU-CVE-2024-0001", "affected": [')
            block = b" " * MIB
            for _ in range(mib):
                member.write(block)
    return path


def xml_whitespace(path: Path, mib: int = 1024) -> Path:
    """Nmap XML with `mib` MiB of whitespace between its elements (written in 1 MiB blocks)."""
    with path.open("wb") as out:
        out.write(b'<?xml version="1.0"?>\n<nmaprun scanner="nmap" args="nmap 127.0.0.1" '
                  b'start="1700000000" version="7.93">\n')  # fmt: skip
        block = b" " * MIB
        for _ in range(mib):
            out.write(block)
        out.write(b'<runstats><finished time="1700000001" exit="success"/>'
                  b'<hosts up="0" down="0" total="0"/></runstats></nmaprun>\n')  # fmt: skip
    return path


def many_ports(path: Path, ports: int = 10_000) -> Path:
    """Nmap XML of one loopback host with `ports` open ports, each nginx 1.18.0."""
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0"?>\n<nmaprun scanner="nmap" args="nmap -p- 127.0.0.1" '
                  'start="1700000000" version="7.93">\n<host starttime="1700000000" '
                  'endtime="1700000001"><status state="up" reason="localhost-response"/>'
                  '<address addr="127.0.0.1" addrtype="ipv4"/><ports>\n')  # fmt: skip
        for port in range(1, ports + 1):
            out.write(f'<port protocol="tcp" portid="{port}"><state state="open" '
                      'reason="syn-ack"/><service name="http" product="nginx" version="1.18.0" '
                      'method="probed" conf="10"><cpe>cpe:/a:nginx:nginx:1.18.0</cpe></service>'
                      '</port>\n')  # fmt: skip
        out.write('</ports></host>\n<runstats><finished time="1700000001" exit="success"/>'
                  '<hosts up="1" down="0" total="1"/></runstats></nmaprun>\n')  # fmt: skip
    return path


def yaml_alias_bomb(path: Path, addresses: int = 4000, aliases: int = 6000) -> Path:
    """A suppressions file (~90 KB) whose one anchored rule lists `addresses` loopback addresses
    and is repeated by `aliases` aliases: each alias costs 4 bytes and a whole rule."""
    listed = ", ".join(f"127.0.{i // 250}.{i % 250 + 1}" for i in range(addresses))
    lines = [
        "suppressions:",
        f"  - &r {{cve: CVE-2024-0001, address: [{listed}], owner: x, reason: y}}",
        *["  - *r"] * aliases,
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
