"""Find Nmap and run one Nmap process, reading its output lines on a thread."""

from __future__ import annotations

import collections
import ctypes
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from flanscan._errors import EnvironmentProblem
from flanscan._scan.privilege import INSTALL_HINT


def nmap_version(path: str, env: dict[str, str] | None = None) -> str:
    """Nmap's version number ("7.93"), or "" when it cannot be told."""
    try:
        out = subprocess.run(
            [path, "--version"], capture_output=True, text=True, timeout=30, check=False, env=env
        ).stdout
    except PermissionError as exc:
        raise EnvironmentProblem(
            f"cannot run {path} ({exc.strerror}): check its permissions "
            "and file capabilities (docs/fleet.md)"
        ) from None
    except (OSError, subprocess.SubprocessError) as exc:
        raise EnvironmentProblem(f"cannot run {path} ({exc}): {INSTALL_HINT}") from None
    m = re.search(r"Nmap version (\S+)", out)
    return m.group(1) if m else ""


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _die_with_parent(parent: int) -> Callable[[], None]:
    """A preexec function: the child gets SIGKILL when flan dies, even by `kill -9`.

    Resolved here in the parent (ctypes loads nothing after the fork). The signal follows the
    thread that started the child: the scan engine starts Nmap from the main thread, which
    lives as long as flan. If flan died between fork and prctl, the child quits at once.
    """
    prctl = _LIBC.prctl if _LIBC is not None else None

    def preexec() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


# (process, line) for each output line, (process, None) when its output ends.
LineQueue = queue.Queue[tuple["NmapProcess", str | None]]


class NmapProcess:
    """One running Nmap: stdout and stderr merged, copied to a log file and to a queue."""

    def __init__(
        self,
        argv: list[str],
        cwd: Path,
        log_path: Path,
        lines: LineQueue,
        env: dict[str, str] | None = None,
    ) -> None:
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        self.started_at: float | None = None
        self.returncode: int | None = None
        self._lines = lines
        self._popen: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None
        self._log_fd = -1

    def start(self) -> None:
        """Start Nmap; raises OSError if it cannot be executed."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        # Opened here (an error is the caller's), O_NOFOLLOW: a symlink planted at the log's
        # name is refused, not written through.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        self._log_fd = os.open(self.log_path, flags, 0o644)
        try:
            self._popen = self._spawn()
        except BaseException:
            os.close(self._log_fd)
            raise
        self.started_at = time.monotonic()
        self._reader = threading.Thread(target=self._read, name=f"nmap-{self._popen.pid}")
        self._reader.daemon = True
        self._reader.start()

    def _spawn(self) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
            # Its own process group (a terminal's Ctrl-C reaches flan, which stops Nmap and keeps
            # the XML), and it dies with flan: no Nmap keeps scanning after `kill -9` of flan.
            process_group=0,
            preexec_fn=_die_with_parent(os.getpid()),
        )

    def _read(self) -> None:
        assert self._popen is not None and self._popen.stdout is not None
        with open(self._log_fd, "w", encoding="utf-8", errors="replace") as log:
            for line in self._popen.stdout:
                log.write(line)
                log.flush()
                self.tail.append(line.rstrip("\n"))
                self._lines.put((self, line))
        self._lines.put((self, None))

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit status (after the output ended)."""
        assert self._popen is not None
        self.returncode = self._popen.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return self.returncode

    def stop(self, grace: float = 5.0) -> None:
        """Terminate Nmap (SIGTERM, then SIGKILL after `grace` seconds); its XML stays on disk."""
        if self._popen is None or self._popen.poll() is not None:
            return
        self._popen.terminate()
        try:
            self._popen.wait(grace)
        except subprocess.TimeoutExpired:
            self._popen.kill()
            self._popen.wait()

    @property
    def running(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def error_message(self) -> str | None:
        """Nmap's own one-line reason for quitting, if it printed one."""
        lines = [line.strip() for line in self.tail if line.strip()]
        for i, line in enumerate(lines):
            if line == "QUITTING!":
                before = [x for x in lines[:i] if not x.startswith(("Starting Nmap", "WARNING"))]
                return before[-1] if before else line
            m = re.match(r"^(?:\S*/)?nmap: (.+)", line)
            if m:
                return m.group(1)
        return None
