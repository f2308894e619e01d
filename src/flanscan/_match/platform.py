"""Platform conditions against what a banner shows of the host's operating system.

An NVD-shaped configuration "application AND running on an OS" leaves the OS unknown to the
matcher, so it becomes a condition of the finding ("running on cpe:2.3:o:microsoft:windows").
When the service itself shows another OS family (Nmap's `ostype`, an OS CPE on the port, or a
distribution name in the banner: "Apache httpd 2.4.59 ((Debian))"), the condition is false and
the finding is not reported (CVE-2024-40898 is Windows-only). Otherwise it stays, with the
condition shown. Only conditions that name OS CPEs exclusively are judged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from flanscan._model import ServiceObservation

OsFamily = Literal["windows", "unix"]
_OS_CPE = re.compile(r"cpe:2\.3:o:([^:]+):([^:]+)")
_UNIX_WORDS = re.compile(
    r"\b(debian|ubuntu|raspbian|linux|unix|centos|red hat|rhel|fedora|suse|alpine|freebsd|"
    r"openbsd|netbsd|gentoo|arch linux|rocky|almalinux|amazon linux)\b",
    re.IGNORECASE,
)
_WINDOWS_WORDS = re.compile(r"\b(windows|win32|win64|microsoft)\b", re.IGNORECASE)


def _family_of_cpe(vendor: str, product: str) -> OsFamily | None:
    if vendor == "microsoft" and product.startswith("windows"):
        return "windows"
    if (
        vendor
        in (
            "linux",
            "debian",
            "canonical",
            "redhat",
            "fedoraproject",
            "suse",
            "freebsd",
            "openbsd",
            "netbsd",
            "apple",
            "oracle",
        )
        and product != "windows"
    ):
        return "unix"
    return None


def host_os_family(service: ServiceObservation) -> OsFamily | None:
    """The OS family the service's own data shows, or None when it shows none or both."""
    seen: set[OsFamily] = set()
    for cpe in service.cpes:
        parts = cpe.split(":")
        if cpe.startswith("cpe:/o:") and len(parts) > 3:
            family = _family_of_cpe(parts[2].lower(), parts[3].lower())
            if family:
                seen.add(family)
    text = " ".join(t for t in (service.ostype, service.version, service.extrainfo) if t)
    if _UNIX_WORDS.search(text):
        seen.add("unix")
    if _WINDOWS_WORDS.search(text):
        seen.add("windows")
    return next(iter(seen)) if len(seen) == 1 else None


def excluded_by_host_os(conditions: Sequence[str], host_os: OsFamily | None) -> bool:
    """True when a "running on" condition names only OSes of another family than the host's."""
    if host_os is None:
        return False
    for condition in conditions:
        if not condition.startswith("running on"):
            continue
        families = {_family_of_cpe(v.lower(), p.lower()) for v, p in _OS_CPE.findall(condition)}
        if families and None not in families and host_os not in families:
            return True
    return False
