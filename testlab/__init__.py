"""Flan Scan's test lab: network namespaces with real Debian daemons and a scanner namespace.

See docs/test-lab.md. Typical use::

    from testlab import Lab
    with Lab() as lab:
        lab.exec(["nmap", "-sV", *lab.targets], check=True)
"""

from testlab._lab import (
    LAB_IPV4_NET,
    LAB_IPV6_NET,
    SCANNER_IPV4,
    SCANNER_IPV6,
    Lab,
    LabError,
    LabHost,
    LabService,
    LabUnavailable,
    ServiceLocation,
    cleanup,
    manifest,
    requirement_problems,
)

__all__ = [
    "LAB_IPV4_NET",
    "LAB_IPV6_NET",
    "SCANNER_IPV4",
    "SCANNER_IPV6",
    "Lab",
    "LabError",
    "LabHost",
    "LabService",
    "LabUnavailable",
    "ServiceLocation",
    "cleanup",
    "manifest",
    "requirement_problems",
]
