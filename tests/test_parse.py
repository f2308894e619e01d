"""The Nmap XML parser on real output of several Nmap versions, on hostile XML, and on files
cut short. Expected values are read from the same files by an independent reader (minidom)."""

from __future__ import annotations

import re
import sys
import xml.dom.minidom
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import pytest

from flanscan._errors import ParseError
from flanscan._parse import NmapXmlFile

INCLUSION_FILES = {"defused_et_included.xml", "defused_et_local_includer.xml"}


def nmap_sample_files(samples: Path) -> list[Path]:
    return sorted(p for p in samples.glob("*.xml") if p.name not in INCLUSION_FILES)


def _children(node: Any, tag: str) -> list[Any]:
    return [c for c in node.childNodes if getattr(c, "tagName", None) == tag]


def expected_hosts(path: Path) -> dict[str, dict[str, Any]]:
    """What a second, independent reader (minidom, on these trusted samples) finds."""
    doc = xml.dom.minidom.parse(str(path))
    hosts: dict[str, dict[str, Any]] = {}
    for host in doc.getElementsByTagName("host"):
        addrs = {
            a.getAttribute("addrtype"): a.getAttribute("addr") for a in _children(host, "address")
        }
        address = addrs.get("ipv4") or addrs.get("ipv6")
        status = _children(host, "status")[0].getAttribute("state")
        names = [h.getAttribute("name") for h in host.getElementsByTagName("hostname")]
        ports = {}
        for port in host.getElementsByTagName("port"):
            state = _children(port, "state")[0].getAttribute("state")
            svc = (_children(port, "service") or [None])[0]
            product = svc.getAttribute("product") if svc is not None else ""
            if state != "open" and not (state == "open|filtered" and product):
                continue
            cpes = (
                [c.firstChild.data.strip() for c in _children(svc, "cpe")]
                if svc is not None
                else []
            )
            ports[(int(port.getAttribute("portid")), port.getAttribute("protocol"))] = {
                "name": (svc.getAttribute("name") or None) if svc is not None else None,
                "product": product or None,
                "version": (svc.getAttribute("version") or None) if svc is not None else None,
                "cpes": tuple(cpes),
            }
        hosts[address] = {
            "status": status,
            "hostnames": tuple(dict.fromkeys(names)),
            "mac": addrs.get("mac"),
            "ports": ports,
        }
    return hosts


def test_every_sample_parses_like_an_independent_reader(nmap_samples: Path) -> None:
    files = nmap_sample_files(nmap_samples)
    assert len(files) >= 20
    for path in files:
        reader = NmapXmlFile(path)
        hosts = list(reader.hosts())
        expected = expected_hosts(path)
        assert {h.address for h in hosts} == set(expected), path.name
        for host in hosts:
            exp = expected[host.address]
            assert host.status == exp["status"], path.name
            assert host.hostnames == exp["hostnames"], path.name
            assert host.mac == exp["mac"], path.name
            assert host.source == str(path)
            got = {
                (s.port, s.protocol): {
                    "name": s.name,
                    "product": s.product,
                    "version": s.version,
                    "cpes": s.cpes,
                }
                for s in host.services
            }
            assert got == exp["ports"], f"{path.name} {host.address}"
        assert reader.info.complete, path.name
        assert reader.info.warnings == ()


def test_run_info_matches_the_file(nmap_samples: Path) -> None:
    for path in nmap_sample_files(nmap_samples):
        text = path.read_text()
        info = NmapXmlFile(path).info  # reading .info first streams the file itself
        run = re.search(r'<nmaprun [^>]*args="([^"]*)" start="(\d+)"[^>]*\sversion="([^"]*)"', text)
        assert run is not None
        assert info.args == run.group(1).replace("&#45;", "-")
        assert info.start == datetime.fromtimestamp(int(run.group(2)), tz=UTC)
        assert info.version == run.group(3)
        fin = re.search(r'<finished time="(\d+)"[^>]*?(?:exit="(\w+)")?/>', text)
        assert fin is not None
        assert info.end == datetime.fromtimestamp(int(fin.group(1)), tz=UTC)
        assert info.exit_status == fin.group(2)  # Nmap 5.21 does not write it: None
        counts = re.search(r'<hosts up="(\d+)" down="(\d+)"', text)
        assert counts is not None
        assert (info.hosts_up, info.hosts_down) == (int(counts.group(1)), int(counts.group(2)))


