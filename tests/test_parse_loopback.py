"""The parser on XML that real Nmap writes right now, scanning servers this test starts on
loopback (127.0.0.1 and ::1 only): IPv6, UDP, a version-detected banner, a port Nmap has no
service entry for. Expectations come from the servers the test itself runs."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from _banner import BannerServer

from flanscan._parse import NmapXmlFile

pytestmark = pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")


def run_nmap(args: list[str], out: Path) -> str:
    subprocess.run(
        ["nmap", "-n", "-Pn", "-oX", str(out), *args],
        check=True,
        capture_output=True,
        timeout=180,
    )
    return out.read_text()


@pytest.fixture
def banner_servers() -> Iterator[tuple[BannerServer, BannerServer]]:
    v4 = BannerServer(host="127.0.0.1")
    v6 = BannerServer(host="::1")
    yield v4, v6
    v4.close()
    v6.close()


def test_version_detection_over_ipv4_and_ipv6(
    banner_servers: tuple[BannerServer, BannerServer], tmp_path: Path
) -> None:
    v4, v6 = banner_servers
    hosts = []
    for server, address, extra in ((v4, "127.0.0.1", []), (v6, "::1", ["-6"])):
        out = tmp_path / f"sv-{server.port}.xml"
        text = run_nmap(["-sT", "-sV", *extra, "-p", str(server.port), address], out)
        (host,) = NmapXmlFile(out).hosts()
        hosts.append(host)
        assert host.address == address
        assert host.address_type == ("ipv6" if ":" in address else "ipv4")
        (svc,) = host.services
        assert (svc.port, svc.protocol, svc.state) == (server.port, "tcp", "open")
        # What Nmap says in the file (read with a regex) is what the parser returns ...
        service = re.search(r"<service ([^>]*)>", text)
        assert service is not None
        attrs = dict(re.findall(r'(\w+)="([^"]*)"', service.group(1)))
        assert (svc.product, svc.version, svc.extrainfo) == (
            attrs.get("product"),
            attrs.get("version"),
            attrs.get("extrainfo"),
        )
        assert svc.cpes == tuple(re.findall(r"<cpe>([^<]+)</cpe>", text))
        # ... and it is the banner this test served.
        assert svc.product == "OpenSSH"
        assert svc.version is not None and svc.version.startswith("9.2p1")
        assert "cpe:/a:openbsd:openssh:9.2p1" in svc.cpes
    assert hosts[0].services[0].port != 0


def test_port_without_service_element(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("::1", 0))
    sock.listen(4)
    port = sock.getsockname()[1]
    try:
        out = tmp_path / "plain.xml"
        text = run_nmap(["-6", "-sT", "-p", str(port), "::1"], out)
    finally:
        sock.close()
    (host,) = NmapXmlFile(out).hosts()
    (svc,) = host.services
    assert svc.port == port and svc.state == "open"
    element = re.search(rf'<port protocol="tcp" portid="{port}">(.*?)</port>', text)
    assert element is not None
    if "<service" not in element.group(1):
        assert (svc.name, svc.product, svc.cpes) == (None, None, ())
    else:  # the ephemeral port happens to be in nmap-services
        assert svc.name == re.search(r'name="([^"]+)"', element.group(1)).group(1)  # type: ignore[union-attr]


@pytest.mark.skipif(os.geteuid() != 0, reason="a UDP scan needs root")
def test_udp_open_kept_unanswered_and_closed_left_out(tmp_path: Path) -> None:
    answering = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    answering.bind(("127.0.0.1", 0))
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    closed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]
    closed.close()
    stop = threading.Event()

    def answer() -> None:
        answering.settimeout(0.2)
        while not stop.is_set():
            try:
                data, peer = answering.recvfrom(4096)
            except OSError:
                continue
            answering.sendto(b"hello " + data[:16], peer)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    ports = [answering.getsockname()[1], silent.getsockname()[1], closed_port]
    try:
        out = tmp_path / "udp.xml"
        text = run_nmap(
            ["-sU", "--max-retries", "1", "-p", ",".join(map(str, ports)), "127.0.0.1"], out
        )
    finally:
        stop.set()
        thread.join()
        answering.close()
        silent.close()
    states = dict(
        (int(p), s)
        for p, s in re.findall(r'<port protocol="udp" portid="(\d+)"><state state="([^"]+)"', text)
    )
    assert states[ports[0]] == "open"
    assert states[ports[1]] == "open|filtered"
    assert states.get(ports[2], "closed") == "closed"
    (host,) = NmapXmlFile(out).hosts()
    assert [(s.port, s.protocol, s.state) for s in host.services] == [(ports[0], "udp", "open")]
