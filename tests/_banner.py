"""A real service for the tests that scan loopback: a TCP server that greets every client with
an SSH banner. Nmap's NULL probe names it at once, so `-sV` needs no probe waits."""

from __future__ import annotations

import socket
import threading
from types import TracebackType

OPENSSH_DEB12 = b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n"


class BannerServer:
    """Listens on `host` (127.0.0.1 or ::1), on a port the kernel picks unless one is given;
    closing it ends its thread."""

    def __init__(self, banner: bytes = OPENSSH_DEB12, host: str = "127.0.0.1") -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.banner = banner
        self.sock = socket.create_server((host, 0), family=family, backlog=16)
        self.port = int(self.sock.getsockname()[1])
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:  # closed
                return
            with conn:
                try:
                    conn.sendall(self.banner)
                    # Let the client read the banner and hang up first (Nmap may reset).
                    conn.settimeout(0.5)
                    conn.recv(1024)
                except OSError:
                    pass

    def close(self) -> None:
        # shutdown wakes the accept() the thread is blocked in; close alone would not.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=10)

    def __enter__(self) -> BannerServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