def test_specific_real_outputs(nmap_samples: Path) -> None:
    # Several CPEs on one port: OpenSSH on Ubuntu names the application and the OS.
    hosts = list(NmapXmlFile(nmap_samples / "fullscan.xml").hosts())
    ssh = [s for h in hosts for s in h.services if s.product == "OpenSSH"]
    assert ssh and ssh[0].cpes == ("cpe:/a:openbsd:openssh:5.9p1", "cpe:/o:linux:linux_kernel")
    assert ssh[0].version == "5.9p1 Debian 5ubuntu1"
    assert ssh[0].extrainfo == "Ubuntu Linux; protocol 2.0"
    # Hosts down are reported as such; the /24 had 256 addresses.
    assert len(hosts) == 256
    assert sum(h.status == "up" for h in hosts) == 2
    # A host up with no open port.
    (host,) = NmapXmlFile(nmap_samples / "1_hosts_down.xml").hosts()
    assert host.status == "up" and host.services == ()
    # Hostnames, user-given then PTR, without duplicates.
    (host,) = NmapXmlFile(nmap_samples / "1_hosts.xml").hosts()
    assert host.hostnames == ("localhost",)
    assert [s.port for s in host.services] == [22, 25, 111, 631, 3306]
    # Script output (http-headers, http-methods) and OS matches.
    (host,) = NmapXmlFile(nmap_samples / "1_os_banner_scripts.xml").hosts()
    scripts = {sc.id for s in host.services for sc in s.scripts}
    assert {"http-headers", "http-methods"} <= scripts
    (host,) = NmapXmlFile(nmap_samples / "test_osclass.xml").hosts()
    text = (nmap_samples / "test_osclass.xml").read_text()
    assert list(host.os_matches) == re.findall(r'<osmatch name="([^"]*)"', text)
    assert len(host.os_matches) >= 1
    # MAC address.
    (host,) = NmapXmlFile(nmap_samples / "diff_1_host_ping_mac_changed.xml").hosts()
    assert host.mac == "02:42:AC:1C:01:04"


# --------------------------------------------------------------------------- hostile XML


class _OpenRecorder:
    """Records every file opened by this process while active (audit hooks cannot be removed,
    so one hook is installed once and switched on and off)."""

    active = False
    opened: ClassVar[list[str]] = []
    installed = False

    @classmethod
    def install(cls) -> None:
        if cls.installed:
            return

        def hook(event: str, args: tuple[Any, ...]) -> None:
            if cls.active and event == "open" and isinstance(args[0], (str, bytes, Path)):
                cls.opened.append(str(args[0]))

        sys.addaudithook(hook)
        cls.installed = True


def parse_recording_opens(path: Path) -> tuple[Exception | None, list[str]]:
    _OpenRecorder.install()
    _OpenRecorder.opened = []
    _OpenRecorder.active = True
    try:
        list(NmapXmlFile(path).hosts())
    except Exception as exc:
        return exc, list(_OpenRecorder.opened)
    finally:
        _OpenRecorder.active = False
    return None, list(_OpenRecorder.opened)


def test_inclusion_samples_refused_without_reading_anything_else(
    nmap_samples: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The includer names "file://./simple.xml": put one there to prove it is never read.
    (tmp_path / "simple.xml").write_text("<secret>do not read</secret>")
    monkeypatch.chdir(tmp_path)
    for name in sorted(INCLUSION_FILES):
        path = nmap_samples / name
        error, opened = parse_recording_opens(path)
        assert isinstance(error, ParseError), name
        assert str(path) in str(error)
        assert opened == [str(path)], opened
    error, _ = parse_recording_opens(nmap_samples / "defused_et_local_includer.xml")
    assert "DTD" in str(error)
    error, _ = parse_recording_opens(nmap_samples / "defused_et_included.xml")
    assert "not Nmap XML" in str(error)


NMAPRUN = '<nmaprun scanner="nmap" args="nmap x" start="1" version="7.93">{body}</nmaprun>'


@pytest.mark.parametrize(
    ("document", "word"),
    [
        # entity expansion ("billion laughs"), declared in an internal subset
        (
            '<?xml version="1.0"?><!DOCTYPE nmaprun [<!ENTITY a "aaaaaaaaaa">'
            '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>' + NMAPRUN.format(body="&b;"),
            "DTD",
        ),
        # external entity to a local file
        (
            '<?xml version="1.0"?><!DOCTYPE nmaprun [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            + NMAPRUN.format(body="&x;"),
            "DTD",
        ),
        # external DTD
        (
            '<?xml version="1.0"?><!DOCTYPE nmaprun SYSTEM "file:///etc/passwd">'
            + NMAPRUN.format(body=""),
            "DTD",
        ),
        ("this is not xml at all\n", "not Nmap XML"),
        ('<?xml version="1.0"?><report><host/></report>', "not Nmap XML"),
    ],
)
def test_hostile_or_foreign_xml_refused(tmp_path: Path, document: str, word: str) -> None:
    path = tmp_path / "scan.xml"
    path.write_text(document)
    error, opened = parse_recording_opens(path)
    assert isinstance(error, ParseError)
    assert str(path) in str(error) and word in str(error)
    assert opened == [str(path)]


def test_missing_file_is_a_parse_error(tmp_path: Path) -> None:
    with pytest.raises(ParseError, match=r"missing\.xml"):
        list(NmapXmlFile(tmp_path / "missing.xml").hosts())


def test_nmap_doctype_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "a.xml"
    path.write_text(
        '<?xml version="1.0"?><!DOCTYPE nmaprun>'
        + NMAPRUN.format(
            body='<host><status state="up"/><address addr="127.0.0.1" addrtype="ipv4"/></host>'
        )
    )
    assert [h.address for h in NmapXmlFile(path).hosts()] == ["127.0.0.1"]


# --------------------------------------------------------------------------- interrupted scans


def test_file_cut_short_keeps_complete_hosts(nmap_samples: Path, tmp_path: Path) -> None:
    text = (nmap_samples / "full_sudo6.xml").read_text()
    # Cut in the middle of the 200th host: the 199 before it are complete.
    starts = [m.start() for m in re.finditer(r"<host[ >]", text)]
    cut = starts[199] + 40
    path = tmp_path / "worker-3.xml"
    path.write_text(text[:cut])
    expected = [
        a for a in re.findall(r'<address addr="([^"]+)" addrtype="ipv4"', text[: starts[199]])
    ]
    reader = NmapXmlFile(path)
    hosts = list(reader.hosts())
    assert [h.address for h in hosts] == expected
    info = reader.info
    assert info.complete is False
    assert len(info.warnings) == 1 and str(path) in info.warnings[0]
    assert info.end is not None and info.start is not None  # from the last complete host
    assert info.hosts_up + info.hosts_down == 199


def test_file_cut_before_any_host_and_empty_file(tmp_path: Path) -> None:
    header = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE nmaprun>\n'
        "<!-- Nmap 7.93 scan initiated as: nmap -sV 127.0.0.1 -->\n"
    )
    for name, content in [
        ("head.xml", header),
        ("empty.xml", ""),
        ("open.xml", header + NMAPRUN[:60]),
    ]:
        path = tmp_path / name
        path.write_text(content)
        reader = NmapXmlFile(path)
        assert list(reader.hosts()) == []
        assert reader.info.complete is False
        assert str(path) in reader.info.warnings[0]


