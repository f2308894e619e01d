"""A name server for the benchmark's namespace: answers every query on 127.0.0.1:53 with
NXDOMAIN at once (bench_scan_ns.py runs it inside its namespace only)."""

import socket

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 53))
while True:
    query, peer = sock.recvfrom(512)
    if len(query) < 12:
        continue
    # Same id and question; QR=1, the query's RD, RA=1, RCODE=3 (NXDOMAIN); no answers.
    flags = bytes([0x80 | (query[2] & 0x01), 0x83])
    sock.sendto(query[:2] + flags + query[4:6] + b"\0\0\0\0\0\0" + query[12:], peer)
