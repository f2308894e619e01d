"""A tiny TCP server that sends a fixed banner to every client (the lab's simulated service).

Run by the lab inside the banner host's namespace:
    python3 banner_server.py --port 2222 --banner-file FILE ADDRESS...
The banner is sent byte for byte; the server then reads (and ignores) what the client sends
until the client closes or 10 s pass, so Nmap's probes behave as against a real daemon.
"""

from __future__ import annotations

import argparse
import socket
import socketserver
import sys
import threading
from pathlib import Path


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def _handler(banner: bytes) -> type[socketserver.BaseRequestHandler]:
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            conn: socket.socket = self.request
            try:
                conn.sendall(banner)
                conn.settimeout(10)
                while conn.recv(4096):
                    pass
            except OSError:
                pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--banner-file", type=Path, required=True)
    parser.add_argument("addresses", nargs="+")
    args = parser.parse_args(argv)
    banner = args.banner_file.read_bytes()
    servers: list[_Server] = []
    for address in args.addresses:
        cls: type[_Server] = _Server
        if ":" in address:

            class _Server6(_Server):
                address_family = socket.AF_INET6

            cls = _Server6
        servers.append(cls((address, args.port), _handler(banner)))
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for t in threads:
        t.start()
    print(f"banner server on port {args.port}: {banner!r}", file=sys.stderr, flush=True)
    for t in threads:
        t.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
