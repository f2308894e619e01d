"""Documents that need an outside tool to check: TeX compiled by pdflatex, the WeasyPrint PDF
read back with pdftotext, and every format rendered from the real Nmap XML samples."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from test_render import (
    FORMULA,
    TEX,
    XSS,
    ParsedHtml,
    empty_report,
    sample_report,
    validate,
)

from flanscan._model import Report
from flanscan._render import FORMATS, render
from flanscan._render._csv import FORMULA_PREFIXES


def pdftotext(pdf: bytes, tmp_path: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    path = tmp_path / "out.pdf"
    path.write_bytes(pdf)
    result = subprocess.run(
        ["pdftotext", "-layout", str(path), "-"], capture_output=True, check=True, timeout=120
    )
    return " ".join(result.stdout.decode("utf-8", "replace").split())


def compile_tex(tex: bytes, tmp_path: Path) -> bytes:
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        print("pdflatex is not installed: TeX compilation not checked")
        pytest.skip("pdflatex is not installed (texlive-latex-base)")
    (tmp_path / "report.tex").write_bytes(tex)
    result = subprocess.run(
        [
            pdflatex,
            "-no-shell-escape",
            "-halt-on-error",
            "-interaction=nonstopmode",
            "report.tex",
        ],
        cwd=tmp_path,
        capture_output=True,
        timeout=300,
    )
    log = result.stdout.decode("utf-8", "replace")
    assert result.returncode == 0, log[-3000:]
    return (tmp_path / "report.pdf").read_bytes()


def test_tex_compiles_with_hostile_text(tmp_path: Path) -> None:
    report = sample_report()
    pdf = compile_tex(render(report, "tex"), tmp_path)
    text = pdftotext(pdf, tmp_path)
    for piece in (
        "OpenSSH 9.2p1",
        "CVE-2023-38408",
        "9.8 (CVSS 3.1)",
        "KEV since 2021-11-03, ransomware: known",
        "Changes since 2026-11-01",
        "Appendix A",
        "1:9.2p1-2+deb12u2",
        "disputed by the vendor",
        XSS,
    ):
        assert piece in text, piece
    # The hostile \input was printed, not executed.
    assert "input{/etc/passwd}" in text
    assert "root:x:0:0" not in text
    assert text.index("Vulnerable services") < text.index("Services with no known")
    # Non-Latin text was transliterated rather than stopping pdflatex.
    assert "Unicode" in text or "Ünïcødé" in text or "Unicode" in text.replace("ö", "o")


def test_tex_and_pdf_list_product_only_matches_on_request(tmp_path: Path) -> None:
    from dataclasses import replace

    report = replace(sample_report(), list_product_only=True)
    cve = report.services[3].product_only[0].finding.id
    assert cve in pdftotext(compile_tex(render(report, "tex"), tmp_path), tmp_path)
    assert cve in pdftotext(render(report, "pdf"), tmp_path)
    assert cve not in pdftotext(render(sample_report(), "pdf"), tmp_path)


@pytest.mark.parametrize("report", [empty_report(), sample_report(with_db=False)])
def test_tex_compiles_for_edge_reports(report: Report, tmp_path: Path) -> None:
    text = pdftotext(compile_tex(render(report, "tex"), tmp_path), tmp_path)
    assert "No vulnerability database was available" in text


def test_pdf_from_html_has_the_report_text(tmp_path: Path) -> None:
    report = sample_report()
    pdf = render(report, "pdf")
    assert pdf.startswith(b"%PDF-")
    text = pdftotext(pdf, tmp_path)
    for piece in (
        "Changes since 2026-11-01",
        "OpenSSH 9.2p1",
        "Apache httpd 2.4.49",
        "CVE-2021-41773",
        "7.5 (CVSS 3.1)",
        "KEV since 2021-11-03",
        "EPSS 94.44% (pctl 99.9)",
        "CWE-22",
        "Path traversal and RCE",
        "unconfirmed: distribution build",
        "Appendix A",
        "CVE-2023-48795",
        "Appendix B",
        "CVE-2016-20012",
        "Redis key-value store 7.0.15",
        "nmap -sS -sV --top-ports 1000",
        "NVD CVE 2.0, data of 2026-11-21",
        XSS,
        FORMULA,
    ):
        assert piece in text, piece
    assert text.index("Vulnerable services") < text.index("Services with no known vulnerabilities")
    assert TEX.split()[0] in text


def test_pdf_lists_long_location_lists_in_part(tmp_path: Path) -> None:
    from dataclasses import replace

    from flanscan._model import HostSummary, Location
    from flanscan._render._html import PDF_MAX_HOSTS, PDF_MAX_LOCATIONS

    report = sample_report()
    n = PDF_MAX_LOCATIONS + 70
    locs = tuple(Location(f"198.18.1.{i}", 6379, "tcp") for i in range(n))
    services = (*report.services[:-2], replace(report.services[-2], locations=locs))
    hosts = tuple(HostSummary(f"198.18.{i // 256}.{i % 256}") for i in range(PDF_MAX_HOSTS + 5))
    text = pdftotext(render(replace(report, services=services, hosts=hosts), "pdf"), tmp_path)
    assert "and 70 more locations" in text
    assert "and 5 more hosts" in text
    assert f"198.18.1.{PDF_MAX_LOCATIONS - 1}:6379/tcp" in text
    assert f"198.18.1.{PDF_MAX_LOCATIONS}:6379/tcp" not in text


def real_samples(nmap_samples: Path) -> list[Path]:
    return sorted(p for p in nmap_samples.glob("*.xml") if not p.name.startswith("defused"))


def test_every_format_from_real_nmap_xml(nmap_samples: Path, tmp_path: Path) -> None:
    """Real Nmap output through the real parser and report builder, into every format."""
    from flanscan._pipeline import report_from_files

    samples = real_samples(nmap_samples)
    assert samples
    biggest: tuple[int, Report] | None = None
    for path in samples:
        report = report_from_files([path])
        outputs = {fmt: render(report, fmt) for fmt in FORMATS if fmt != "pdf"}
        doc = json.loads(outputs["json"])
        validate(doc)
        assert len(doc["services"]) == len(report.services)
        html = ParsedHtml(outputs["html"].decode())
        assert len(html.scripts) == 1
        html_text = html.all_text()
        md = outputs["md"].decode()
        rows = list(csv.reader(io.StringIO(outputs["csv"].decode(), newline="")))
        locations = sum(len(s.locations) for s in report.services)
        assert len(rows) - 1 == locations  # no findings without a database: one row each
        for row in rows[1:]:
            assert not any(cell.startswith(FORMULA_PREFIXES) for cell in row)
        for svc, row in zip(report.services, doc["services"], strict=True):
            assert row["product"] == svc.product
            if svc.product:
                assert svc.product in html_text, (path.name, svc.product)
                assert svc.product.split()[0] in md
        for host in report.hosts:
            assert host.address in html_text
        size = sum(len(s.locations) for s in report.services)
        if biggest is None or size > biggest[0]:
            biggest = (size, report)
    assert biggest is not None
    report = biggest[1]
    pdf_text = pdftotext(render(report, "pdf"), tmp_path)
    tex_text = pdftotext(compile_tex(render(report, "tex"), tmp_path), tmp_path)
    for svc in report.services[:20]:
        for loc in svc.locations[:3]:
            assert loc.address in pdf_text
            assert loc.address in tex_text
