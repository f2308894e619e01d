"""The parser and report model on Nmap XML captured from real scans of the test lab
(tests/data/lab/, see its manifest.json): what the parser reads must agree with the lab's
manifest (the daemons and versions actually installed) and with an independent regex read."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from flanscan._model import HostObservation
from flanscan._nmapopts import parse_nmap_args
from flanscan._parse import NmapXmlFile
from flanscan._report import build_report
from flanscan._xmlset import summarize_runs

LAB = Path(__file__).parent / "data" / "lab"
pytestmark = pytest.mark.skipif(
    not (LAB / "manifest.json").is_file(), reason="no captured lab XML in tests/data/lab"
)

TCP_CAPTURES = ("default", "all-ports", "connect-nonroot", "ipv6")


def manifest() -> dict[str, Any]:
    return dict(json.loads((LAB / "manifest.json").read_text()))


def capture(name: str) -> tuple[dict[str, Any], Path]:
    entry = manifest()["captures"][name]
    return entry, LAB / entry["file"]


def expand_ports(spec: str) -> set[int]:
    ports: set[int] = set()
    for part in spec.split(","):
        low, _, high = part.partition("-")
        ports.update(range(int(low), int(high or low) + 1))
    return ports


def regex_ports(text: str) -> dict[tuple[str, int, str], dict[str, str]]:
    """(address, port, protocol) -> service attributes, for every open port: a second reader."""
    found: dict[tuple[str, int, str], dict[str, str]] = {}
    for host in re.findall(r"<host[ >].*?</host>", text, re.S):
        addr = re.search(r'<address addr="([^"]+)" addrtype="ipv[46]"', host)
        assert addr is not None
        for proto, port, body in re.findall(
            r'<port protocol="(\w+)" portid="(\d+)">(.*?)</port>', host, re.S
        ):
            if '<state state="open"' not in body:
                continue
            svc = re.search(r"<service ([^>]*?)/?>", body)
            attrs = dict(re.findall(r'(\w+)="([^"]*)"', svc.group(1))) if svc else {}
            attrs["cpes"] = " ".join(re.findall(r"<cpe>([^<]+)</cpe>", body))
            found[(addr.group(1), int(port), proto)] = attrs
    return found


def manifest_services(ipv6: bool = False) -> dict[tuple[str, int, str], dict[str, Any]]:
    out = {}
    for host in manifest()["hosts"]:
        address = host["ipv6"] if ipv6 else host["ipv4"]
        if address is None:
            continue
        for svc in host["services"]:
            out[(address, svc["port"], svc["protocol"])] = svc
    return out


@pytest.mark.parametrize("name", TCP_CAPTURES)
def test_tcp_captures_agree_with_the_lab_and_a_regex(name: str) -> None:
    entry, path = capture(name)
    text = path.read_text()
    reader = NmapXmlFile(path)
    hosts = list(reader.hosts())
    assert reader.info.complete and reader.info.warnings == ()
    targets = parse_nmap_args(" ".join(entry["command"])).targets
    assert [h.address for h in hosts] == list(targets)
    assert all(h.status == "up" for h in hosts)
    got = {(s.address, s.port, s.protocol): s for h in hosts for s in h.services}
    # 1. The same ports and service fields as a regex finds in the file.
    by_regex = regex_ports(text)
    assert set(got) == set(by_regex)
    for key, attrs in by_regex.items():
        svc = got[key]
        assert svc.product == attrs.get("product") and svc.version == attrs.get("version")
        assert svc.name == attrs.get("name") and " ".join(svc.cpes) == attrs["cpes"]
    # 2. Every lab service on a scanned port was found, as the manifest describes it.
    scanned = expand_ports(re.search(r'<scaninfo [^>]*services="([^"]+)"', text).group(1))  # type: ignore[union-attr]
    lab = manifest_services(ipv6=entry["command"][1] == "-6")
    expected = {k for k in lab if k[0] in targets and k[1] in scanned}
    assert expected and expected <= set(got)
    for key in expected:
        svc, want = got[key], lab[key]
        assert svc.product == want["nmap_product"]
        if want["nmap_version"] is not None:
            assert svc.version == want["nmap_version"]
        assert want["nmap_cpe"] in svc.cpes
    # 3. Hostnames; the host with nothing open is up with no service.
    names = {h["ipv4"]: h["hostname"] for h in manifest()["hosts"]}
    names.update({h["ipv6"]: h["hostname"] for h in manifest()["hosts"] if h["ipv6"]})
    for host in hosts:
        assert host.hostnames == (names[host.address],)
    empty = [h for h in manifest()["hosts"] if not h["services"] and not h["udp_services"]]
    for spec in empty:
        for host in hosts:
            if host.address == spec["ipv4"]:
                assert host.services == ()


def test_udp_capture_keeps_open_ports_only() -> None:
    entry, path = capture("udp")
    text = path.read_text()
    hosts = list(NmapXmlFile(path).hosts())
    states = {
        (addr_block, int(port)): state
        for addr_block, body in re.findall(
            r'<address addr="([^"]+)" addrtype="ipv4"/>(.*?)</host>', text, re.S
        )
        for port, state in re.findall(r'portid="(\d+)"><state state="([^"]+)"', body)
    }
    expected = {(a, p) for (a, p), s in states.items() if s == "open"}
    got = {(s.address, s.port) for h in hosts for s in h.services}
    assert got == expected
    # memcached answers on UDP: open, but -sV (intensity 0) names no product.
    udp_lab = {
        (h["ipv4"], s["port"])
        for h in manifest()["hosts"]
        for s in h["udp_services"]
        if h["ipv4"] in entry["command"]
    }
    assert udp_lab and udp_lab <= got
    for host in hosts:
        for svc in host.services:
            assert svc.protocol == "udp" and svc.state == "open"
    assert [h.address for h in hosts if not h.services]  # a host where both ports are closed


def test_interrupted_capture_keeps_the_complete_hosts() -> None:
    entry, path = capture("interrupted")
    assert entry["interrupted"] is True
    reader = NmapXmlFile(path)
    hosts = list(reader.hosts())
    assert len(hosts) == entry["hosts_complete"]
    text = path.read_text()
    # <hosthint> elements (hosts found up, not yet scanned) are not hosts of the report.
    assert "<hosthint>" in text
    complete = re.findall(r"<host [^>]*>.*?</host>", text, re.S)
    assert [h.address for h in hosts] == [
        re.search(r'<address addr="([^"]+)" addrtype="ipv4"/>', h).group(1)  # type: ignore[union-attr]
        for h in complete
    ]
    macs = [re.search(r'<address addr="([^"]+)" addrtype="mac"', h) for h in complete]
    assert [h.mac for h in hosts] == [m.group(1) if m else None for m in macs]
    info = reader.info
    assert info.complete is False
    (warning,) = info.warnings
    assert str(path) in warning
    assert info.end is not None  # the last complete host's end time


def test_report_of_the_lab_merges_passes_and_groups_services() -> None:
    files = [capture("default")[1], capture("all-ports")[1], capture("udp")[1]]
    readers = [NmapXmlFile(f) for f in files]
    hosts: list[HostObservation] = [h for r in readers for h in r.hosts()]
    summary = summarize_runs([r.info for r in readers])
    report = build_report(hosts, scan=summary, analyze=None, vulndb=None, vulndb_note=None)
    lab = manifest()
    # Every TCP service of the lab (Redis and memcached from the all-ports pass) and the
    # memcached UDP port are locations of the report.
    locations = {
        (loc.address, loc.port, loc.protocol) for s in report.services for loc in s.locations
    }
    expected = set(manifest_services())
    expected |= {(h["ipv4"], s["port"], "udp") for h in lab["hosts"] for s in h["udp_services"]}
    assert locations == expected
    # One product+version on two hosts is one service with both locations.
    by_key: dict[tuple[str, str], set[str]] = {}
    for host in lab["hosts"]:
        for s in host["services"]:
            if s["nmap_version"]:
                by_key.setdefault((s["nmap_product"], s["nmap_version"]), set()).add(host["ipv4"])
    shared = {k: v for k, v in by_key.items() if len(v) > 1}
    assert shared, "the lab has no service on two hosts"
    for (product, version), addresses in shared.items():
        (svc,) = [s for s in report.services if (s.product, s.version) == (product, version)]
        assert {loc.address for loc in svc.locations} == addresses
    # Every host is listed, the empty one with no open port.
    assert {(h.address, h.open_ports) for h in report.hosts} == {
        (h["ipv4"], len(h["services"]) + len(h["udp_services"])) for h in lab["hosts"]
    }
    assert report.scan.hosts_up == len(lab["hosts"])
    # The captures put the targets last, after "-oX FILE".
    commands = [capture(name)[0]["command"] for name in ("default", "all-ports", "udp")]
    targets = {t for c in commands for t in c[c.index("-oX") + 2 :]}
    assert set(summary.targets) == targets
    assert summary.nmap_version == re.search(
        r"version ([\d.]+)", capture("default")[0]["nmap"]
    ).group(1)  # type: ignore[union-attr]
