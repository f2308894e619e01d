"""The test lab itself: namespaces, routes, real daemons, and what a real Nmap finds there."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import signal
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from testlab import Lab, LabError, LabHost, _daemons, requirement_problems
from testlab._lab import _listening, _netns_list, _pid_alive

REPO = Path(__file__).resolve().parent.parent


# --- version mapping (no lab needed) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("dpkg", "upstream", "revision"),
    [
        ("1:9.2p1-2+deb12u7", "9.2p1", "2+deb12u7"),
        ("5:7.0.15-1~deb12u10", "7.0.15", "1~deb12u10"),
        ("3.0.3-13+b2", "3.0.3", "13+b2"),
        ("1.0", "1.0", ""),
        ("2:1.2-3-4", "1.2-3", "4"),
    ],
)
def test_debian_version_parts(dpkg: str, upstream: str, revision: str) -> None:
    assert _daemons.upstream_version(dpkg) == upstream
    assert _daemons.debian_revision(dpkg) == revision


def test_openssh_version_as_nmap_reports_it() -> None:
    assert _daemons.openssh_nmap_version("1:9.2p1-2+deb12u7") == "9.2p1 Debian 2+deb12u7"


def test_lab_name_is_checked() -> None:
    with pytest.raises(ValueError, match="lab name"):
        Lab("flan-lab")
    with pytest.raises(ValueError, match="unknown lab hosts"):
        Lab("flanx", hosts=["nope"])


# --- helpers ----------------------------------------------------------------------------------


def _dpkg_version(package: str) -> str:
    return subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


_CONNECT = textwrap.dedent(
    """
    import json, socket, sys
    out = {}
    for addr, port in json.loads(sys.argv[1]):
        fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
        with socket.socket(fam, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            out[f"{addr}|{port}"] = s.connect_ex((addr, port))
    print(json.dumps(out))
    """
)


def _connect_results(lab: Lab, pairs: list[tuple[str, int]]) -> dict[tuple[str, int], int]:
    """errno of a TCP connect from the scanner namespace to each (address, port); 0 = open."""
    r = lab.exec(
        [sys.executable, "-c", _CONNECT, json.dumps(pairs)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    raw = json.loads(r.stdout)
    return {(k.split("|")[0], int(k.split("|")[1])): v for k, v in raw.items()}


def _nmap_xml(lab: Lab, args: list[str]) -> ET.Element:
    r = lab.exec(["nmap", "-oX", "-", *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return ET.fromstring(r.stdout)


def _open_ports(
    root: ET.Element, protocol: str = "tcp"
) -> dict[tuple[str, int], ET.Element | None]:
    """(address, port) -> <service> element for every open port in an Nmap XML document."""
    found: dict[tuple[str, int], ET.Element | None] = {}
    for host in root.iter("host"):
        addr = next(a.get("addr") for a in host.iter("address") if a.get("addrtype") != "mac")
        for port in host.iter("port"):
            state = port.find("state")
            if port.get("protocol") != protocol or state is None:
                continue
            if state.get("state") == "open":
                found[(str(addr), int(port.get("portid", "0")))] = port.find("service")
    return found


def _hostnames(root: ET.Element) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for host in root.iter("host"):
        addr = next(a.get("addr") for a in host.iter("address") if a.get("addrtype") != "mac")
        out[str(addr)] = [str(h.get("name")) for h in host.iter("hostname")]
    return out


@pytest.fixture
def requirements() -> None:
    problems = requirement_problems()
    if problems:
        pytest.skip("test lab unavailable: " + "; ".join(problems))


# --- the lab ----------------------------------------------------------------------------------


def test_manifest_shape(lab: Lab) -> None:
    names = [h.name for h in lab.hosts]
    assert len(names) == len(set(names))
    daemons = [s.daemon for h in lab.hosts for s in h.services]
    for needed in ("sshd", "nginx", "apache2", "postgres", "redis", "vsftpd", "memcached"):
        assert needed in daemons
    assert daemons.count("sshd") >= 2, "one service must run on two hosts"
    assert any(not h.services for h in lab.hosts), "one host must have nothing open"
    assert any(h.ipv6 for h in lab.hosts), "one host must have an IPv6 address"
    assert lab.targets == [h.ipv4 for h in lab.hosts]
    for h in lab.hosts:
        assert ipaddress.ip_address(h.ipv4) in ipaddress.ip_network("198.18.0.0/24")
        if h.ipv6:
            assert ipaddress.ip_address(h.ipv6) in ipaddress.ip_network("fd00:f1a5::/64")
        for s in h.services:
            assert s.debian_package is not None
            assert s.package_version == _dpkg_version(s.debian_package)
            assert s.upstream_version and s.upstream_version in s.package_version


def test_namespaces_and_loopback(lab: Lab) -> None:
    present = set(_netns_list())
    assert lab.scanner_namespace in present
    for h in lab.hosts:
        assert h.namespace in present
        r = subprocess.run(
            ["ip", "-n", h.namespace, "-br", "addr"], capture_output=True, text=True, check=True
        )
        lines = {line.split()[0].split("@")[0]: line.split() for line in r.stdout.splitlines()}
        assert lines["lo"][1] in ("UNKNOWN", "UP")
        assert lines["eth0"][1] == "UP"
        assert f"{h.ipv4}/24" in lines["eth0"]
        if h.ipv6:
            assert f"{h.ipv6}/64" in lines["eth0"]


def test_scanner_namespace_has_only_lab_routes(lab: Lab) -> None:
    allowed = {
        "-4": {ipaddress.ip_network("198.18.0.0/24")},
        "-6": {ipaddress.ip_network("fd00:f1a5::/64"), ipaddress.ip_network("fe80::/64")},
    }
    for family, nets in allowed.items():
        r = lab.exec(
            ["ip", family, "route", "show", "table", "all"],
            capture_output=True,
            text=True,
            check=True,
        )
        for line in r.stdout.splitlines():
            dest = line.split()[0]
            if dest in ("local", "broadcast", "multicast", "anycast"):
                dest = line.split()[1]
                if dest == "ff00::/8" or ipaddress.ip_network(dest, strict=False).is_loopback:
                    continue
                net = ipaddress.ip_network(dest, strict=False)
                assert any(net.subnet_of(n) for n in nets if n.version == net.version), line
                continue
            assert dest != "default", f"scanner namespace has a default route: {line}"
            net = ipaddress.ip_network(dest, strict=False)
            assert net in nets, f"route beyond the lab in the scanner namespace: {line}"
    r = lab.exec(["ip", "route", "show", "default"], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == ""


def test_hosts_have_only_the_lab_route(lab: Lab) -> None:
    for h in lab.hosts:
        r = subprocess.run(
            ["ip", "-n", h.namespace, "-4", "route"], capture_output=True, text=True, check=True
        )
        assert [line.split()[0] for line in r.stdout.splitlines()] == ["198.18.0.0/24"]


def test_every_service_reachable_from_scanner(lab: Lab) -> None:
    pairs = [(loc.address, loc.service.port) for loc in lab.service_locations()]
    pairs += [(loc.address, loc.service.port) for loc in lab.service_locations(ipv6=True)]
    assert len(pairs) >= 9
    results = _connect_results(lab, pairs)
    assert {p: r for p, r in results.items() if r != 0} == {}


def test_empty_host_answers_ping_and_has_nothing_open(lab: Lab) -> None:
    empty = next(h for h in lab.hosts if not h.services)
    root = _nmap_xml(lab, ["-sn", "-PE", "--disable-arp-ping", empty.ipv4])
    status = root.find("host/status")
    assert status is not None
    assert (status.get("state"), status.get("reason")) == ("up", "echo-reply")
    assert _listening(empty.namespace) == set()  # no socket on any port, TCP or UDP
    root = _nmap_xml(lab, ["-sS", "--top-ports", "1000", "-n", empty.ipv4])
    assert _open_ports(root) == {}
    assert root.find("host/status").get("state") == "up"  # type: ignore[union-attr]


def _assert_nmap_found(lab: Lab, root: ET.Element, *, ipv6: bool) -> None:
    found = _open_ports(root)
    for loc in lab.service_locations(ipv6=ipv6):
        key = (loc.address, loc.service.port)
        assert key in found, f"nmap did not find {loc.service.daemon} at {key}"
        svc = found[key]
        assert svc is not None
        s = loc.service
        assert svc.get("name") == s.nmap_service, key
        assert svc.get("product") == s.nmap_product, key
        if s.nmap_version is not None:
            assert svc.get("version") == s.nmap_version, key
        cpes = [c.text for c in svc.iter("cpe")]
        assert s.nmap_cpe in cpes, (key, cpes)
    names = _hostnames(root)
    for h in lab.hosts:
        addr = h.ipv6 if ipv6 else h.ipv4
        if addr:
            assert names.get(addr) == [h.hostname], (addr, names.get(addr))


def test_nmap_finds_every_manifest_service(lab: Lab) -> None:
    ports = sorted({loc.service.port for loc in lab.service_locations()})
    root = _nmap_xml(lab, ["-sS", "-sV", "-p", ",".join(map(str, ports)), *lab.targets])
    _assert_nmap_found(lab, root, ipv6=False)
    # Versions derived from the installed packages, e.g. OpenSSH "9.2p1 Debian 2+deb12u7".
    ssh = lab.hosts[0].service("sshd")
    upstream, revision = ssh.package_version.split(":")[-1].rsplit("-", 1)  # type: ignore[union-attr]
    assert ssh.nmap_version == f"{upstream} Debian {revision}"


def test_nmap_finds_ipv6_services(lab: Lab) -> None:
    assert lab.targets6
    ports = sorted({loc.service.port for loc in lab.service_locations(ipv6=True)})
    root = _nmap_xml(lab, ["-6", "-sS", "-sV", "-p", ",".join(map(str, ports)), *lab.targets6])
    _assert_nmap_found(lab, root, ipv6=True)


def test_udp_service_is_open(lab: Lab) -> None:
    locations = [(h, s) for h in lab.hosts for s in h.udp_services]
    assert locations, "the lab has a UDP service"
    for h, s in locations:
        root = _nmap_xml(lab, ["-sU", "-n", "-p", str(s.port), h.ipv4])
        assert (h.ipv4, s.port) in _open_ports(root, "udp")


def test_mac_addresses_are_fixed(lab: Lab) -> None:
    for h in lab.hosts:
        r = subprocess.run(
            ["ip", "-n", h.namespace, "-br", "link", "show", "eth0"],
            capture_output=True,
            text=True,
            check=True,
        )
        octet = int(h.ipv4.rsplit(".", 1)[1])
        assert f"02:f1:a5:00:00:{octet:02x}" in r.stdout


def test_stop_and_start_service(lab: Lab) -> None:
    host = next(h for h in lab.hosts if any(s.daemon == "redis" for s in h.services))
    port = host.service("redis").port
    with lab.service_stopped(host.name, "redis"):
        assert _connect_results(lab, [(host.ipv4, port)])[(host.ipv4, port)] != 0
    assert _connect_results(lab, [(host.ipv4, port)])[(host.ipv4, port)] == 0


@pytest.mark.parametrize("daemon", ["postgres", "memcached", "sshd"])
def test_stop_and_start_each_kind(lab: Lab, daemon: str) -> None:
    host = next(h for h in lab.hosts if daemon in h.daemons)
    sockets = {(proto, a, port) for proto, port in host.sockets(daemon) for a in host.addresses}
    lab.stop_service(host.name, daemon)
    try:
        assert not sockets & _listening(host.namespace)
        lab.stop_service(host.name, daemon)  # stopping a stopped service is fine
    finally:
        lab.start_service(host.name, daemon)
    assert sockets <= _listening(host.namespace)
    lab.start_service(host.name, daemon)  # starting a running one too
    pairs = [(a, p) for proto, a, p in sockets if proto == "tcp"]
    assert set(_connect_results(lab, pairs).values()) == {0}


def test_banner_host(lab: Lab) -> None:
    banner = "SSH-2.0-OpenSSH_8.9p1 Ubuntu-3ubuntu0.10\r\n"
    host = lab.set_banner_host(banner=banner, port=2222)
    try:
        assert host.ipv4 not in lab.targets
        root = _nmap_xml(lab, ["-sV", "-n", "-p", "2222", host.ipv4])
        svc = _open_ports(root)[(host.ipv4, 2222)]
        assert svc is not None
        assert (svc.get("product"), svc.get("version")) == ("OpenSSH", "8.9p1 Ubuntu 3ubuntu0.10")
        host = lab.set_banner_host(banner="220 (vsFTPd 2.3.4)\r\n", port=21)
        root = _nmap_xml(lab, ["-sV", "-n", "-p", "21,2222", host.ipv4])
        found = _open_ports(root)
        assert (host.ipv4, 2222) not in found
        svc = found[(host.ipv4, 21)]
        assert svc is not None
        assert (svc.get("product"), svc.get("version")) == ("vsftpd", "2.3.4")
    finally:
        lab.clear_banner_host()
    assert _connect_results(lab, [(host.ipv4, 21)])[(host.ipv4, 21)] != 0


def test_cli_status_and_exec(lab: Lab) -> None:
    script = REPO / "scripts" / "lab"
    r = subprocess.run([script, "--name", lab.name, "status"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for h in lab.hosts:
        assert h.namespace in r.stdout
    assert "NOT LISTENING" not in r.stdout
    r = subprocess.run(
        [script, "--name", lab.name, "exec", "--", "ip", "-br", "addr", "show", "br0"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "198.18.0.1/24" in r.stdout
    # stop in another process, start again here: the pid files keep both sides in step
    ftp = next(h for h in lab.hosts if "vsftpd" in h.daemons)
    where = (ftp.ipv4, ftp.service("vsftpd").port)
    r = subprocess.run([script, "--name", lab.name, "stop", ftp.name, "vsftpd"])
    assert r.returncode == 0
    assert _connect_results(lab, [where])[where] != 0
    lab.start_service(ftp.name, "vsftpd")
    r = subprocess.run([script, "--name", lab.name, "stop", ftp.name, "vsftpd"])
    r = subprocess.run([script, "--name", lab.name, "start", ftp.name, "vsftpd"])
    assert r.returncode == 0
    lab.stop_service(ftp.name, "vsftpd")
    lab.start_service(ftp.name, "vsftpd")
    assert _connect_results(lab, [where])[where] == 0
    r = subprocess.run(
        [script, "--name", lab.name, "exec", "--user", "nobody", "--", "id", "-u"],
        capture_output=True,
        text=True,
    )
    assert r.stdout.strip() == str(65534)


# --- robustness (separate small labs, so the session lab is untouched) -----------------------

_CRASH = textwrap.dedent(
    """
    import json, os, signal, sys
    sys.path.insert(0, sys.argv[1])
    from testlab import Lab
    lab = Lab("flancrash", hosts=["ssh1", "db", "empty"]).up()
    pids = [int(p) for p in os.popen("ip netns pids flancrash-db").read().split()]
    print(json.dumps(pids), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # a crash: no down(), no cleanup
    """
)


@pytest.mark.lab
def test_leftovers_of_a_crashed_run_are_cleaned(requirements: None) -> None:
    r = subprocess.run(
        [sys.executable, "-c", _CRASH, str(REPO)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == -signal.SIGKILL, r.stderr
    old_pids = json.loads(r.stdout)
    assert old_pids and all(_pid_alive(p) for p in old_pids), "the crash left no daemons"
    assert "flancrash-db" in _netns_list()
    lab = Lab("flancrash", hosts=["ssh1", "db", "empty"])
    try:
        lab.up()
        assert not any(_pid_alive(p) for p in old_pids)
        pairs = [(loc.address, loc.service.port) for loc in lab.service_locations()]
        assert set(_connect_results(lab, pairs).values()) == {0}
    finally:
        lab.down()
    assert not [ns for ns in _netns_list() if ns.startswith("flancrash-")]
    assert not lab.state_dir.exists()
    lab.down()  # idempotent


@pytest.mark.lab
def test_failing_daemon_is_named_with_its_log(
    requirements: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = dataclasses.replace(
        _daemons.REDIS,
        prepare=lambda ctx: _daemons.Launch(
            ["/usr/bin/redis-server", "--port", "not-a-port", "--logfile", ""]
        ),
    )
    monkeypatch.setitem(_daemons.DAEMONS, "redis", broken)
    lab = Lab("flanfail", hosts=["db"])
    with pytest.raises(LabError) as err:
        lab.up()
    msg = str(err.value)
    assert "redis on lab host db" in msg
    assert str(lab.log_path("db", "redis")) in msg
    assert not [ns for ns in _netns_list() if ns.startswith("flanfail-")]


@pytest.mark.lab
def test_context_manager_and_concurrent_names(requirements: None, lab: Lab) -> None:
    # The session lab holds its name; an automatic second lab picks another one.
    with Lab(hosts=["empty"]) as other:
        assert other.name != lab.name
        assert other.scanner_namespace in _netns_list()
        assert isinstance(other.hosts[0], LabHost)
        with pytest.raises(LabError, match="in use"):
            Lab(other.name).up()
    assert other.scanner_namespace not in _netns_list()
    assert os.path.exists(f"/run/netns/{lab.scanner_namespace}")


# --- the captured Nmap XML in tests/data/lab (no lab needed) ---------------------------------

LAB_DATA = REPO / "tests" / "data" / "lab"


def _captured() -> dict:  # type: ignore[type-arg]
    return json.loads((LAB_DATA / "manifest.json").read_text())  # type: ignore[no-any-return]


def _captured_services(manifest: dict, *, ipv6: bool = False) -> dict[tuple[str, int], dict]:  # type: ignore[type-arg]
    out = {}
    for h in manifest["hosts"]:
        addr = h["ipv6"] if ipv6 else h["ipv4"]
        if addr:
            out.update({(addr, s["port"]): s for s in h["services"]})
    return out


def _assert_services(root: ET.Element, expected: dict[tuple[str, int], dict]) -> None:  # type: ignore[type-arg]
    found = _open_ports(root)
    assert set(found) == set(expected)
    for key, s in expected.items():
        svc = found[key]
        assert svc is not None
        assert svc.get("product") == s["nmap_product"], key
        if s["nmap_version"] is not None:
            assert svc.get("version") == s["nmap_version"], key
        assert s["nmap_cpe"] in [c.text for c in svc.iter("cpe")], key


def test_captures_are_listed_and_complete() -> None:
    manifest = _captured()
    names = {"default", "all-ports", "ipv6", "udp", "interrupted", "connect-nonroot"}
    assert set(manifest["captures"]) == names
    for name, info in manifest["captures"].items():
        text = (LAB_DATA / info["file"]).read_text()
        assert info["nmap"].startswith("Nmap version")
        if info["interrupted"]:
            assert "</nmaprun>" not in text
            assert text.count("</host>") >= 1
            with pytest.raises(ET.ParseError):
                ET.fromstring(text)
        else:
            root = ET.fromstring(text)
            assert root.tag == "nmaprun"
            assert root.get("args") == " ".join(info["command"])
            assert text.rstrip().endswith("</nmaprun>"), name


def test_capture_all_ports_has_every_service() -> None:
    manifest = _captured()
    root = ET.parse(LAB_DATA / "all-ports.xml").getroot()
    _assert_services(root, _captured_services(manifest))
    names = _hostnames(root)
    for h in manifest["hosts"]:
        assert names[h["ipv4"]] == [h["hostname"]]


def test_capture_default_misses_ports_outside_top_1000() -> None:
    manifest = _captured()
    root = ET.parse(LAB_DATA / "default.xml").getroot()
    expected = {k: v for k, v in _captured_services(manifest).items() if k[1] not in (6379, 11211)}
    assert len(expected) < len(_captured_services(manifest))
    _assert_services(root, expected)
    assert root.find("scaninfo").get("type") == "syn"  # type: ignore[union-attr]


def test_capture_connect_scan_as_nobody() -> None:
    manifest = _captured()
    assert manifest["captures"]["connect-nonroot"]["user"] == "nobody"
    root = ET.parse(LAB_DATA / "connect-nonroot.xml").getroot()
    assert root.find("scaninfo").get("type") == "connect"  # type: ignore[union-attr]
    expected = {k: v for k, v in _captured_services(manifest).items() if k[1] not in (6379, 11211)}
    _assert_services(root, expected)


def test_capture_ipv6() -> None:
    manifest = _captured()
    root = ET.parse(LAB_DATA / "ipv6.xml").getroot()
    expected = {
        k: v
        for k, v in _captured_services(manifest, ipv6=True).items()
        if k[1] not in (6379, 11211)
    }
    assert expected
    _assert_services(root, expected)
    assert {a.get("addrtype") for a in root.iter("address")} >= {"ipv6"}


def test_capture_udp() -> None:
    manifest = _captured()
    root = ET.parse(LAB_DATA / "udp.xml").getroot()
    udp = {(h["ipv4"], s["port"]) for h in manifest["hosts"] for s in h["udp_services"]}
    assert udp
    found = _open_ports(root, "udp")
    assert set(found) == udp
    states = {p.find("state").get("state") for p in root.iter("port")}  # type: ignore[union-attr]
    assert "closed" in states


def test_manifest_without_a_lab() -> None:
    from testlab import manifest

    try:
        hosts = manifest()
    except LookupError as e:
        pytest.skip(str(e))
    assert hosts[0].namespace == "flanlab-ssh1"
    redis = next(h for h in hosts if h.name == "db").service("redis")
    assert redis.package_version == _dpkg_version("redis-server")
    assert redis.nmap_version == redis.package_version.split(":")[-1].rsplit("-", 1)[0]
