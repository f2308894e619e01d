"""Which Nmap to run and whether it can send raw packets (SYN scan) or must connect (-sT).

Nmap as non-root gets raw sockets from a file capability (`setcap cap_net_raw+ep`, as in the
container image). The kernel then decides at exec time:
- CAP_NET_RAW not in the process's bounding set (a container or pod without NET_RAW): exec of
  the capability-carrying file fails with EPERM, so a copy *without* the capability is needed;
- no_new_privs set (`allowPrivilegeEscalation: false`, `--security-opt no-new-privileges`):
  exec succeeds but the file capability is ignored, so raw sockets fail at scan time.
Both are read from /proc/self/status before anything runs, and confirmed by trying the exec.
"""

from __future__ import annotations

import errno
import os
import shutil
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from flanscan._errors import EnvironmentProblem

CAP_NET_RAW = 13
INSTALL_HINT = "install it with `apt-get install nmap` (Debian/Ubuntu) and run flan again"
# The copy of Nmap without file capabilities, used when the capability cannot be had: the
# environment variable names it, else this name is looked up on PATH (the image ships one).
UNPRIVILEGED_ENV = "FLAN_NMAP_UNPRIVILEGED"
UNPRIVILEGED_NAME = "nmap-unprivileged"
COPY_HINT = (
    f"make a copy without it (`install -m 0755 /usr/bin/nmap /usr/local/bin/{UNPRIVILEGED_NAME}`"
    f", or set {UNPRIVILEGED_ENV}=PATH) and flan uses it for a TCP connect scan"
)

Why = Literal["root", "file-capability", "ambient", "requested", "none"]


@dataclass(frozen=True)
class ProcessCaps:
    """The capability sets of this process (Linux, /proc/self/status)."""

    effective: int
    bounding: int
    ambient: int
    no_new_privs: bool

    def has(self, which: Literal["effective", "bounding", "ambient"], cap: int) -> bool:
        return bool(getattr(self, which) >> cap & 1)


def read_process_caps(status: Path = Path("/proc/self/status")) -> ProcessCaps | None:
    """This process's capability sets, or None where /proc does not say (not Linux)."""
    try:
        text = status.read_text()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        return ProcessCaps(
            effective=int(fields["CapEff"].strip(), 16),
            bounding=int(fields["CapBnd"].strip(), 16),
            ambient=int(fields.get("CapAmb", "0").strip(), 16),
            no_new_privs=fields.get("NoNewPrivs", "0").strip() == "1",
        )
    except (KeyError, ValueError):
        return None


def file_capabilities(path: str) -> int:
    """The permitted capabilities a file carries (security.capability xattr), 0 for none."""
    try:
        raw = os.getxattr(path, "security.capability")
    except (OSError, AttributeError):
        return 0
    # struct vfs_cap_data: magic_etc, then (permitted, inheritable) low words, then high words.
    if len(raw) < 12:
        return 0
    low: int = struct.unpack_from("<I", raw, 4)[0]
    high: int = struct.unpack_from("<I", raw, 12)[0] if len(raw) >= 20 else 0
    return low | high << 32


@dataclass(frozen=True)
class NmapChoice:
    """The Nmap executable to run, whether it can send raw packets, and why not."""

    path: str
    raw: bool
    # Environment changes for Nmap's processes: without raw sockets, Nmap must not believe
    # NMAP_PRIVILEGED (or its uid 0) and try them.
    env: dict[str, str | None] = field(default_factory=dict)
    note: str | None = None

    def environ(self) -> dict[str, str]:
        env = dict(os.environ)
        for key, value in self.env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env


def _raw_reason(path: str, caps: ProcessCaps | None) -> tuple[bool, str]:
    """Whether Nmap at `path` will have CAP_NET_RAW, and if not, why (for the note)."""
    if caps is None:  # not Linux: trust root / NMAP_PRIVILEGED as Nmap itself does
        return True, ""
    if os.geteuid() == 0:
        if caps.has("effective", CAP_NET_RAW):
            return True, ""
        return False, "flan runs as root without CAP_NET_RAW: the container does not add NET_RAW"
    if caps.has("ambient", CAP_NET_RAW):
        return True, ""
    if not file_capabilities(path) >> CAP_NET_RAW & 1:
        return False, f"flan is not root and {path} carries no cap_net_raw file capability"
    if not caps.has("bounding", CAP_NET_RAW):
        return False, "CAP_NET_RAW is not granted: the container or pod does not add NET_RAW"
    if caps.no_new_privs:
        return False, (
            "no_new_privs is set (allowPrivilegeEscalation: false, no-new-privileges), so the "
            "kernel ignores Nmap's file capability"
        )
    return True, ""


def _unprivileged_copy() -> str | None:
    named = os.environ.get(UNPRIVILEGED_ENV)
    if named:
        if not os.access(named, os.X_OK):
            raise EnvironmentProblem(
                f"{UNPRIVILEGED_ENV}={named}: not an executable file; point it at a copy of "
                "nmap without file capabilities, or unset it"
            )
        return named
    return shutil.which(UNPRIVILEGED_NAME)


def _exec_refused(path: str) -> bool:
    """True when the kernel refuses to run `path` (EPERM: a file capability not grantable)."""
    try:
        subprocess.run([path, "--version"], capture_output=True, timeout=30, check=False)
    except PermissionError as exc:
        return exc.errno == errno.EPERM
    except (OSError, subprocess.SubprocessError):
        return False  # reported when the version is read
    return False


def choose_nmap(wants_raw: bool, caps: ProcessCaps | None = None) -> NmapChoice:
    """The Nmap to run. `wants_raw`: root, NMAP_PRIVILEGED or --privileged asked for raw
    packets. When they cannot be had, the choice says so once (`note`) and uses a connect
    scan, with the capability-free copy where the normal Nmap cannot even be executed."""
    path = shutil.which("nmap")
    if path is None:
        copy = _unprivileged_copy()
        if copy is None:
            raise EnvironmentProblem(f"nmap is not installed (not found on PATH): {INSTALL_HINT}")
        path = copy
    caps = caps if caps is not None else read_process_caps()
    raw, reason = _raw_reason(path, caps)
    refused = _exec_refused(path)
    if refused:
        raw = False
        reason = reason or f"the kernel refuses to run {path}, which carries a file capability"
    if raw or (not wants_raw and not refused):
        return NmapChoice(path=path, raw=raw)
    chosen = path
    if refused or file_capabilities(path):
        copy = _unprivileged_copy()
        if copy is not None and copy != path:
            chosen = copy
        elif refused:
            raise EnvironmentProblem(
                f"cannot run {path}: operation not permitted, as {reason}; grant NET_RAW for a "
                f"SYN scan, or {COPY_HINT}"
            )
    note = (
        f"Nmap cannot send raw packets here ({reason}), so flan uses a TCP connect scan (-sT) "
        "instead of a SYN scan; for a SYN scan grant NET_RAW with privilege escalation allowed "
        "(docs/fleet.md)"
    )
    env: dict[str, str | None] = {"NMAP_PRIVILEGED": None, "NMAP_UNPRIVILEGED": "1"}
    return NmapChoice(path=chosen, raw=False, env=env, note=note)
