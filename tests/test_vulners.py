"""The `vulners` NSE script's XML output read into the model, on the shape the real script
documents (its @xmloutput block, read from Nmap's installed script when present)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flanscan._model import Confidence, Severity
from flanscan._parse import NmapXmlFile
from flanscan._vulners import findings_from_vulners

NSE = Path("/usr/share/nmap/scripts/vulners.nse")

PORT = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE nmaprun>
<nmaprun scanner="nmap" args="nmap -sV --script vulners 127.0.0.1" start="1700000000"
 version="7.93">
<host><status state="up" reason="localhost-response"/><address addr="127.0.0.1" addrtype="ipv4"/>
<ports><port protocol="tcp" portid="{port}"><state state="open" reason="syn-ack"/>
<service name="{name}" product="{product}" version="{version}" method="probed"
 conf="10">{cpes}</service>
<script id="vulners" output="&#xa;  {key}: &#xa;    	CVE-X	7.8	https://vulners.com/cve/CVE-X">
{tables}
</script></port></ports></host>
<runstats><finished time="1700000010" exit="success"/><hosts up="1" down="0" total="1"/></runstats>
</nmaprun>
"""


def nse_xmloutput() -> str:
    """The @xmloutput example of the vulners script installed with Nmap."""
    if not NSE.is_file():
        pytest.skip(f"{NSE} is not installed")
    text = NSE.read_text()
    block = re.search(r"-- @xmloutput\n((?:--.*\n)+?)(?:--\s*\n|\n)", text)
    assert block is not None, "vulners.nse has no @xmloutput block"
    return "".join(line[2:] + "\n" for line in block.group(1).splitlines())


def test_vulners_output_of_the_installed_script(tmp_path: Path) -> None:
    tables = nse_xmloutput()
    key = re.search(r'<table key="([^"]+)">', tables).group(1)  # type: ignore[union-attr]
    rows = re.findall(r"<table>(.*?)</table>", tables, re.S)
    expected = []
    for row in rows:
        elems = dict(re.findall(r'<elem key="(\w+)">([^<]*)</elem>', row))
        expected.append(
            (elems["id"], float(elems["cvss"]), elems["type"], elems.get("is_exploit") == "true")
        )
    assert expected, "no rows in the script's example"
    path = tmp_path / "vulners.xml"
    path.write_text(
        PORT.format(
            port=53,
            name="domain",
            product="ISC BIND",
            version="9.8.2rc1",
            cpes=f"<cpe>{key}</cpe>",
            key=key,
            tables=tables,
        )
    )
    (host,) = NmapXmlFile(path).hosts()
    (svc,) = host.services
    assert [(v.id, v.cvss, v.type, v.is_exploit) for v in svc.vulners] == expected
    assert {v.key for v in svc.vulners} == {key}
    findings = findings_from_vulners(svc)
    assert [f.id for f in findings] == [e[0] for e in expected]
    for finding, (_, cvss, _, _) in zip(findings, expected, strict=True):
        vuln = finding.vulnerability
        assert vuln.source == "vulners"
        assert vuln.cvss is not None and vuln.cvss.score == cvss and vuln.cvss.version == "unknown"
        assert finding.confidence == Confidence.EXACT
        assert finding.evidence[0].detected_cpe == key


def test_newer_script_shape_exploits_and_fallback_key(tmp_path: Path) -> None:
    # Newer vulners.nse adds cvss_type and marks exploits; bulletins that are not CVEs appear
    # too; a name search (no CPE found anything) uses "product version" as the table key.
    tables = """
<table key="cpe:/a:openbsd:openssh:7.4">
<table><elem key="cvss">9.8</elem><elem key="id">F0979183-AE88-53B4-86CF-3AF0523F3807</elem>
<elem key="type">githubexploit</elem><elem key="is_exploit">true</elem>
<elem key="cvss_type">cvss3.1</elem></table>
<table><elem key="id">CVE-2023-38408</elem><elem key="type">cve</elem><elem key="cvss">9.8</elem>
<elem key="cvss_type">cvss3.1</elem></table>
<table><elem key="id">EDB-ID:40136</elem><elem key="cvss">0.0</elem>
<elem key="type">exploitdb</elem>
<elem key="is_exploit">true</elem></table>
<table><elem key="id">SECURITYVULNS:VULN:1</elem><elem key="type">securityvulns</elem></table>
</table>
<table key="OpenSSH 7.4">
<table><elem key="id">CVE-2023-38408</elem><elem key="type">cve</elem>
<elem key="cvss">7.5</elem></table>
</table>"""
    path = tmp_path / "v.xml"
    path.write_text(
        PORT.format(
            port=22,
            name="ssh",
            product="OpenSSH",
            version="7.4",
            cpes="<cpe>cpe:/a:openbsd:openssh:7.4</cpe>",
            key="cpe:/a:openbsd:openssh:7.4",
            tables=tables,
        )
    )
    (host,) = NmapXmlFile(path).hosts()
    (svc,) = host.services
    assert len(svc.vulners) == 5
    by_id = {f.id: f for f in findings_from_vulners(svc)}
    assert set(by_id) == {
        "F0979183-AE88-53B4-86CF-3AF0523F3807",
        "CVE-2023-38408",
        "EDB-ID:40136",
        "SECURITYVULNS:VULN:1",
    }
    cve = by_id["CVE-2023-38408"].vulnerability
    assert cve.cvss is not None and (cve.cvss.score, cve.cvss.version) == (
        9.8,
        "3.1",
    )  # best of two
    assert cve.severity == Severity.CRITICAL and cve.is_exploit is False
    assert cve.url == "https://vulners.com/cve/CVE-2023-38408"
    gh = by_id["F0979183-AE88-53B4-86CF-3AF0523F3807"].vulnerability
    assert (
        gh.is_exploit is True
        and gh.url == "https://vulners.com/githubexploit/F0979183-AE88-53B4-86CF-3AF0523F3807"
    )
    edb = by_id["EDB-ID:40136"].vulnerability
    assert edb.is_exploit and edb.cvss is not None and edb.severity == Severity.NONE
    unscored = by_id["SECURITYVULNS:VULN:1"].vulnerability
    assert unscored.cvss is None and unscored.severity == Severity.UNKNOWN


def test_no_vulners_script_means_no_entries(nmap_samples: Path) -> None:
    for path in nmap_samples.glob("*_hosts*.xml"):
        for host in NmapXmlFile(path).hosts():
            for svc in host.services:
                assert svc.vulners == () and findings_from_vulners(svc) == []
