"""Results of Nmap's `vulners` NSE script (`flan scan --vulners`), read into the report model.

The script's structured XML output (see `@xmloutput` in nmap's scripts/vulners.nse) is one
table per CPE it looked up (or "product version" when it fell back to a name search), each
holding one table per bulletin:

    <script id="vulners" output="...">
      <table key="cpe:/a:openbsd:openssh:7.4p1">
        <table>
          <elem key="is_exploit">false</elem> <elem key="cvss">7.8</elem>
          <elem key="id">CVE-2023-38408</elem> <elem key="type">cve</elem>
          <elem key="cvss_type">cvss3.1</elem>   (newer script versions only)
        </table>
      </table>
    </script>

Bulletins are not only CVEs (types "exploitdb", "githubexploit", "packetstorm", ...). The score
is whatever vulners.com holds; its CVSS version is known only when `cvss_type` is present,
otherwise it is recorded as "unknown".
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from flanscan._model import (
    SOURCE_CONFIDENCE,
    Confidence,
    CvssScore,
    Finding,
    MatchEvidence,
    MatchSource,
    ServiceObservation,
    Vulnerability,
    VulnersEntry,
)

UNKNOWN_CVSS_VERSION = "unknown"


def _cvss_version(cvss_type: str | None) -> str | None:
    """ "cvss3.1" -> "3.1", "cvss2" -> "2.0"; None when the script did not say."""
    if not cvss_type:
        return None
    text = cvss_type.strip().lower().removeprefix("cvss").removeprefix("v")
    if not text:
        return None
    return text if "." in text else f"{text}.0"


def _float(text: str | None) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    # vulners scores are CVSS base scores; anything outside 0..10 is not one.
    return value if 0.0 <= value <= 10.0 else None


def read_vulners(script: ET.Element) -> list[VulnersEntry]:
    """The bulletins of one `<script id="vulners">` element, in the script's order."""
    entries: list[VulnersEntry] = []
    for group in script.findall("table"):
        key = group.get("key")
        for row in group.findall("table"):
            elems = {e.get("key"): (e.text or "").strip() for e in row.findall("elem")}
            vuln_id = elems.get("id")
            if not vuln_id:
                continue
            entries.append(
                VulnersEntry(
                    id=vuln_id,
                    cvss=_float(elems.get("cvss")),
                    type=elems.get("type") or "unknown",
                    is_exploit=elems.get("is_exploit", "").lower() == "true",
                    key=key,
                    cvss_version=_cvss_version(elems.get("cvss_type")),
                )
            )
    return entries


def vulners_url(entry: VulnersEntry) -> str:
    """The bulletin's page, as the script itself prints it."""
    return f"https://vulners.com/{entry.type}/{entry.id}"


def findings_from_vulners(service: ServiceObservation) -> list[Finding]:
    """One `Finding` per distinct bulletin the script reported for this service.

    A bulletin listed under several CPE tables is kept once, with its highest score. The match
    was made by vulners.com from the detected version, so the confidence is `exact`; the
    evidence names the table (CPE) it came from.
    """
    best: dict[str, VulnersEntry] = {}
    for entry in service.vulners:
        seen = best.get(entry.id)
        if seen is None or (entry.cvss or -1.0) > (seen.cvss or -1.0):
            best[entry.id] = entry
    findings = []
    for entry in best.values():
        cvss = (
            CvssScore(
                score=entry.cvss,
                version=entry.cvss_version or UNKNOWN_CVSS_VERSION,
                source="vulners.com",
            )
            if entry.cvss is not None
            else None
        )
        key = entry.key or ""
        evidence = MatchEvidence(
            criteria=f"vulners.com: {key}" if key else "vulners.com",
            version_range="reported by the vulners NSE script",
            detected_version=service.version,
            detected_cpe=key if key.startswith("cpe:") else None,
            banner=service.banner,
        )
        findings.append(
            Finding(
                vulnerability=Vulnerability(
                    id=entry.id,
                    cvss=cvss,
                    url=vulners_url(entry),
                    source="vulners",
                    is_exploit=entry.is_exploit,
                ),
                confidence=Confidence.EXACT,
                evidence=(evidence,),
                match_source=MatchSource.VULNERS,
                source_confidence=SOURCE_CONFIDENCE[MatchSource.VULNERS],
            )
        )
    return findings
