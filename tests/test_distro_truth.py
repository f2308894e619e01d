"""Ground truth for distribution decisions, from the machine's installed Debian packages.

The lab runs this machine's Debian daemons; each package's changelog lists the CVEs Debian fixed
in it. The helpers here (also used by bench/bench_backports.py) build observations the way Nmap
reports the lab's services and read the changelog truth; the tests check the helpers themselves.
"""

from __future__ import annotations

import gzip
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from debian.debian_support import Version

from flanscan._distro._dpkg import dpkg_compare
from flanscan._model import HostObservation, ServiceObservation
from testlab.debian_changelog import changelog_block, changelog_cves, changelog_path

# What Nmap 7.93 adds beside product/version for the lab's daemons (seen in real lab scans).
NMAP_EXTRA: dict[str, tuple[str | None, str | None]] = {  # daemon -> (extrainfo, ostype)
    "sshd": ("protocol 2.0", "Linux"),
    "apache2": ("(Debian)", None),
    "vsftpd": (None, "Unix"),
}

# Fixes Debian shipped whose changelog entry describes the fix without the CVE id.
# (binary package, CVE) -> (package version of the entry, words of that entry proving it)
CHANGELOG_GAPS: dict[tuple[str, str], tuple[str, str]] = {
    ("openssh-server", "CVE-2024-6387"): ("1:9.2p1-2+deb12u3", "sshsigdie"),
}


def installed_version(package: str) -> str | None:
    """The installed version of a Debian binary package (dpkg-query), None when absent."""
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or None if out.returncode == 0 else None


@dataclass(frozen=True)
class LabService:
    observation: ServiceObservation
    binary_package: str
    installed: str


def lab_hosts() -> list[tuple[HostObservation, list[LabService]]]:
    """Observations of the lab's hosts as Nmap reports them, built from installed versions."""
    from testlab._daemons import DAEMONS, nmap_cpe
    from testlab._lab import HOST_SPECS, IPV4_PREFIX

    hosts = []
    for spec in HOST_SPECS:
        address = f"{IPV4_PREFIX}{spec.octet}"
        services: list[LabService] = []
        for name, port in spec.services:
            daemon = DAEMONS[name]
            version = installed_version(daemon.debian_package)
            if version is None:
                pytest.skip(f"Debian package {daemon.debian_package} is not installed")
            extrainfo, ostype = NMAP_EXTRA.get(name, (None, None))
            nmap_version = daemon.nmap_version(version)
            obs = ServiceObservation(
                address,
                port,
                "tcp",
                name=daemon.nmap_service,
                product=daemon.nmap_product,
                version=nmap_version or ("9.6.0 or later" if name == "postgres" else None),
                extrainfo=extrainfo,
                ostype=ostype,
                cpes=(nmap_cpe(daemon, version),),
            )
            services.append(LabService(obs, daemon.debian_package, version))
        hosts.append(
            (HostObservation(address, services=tuple(s.observation for s in services)), services)
        )
    return hosts


def changelog_truth(binary_package: str) -> dict[str, str]:
    """CVE -> version that fixed it, per the installed package's changelog (plus known gaps)."""
    path = changelog_path(binary_package)
    truth = changelog_cves(path) if path else {}
    for (package, cve), (version, words) in CHANGELOG_GAPS.items():
        if package == binary_package and path and words in changelog_block(path, version):
            truth.setdefault(cve, version)
    return truth


# --------------------------------------------------------------------------- tests of helpers


def test_changelog_cves_oldest_mention(tmp_path: Path) -> None:
    text = """\
pkg (1.0-3) bookworm-security; urgency=high

  * CVE-2024-0002: fix the second bug.
  * Mention CVE-2024-0001 again in a later upload.

 -- Someone <someone@localhost>  Sat, 01 Jun 2024 10:00:00 +0000

pkg (1.0-2) bookworm; urgency=medium

  * CVE-2024-0001: fix the first bug.

 -- Someone <someone@localhost>  Sat, 01 Jun 2024 09:00:00 +0000
"""
    path = tmp_path / "changelog.Debian.gz"
    with gzip.open(path, "wt") as f:
        f.write(text)
    assert changelog_cves(path) == {"CVE-2024-0001": "1.0-2", "CVE-2024-0002": "1.0-3"}
    assert "second bug" in changelog_block(path, "1.0-3")
    assert changelog_block(path, "9.9-9") == ""


@pytest.mark.parametrize("package", ["openssh-server", "redis-server", "memcached", "nginx"])
def test_installed_changelogs_list_fixes_up_to_the_installed_version(package: str) -> None:
    installed = installed_version(package)
    path = changelog_path(package)
    if installed is None or path is None:
        pytest.skip(f"{package} is not installed")
    truth = changelog_cves(path)
    assert truth, f"{package}: no CVE in {path}"
    # Every fixing version has at most the installed upstream version. (Not the full version: a
    # backport's changelog carries unstable's history, e.g. redis 5:7.0.15-1 sorts above the
    # installed 5:7.0.15-1~deb12u10 that contains it.)
    up = Version(installed).upstream_version
    assert all(dpkg_compare(Version(v).upstream_version, up) <= 0 for v in truth.values())


def test_documented_gap_is_in_the_changelog_text() -> None:
    if changelog_path("openssh-server") is None:
        pytest.skip("openssh-server is not installed")
    assert "CVE-2024-6387" not in changelog_cves(changelog_path("openssh-server"))  # type: ignore[arg-type]
    assert changelog_truth("openssh-server")["CVE-2024-6387"] == "1:9.2p1-2+deb12u3"