def test_nmap_error_exit_is_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "err.xml"
    path.write_text(
        NMAPRUN.format(
            body='<runstats><finished time="2" exit="error" errormsg="QUITTING!"/>'
            '<hosts up="0" down="0" total="0"/></runstats>'
        )
    )
    info = NmapXmlFile(path).info
    assert info.complete is False and info.exit_status == "error" and info.error == "QUITTING!"
    assert "QUITTING!" in info.warnings[0]


# --------------------------------------------------------------------------- odd characters

# Port lines as Nmap 7.94 wrote them (nmap/nmap#2657): references to characters XML forbids.
ODD_PORTS = (
    '<port protocol="tcp" portid="445"><state state="open" reason="syn-ack" reason_ttl="62"/>'
    '<service name="0M&#xec;&#x1;" product="Samba smbd" version="3.6.23-53.el6_10" '
    'extrainfo="workgroup: LAB" method="probed" conf="10"><cpe>cpe:/a:samba:samba</cpe>'
    "</service></port>"
    '<port protocol="tcp" portid="446"><state state="open" reason="syn-ack" reason_ttl="122"/>'
    '<service name="ife-biteP&#x1b;" product="banner&#27;\x07end" method="probed" conf="10"/>'
    "</port>"
)


def _odd_scan() -> bytes:
    hosts = []
    for i in range(1, 4):
        ports = ODD_PORTS if i == 2 else ""
        hosts.append(
            f'<host><status state="up"/><address addr="127.0.0.{i}" addrtype="ipv4"/>'
            f"<ports>{ports}</ports></host>\n"
        )
    body = "".join(hosts) + '<runstats><finished time="2" exit="success"/></runstats>'
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + NMAPRUN.format(body=body)).encode()


def test_forbidden_character_references_do_not_hide_later_hosts(tmp_path: Path) -> None:
    path = tmp_path / "odd.xml"
    path.write_bytes(_odd_scan())
    reader = NmapXmlFile(path)
    hosts = list(reader.hosts())
    assert [h.address for h in hosts] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert reader.info.complete and reader.info.warnings == ()
    first, second = hosts[1].services
    assert first.name == "0M\u00ec\\x01" and first.product == "Samba smbd"
    assert second.name == "ife-biteP\\x1b" and second.product == "banner\\x1b\\x07end"


def test_sanitizer_handles_references_split_across_reads() -> None:
    import io

    from flanscan._parse import _SanitizedReader

    data = _odd_scan()

    class Trickle(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            return super().read(3)  # every reference is split somewhere

    whole = _SanitizedReader(io.BytesIO(data)).read(-1)
    trickle = _SanitizedReader(Trickle(data))
    pieces = []
    while chunk := trickle.read(16384):
        pieces.append(chunk)
    assert b"".join(pieces) == whole
    assert b"&#x1;" not in whole and b"&#x1b;" not in whole and b"\x07" not in whole
    assert b"&#xec;" in whole  # a valid reference is left alone


def test_reads_from_a_pipe(nmap_samples: Path) -> None:
    import os
    import threading

    data = (nmap_samples / "2_hosts.xml").read_bytes()
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as out:
            out.write(data)

    thread = threading.Thread(target=feed)
    thread.start()
    hosts = list(NmapXmlFile(f"/dev/fd/{read_fd}").hosts())
    thread.join()
    os.close(read_fd)
    assert [h.address for h in hosts] == [
        h.address for h in NmapXmlFile(nmap_samples / "2_hosts.xml").hosts()
    ]
