"""A fake `nmap` early on PATH for scope tests: it records its argv and writes canned XML, so
no packet leaves the machine whatever flan passes it.

The XML lists the hosts in FAKE_NMAP_HOSTS (comma-separated; default: none), each up with one
open ssh port, whatever the targets: a test can make "Nmap" report a host outside the scope.
Each call appends its argv as one JSON line to FAKE_NMAP_LOG. With FAKE_NMAP_SLEEP=SECONDS it
creates its XML file empty and waits that long before writing it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SCRIPT = r"""
import json, os, sys, time
from xml.sax.saxutils import quoteattr
argv = sys.argv[1:]
if argv == ["--version"]:
    print("Nmap version 7.93 ( https://nmap.org )")
    sys.exit(0)
with open(os.environ["FAKE_NMAP_LOG"], "a") as log:
    log.write(json.dumps(argv) + "\n")
out = argv[argv.index("-oX") + 1] if "-oX" in argv else None
hosts = [h for h in os.environ.get("FAKE_NMAP_HOSTS", "").split(",") if h]
if out and os.environ.get("FAKE_NMAP_SLEEP"):  # like Nmap: the file exists before its first byte
    open(out, "w").close()
    time.sleep(float(os.environ["FAKE_NMAP_SLEEP"]))
now = int(time.time())
parts = ['<?xml version="1.0"?>',
         '<nmaprun scanner="nmap" args=%s start="%d" version="7.93" xmloutputversion="1.05">'
         % (quoteattr(" ".join(["nmap", *argv])), now),
         '<scaninfo type="connect" protocol="tcp" numservices="1" services="22"/>']
for h in hosts:
    kind = "ipv6" if ":" in h else "ipv4"
    parts.append('<host><status state="up" reason="syn-ack"/><address addr="%s" addrtype="%s"/>'
                 '<hostnames/><ports><port protocol="tcp" portid="22"><state state="open" '
                 'reason="syn-ack"/><service name="ssh" product="OpenSSH" version="9.2p1" '
                 'method="probed" conf="10"/></port></ports></host>' % (h, kind))
n = len(hosts)
parts.append('<runstats><finished time="%d" elapsed="0.01" exit="success"/>'
             '<hosts up="%d" down="0" total="%d"/></runstats></nmaprun>' % (now, n, n))
if out:
    with open(out, "w") as f:
        f.write("\n".join(parts) + "\n")
print("Nmap done: %d IP addresses (%d hosts up) scanned in 0.01 seconds" % (len(hosts), len(hosts)))
"""


@dataclass
class FakeNmap:
    """The fake's directory (put first on PATH), its call log and the environment to run flan."""

    bin_dir: Path
    log: Path
    env: dict[str, str]

    def calls(self) -> list[list[str]]:
        """Every argv the fake was called with (`--version` checks left out)."""
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]

    def hosts(self, *addresses: str) -> None:
        """Make every later call report these hosts as up."""
        self.env["FAKE_NMAP_HOSTS"] = ",".join(addresses)


@pytest.fixture
def fake_nmap(tmp_path: Path) -> Iterator[FakeNmap]:
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    nmap = bin_dir / "nmap"
    nmap.write_text(f"#!{sys.executable}\n{SCRIPT}")
    nmap.chmod(0o755)
    log = tmp_path / "nmap-calls.jsonl"
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "FAKE_NMAP_LOG": str(log),
    }
    env.pop("FAKE_NMAP_HOSTS", None)
    yield FakeNmap(bin_dir, log, env)
