"""Whether a finding can be reached over the network from where the scanner stands, or needs
local or physical access (CVSS attack vector `AV:L` / `AV:P`), or concerns a client-side program
of the package (ssh-agent, ssh-add, scp, ...) rather than the service that was scanned.

The client-side reading is deliberately conservative: only when the description's first sentence
names one of a short list of client programs as the thing that is vulnerable ("scp in OpenSSH
through 8.3p1 allows ...", "In ssh-agent in OpenSSH before 9.6, ...") and does not name the
server. Such findings stay in the report; they are marked and ranked after the network-reachable
ones of their service.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from functools import lru_cache

from flanscan._model import Vulnerability


class Exposure(enum.StrEnum):
    NETWORK = "network"  # reachable through the scanned service (the default)
    LOCAL = "local"  # CVSS AV:L or AV:P: needs an account on, or hands on, the host
    CLIENT = "client-side"  # a client program of the package, not the scanned server

    @property
    def rank(self) -> int:
        return {"network": 0, "client-side": 1, "local": 2}[self.value]


@dataclass(frozen=True)
class ExposureNote:
    exposure: Exposure
    why: str  # "CVSS AV:L", "client program scp"

    @property
    def label(self) -> str:
        if self.exposure is Exposure.NETWORK:
            return "network"
        return f"{self.exposure.value} ({self.why})"


_CLIENT_PROGRAMS = ("ssh-agent", "ssh-add", "ssh-keygen", "ssh-keyscan", "scp", "sftp")
# "<program> in OpenSSH", "In <program> in OpenSSH", "feature in <program> in OpenSSH": the program
# is the subject of the first sentence. `sftp-server` and `sshd` are servers: not matched.
_CLIENT = re.compile(
    r"(?:^|\bin |\bthe |\bfeature in )(" + "|".join(map(re.escape, _CLIENT_PROGRAMS)) + r")"
    r"(?![\w-])(?: \([0-9]\))? in (?:openssh|portable openssh)\b",
    re.IGNORECASE,
)
_SERVER = re.compile(r"\bsshd\b|\bserver\b|sftp-server", re.IGNORECASE)
_VECTOR = re.compile(r"(?:^|/)AV:([NALP])(?:/|$)")


@lru_cache(maxsize=65536)
def _read(vector: str | None, summary: str | None) -> ExposureNote:
    if vector:
        m = _VECTOR.search(vector)
        if m and m[1] in "LP":
            return ExposureNote(Exposure.LOCAL, f"CVSS AV:{m[1]}")
    if summary:
        first = re.split(r"(?<=[a-z0-9)])\.\s", summary.strip(), maxsplit=1)[0]
        m = _CLIENT.search(first)
        if m and not _SERVER.search(first):
            return ExposureNote(Exposure.CLIENT, f"client program {m[1].lower()}")
    return ExposureNote(Exposure.NETWORK, "")


def exposure_of(vuln: Vulnerability) -> ExposureNote:
    """How `vuln` is reached (see the module docstring)."""
    return _read(vuln.cvss.vector if vuln.cvss is not None else None, vuln.summary)


__all__ = ["Exposure", "ExposureNote", "exposure_of"]
