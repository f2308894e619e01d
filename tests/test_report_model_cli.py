"""`flan report`: rebuild reports from saved XML (real samples), without scanning."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from _banner import BannerServer
from click.testing import CliRunner

from flanscan._cli import cli
from flanscan._parse import NmapXmlFile


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    # Never touch the user's real database: point the default at a file that does not exist.
    monkeypatch.setenv("FLAN_DB", str(tmp_path / "no-such-db.sqlite3"))
    return CliRunner()


def test_report_in_two_formats_prints_the_first_last(
    runner: CliRunner, nmap_samples: Path, tmp_path: Path
) -> None:
    pytest.importorskip("flanscan._render._md")
    out = tmp_path / "out"
    xml = str(nmap_samples / "fullscan.xml")
    result = runner.invoke(cli, ["report", xml, "-f", "json", "-f", "md", "-o", str(out)])
    assert result.exit_code == 0, result.output
    # The summary of what to fix comes first; the paths end the output, "the report" last.
    lines = result.stdout.strip().splitlines()
    assert lines[-2:] == [str(out / "report.md"), str(out / "report.json")]
    assert lines[-3].startswith("Total: 0 of ")
    assert (out / "report.md").stat().st_size > 0


def test_report_from_two_files(runner: CliRunner, nmap_samples: Path, tmp_path: Path) -> None:
    files = [nmap_samples / "fullscan.xml", nmap_samples / "2_hosts_version.xml"]
    out = tmp_path / "out"
    result = runner.invoke(cli, ["report", *map(str, files), "-f", "json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(out / "report.json")
    assert "no vulnerability database" in result.stderr
    data = json.loads((out / "report.json").read_text())
    # Every open port of every host up in the two files is a location of some service.
    expected = {
        (h.address, s.port, s.protocol)
        for f in files
        for h in NmapXmlFile(f).hosts()
        if h.status == "up"
        for s in h.services
    }
    got = {
        (loc["address"], loc["port"], loc["protocol"])
        for svc in data["services"]
        for loc in svc["locations"]
    }
    assert got == expected
    texts = [f.read_text() for f in files]
    commands = [re.search(r'<nmaprun [^>]*args="([^"]*)"', t).group(1) for t in texts]  # type: ignore[union-attr]
    assert data["scan"]["nmap_commands"] == commands
    products = {svc["product"] for svc in data["services"]} - {None}
    assert products == {p for t in texts for p in re.findall(r'<service [^>]*product="([^"]*)"', t)}


def test_report_from_a_run_directory_defaults_to_it(
    runner: CliRunner, nmap_samples: Path, tmp_path: Path
) -> None:
    run = tmp_path / "run"
    (run / "xml").mkdir(parents=True)
    text = (nmap_samples / "full_sudo6.xml").read_text()
    (run / "xml" / "worker-0.xml").write_text(text)
    (run / "xml" / "worker-1.xml").write_text(text[: len(text) // 3])  # interrupted worker
    result = runner.invoke(cli, ["report", str(run), "-f", "json", "--no-db"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(run / "report.json")
    assert "worker-1.xml" in result.stderr and "cut short" in result.stderr
    data = json.loads((run / "report.json").read_text())
    assert any("worker-1.xml" in w for w in data["scan"]["warnings"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{samples}/defused_et_local_includer.xml"], "DTD"),
        (["{samples}/defused_et_included.xml"], "not Nmap XML"),
        (["{tmp}/missing.xml"], "missing.xml"),
        (["{samples}/fullscan.xml", "-f", "docx"], "docx"),
        (["{samples}/fullscan.xml", "--no-db", "--db", "{tmp}/x.db"], "--no-db"),
        (["{samples}/fullscan.xml", "--db", "{tmp}/x.db"], "x.db"),
    ],
)
def test_report_errors_are_one_line_with_exit_2(
    runner: CliRunner, nmap_samples: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    argv = [a.format(samples=nmap_samples, tmp=tmp_path) for a in args]
    result = runner.invoke(cli, ["report", *argv, "-o", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_report_command_is_listed() -> None:
    result = CliRunner().invoke(cli, ["report", "--help"])
    assert result.exit_code == 0
    for option in (
        "--format",
        "--output",
        "--db",
        "--no-db",
        "--suppressions",
        "--show-product-only",
    ):
        assert option in result.output


def test_report_with_the_sample_database_lists_findings_of_every_location(
    runner: CliRunner, nmap_samples: Path, nvd_sample: Path, tmp_path: Path
) -> None:
    db = tmp_path / "vulndb.sqlite3"
    imported = runner.invoke(
        cli,
        [
            "db",
            "import",
            "--db",
            str(db),
            str(nvd_sample / "nvdcve-2.0-sample.json.gz"),
            str(nvd_sample / "known_exploited_vulnerabilities.json"),
        ],
    )
    assert imported.exit_code == 0, imported.output
    out = tmp_path / "report.json"
    xml = nmap_samples / "fullscan.xml"
    result = runner.invoke(cli, ["report", str(xml), "--db", str(db), "-f", "json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(out)
    data = json.loads(out.read_text())
    sample_ids = set(
        re.findall(
            r'"id"\s*:\s*"(CVE-\d+-\d+)"', (nvd_sample / "nvdcve-2.0-sample.json").read_text()
        )
    )
    kev_ids = set(
        re.findall(
            r'"cveID"\s*:\s*"(CVE-\d+-\d+)"',
            (nvd_sample / "known_exploited_vulnerabilities.json").read_text(),
        )
    )
    vulnerable = [s for s in data["services"] if s["vulnerabilities"]]
    assert vulnerable, "the sample database matches nothing in fullscan.xml"
    # Vulnerable services come first; their findings come from the sample, KEV first, then CVSS.
    assert data["services"][: len(vulnerable)] == vulnerable
    open_statuses = ("confirmed", "unconfirmed-distribution-build")
    for svc in vulnerable:
        vulns = svc["vulnerabilities"]
        assert {v["id"] for v in vulns} <= sample_ids
        is_open = [v["status"] in open_statuses for v in vulns]
        assert is_open == sorted(is_open, reverse=True)  # open findings before the others
        opened = [v for v in vulns if v["status"] in open_statuses]
        # Network-reachable first; client-side and local ones after (flanscan._exposure).
        reach = ["network", "client-side", "local"]
        ranks = [reach.index(v["exposure"]) for v in opened]
        assert ranks == sorted(ranks)
        for exposure in reach:
            same = [v for v in opened if v["exposure"] == exposure]
            in_kev = [v["id"] in kev_ids for v in same]
            assert in_kev == sorted(in_kev, reverse=True)
            for group in (True, False):
                scores = [v["cvss"] or -1 for v in same if (v["id"] in kev_ids) is group]
                assert scores == sorted(scores, reverse=True)
    assert {s["product"] for s in vulnerable} <= set(
        re.findall(r'product="([^"]*)"', xml.read_text())
    )
    assert data["vulnerability_database"]["path"] == str(db)


def test_report_rebuilt_from_a_scan_run_equals_the_scan_report(
    runner: CliRunner, tmp_path: Path
) -> None:
    """`flan scan` of a loopback banner server, then `flan report` of its run directory."""
    import shutil

    if shutil.which("nmap") is None:
        pytest.skip("nmap is not installed")
    run = tmp_path / "run"
    with BannerServer() as server:
        port = server.port
        scanned = runner.invoke(
            cli,
            ["scan", "127.0.0.1", "--output-dir", str(run), "--no-db", "--format", "json",
             "--", "-p", str(port)],
        )  # fmt: skip
    assert scanned.exit_code == 0, scanned.output
    original = json.loads((run / "report.json").read_text())
    rebuilt_path = tmp_path / "rebuilt.json"
    result = runner.invoke(
        cli, ["report", str(run), "--no-db", "-f", "json", "-o", str(rebuilt_path)]
    )
    assert result.exit_code == 0, result.output
    rebuilt = json.loads(rebuilt_path.read_text())
    run_json = json.loads((run / "run.json").read_text())
    assert rebuilt["services"] == original["services"]
    (svc,) = rebuilt["services"]
    assert (svc["product"], svc["locations"][0]["port"]) == ("OpenSSH", port)
    # The header comes from run.json: targets as given, the profile, the Nmap commands.
    assert rebuilt["scan"]["targets"] == run_json["targets"] == ["127.0.0.1"]
    assert rebuilt["scan"]["profile"] == run_json["profile_description"]
    assert rebuilt["scan"]["nmap_commands"] == run_json["nmap_commands"]
    assert rebuilt["scan"]["run_id"] == run_json["run_id"]


LAB = Path(__file__).parent / "data" / "lab"


@pytest.mark.skipif(not (LAB / "manifest.json").is_file(), reason="no captured lab XML")
def test_lab_report_lists_findings_at_every_location(
    runner: CliRunner, nvd_sample: Path, tmp_path: Path
) -> None:
    db = tmp_path / "vulndb.sqlite3"
    imported = runner.invoke(
        cli, ["db", "import", "--db", str(db), str(nvd_sample / "nvdcve-2.0-sample.json.gz")]
    )
    assert imported.exit_code == 0, imported.output
    out = tmp_path / "lab.json"
    files = [str(LAB / "default.xml"), str(LAB / "all-ports.xml")]
    result = runner.invoke(cli, ["report", *files, "--db", str(db), "-f", "json", "-o", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    manifest = json.loads((LAB / "manifest.json").read_text())
    # The product+version the manifest has on two hosts is one service; each of its findings
    # lists both hosts (the original kept only the first host's vulnerabilities).
    where: dict[tuple[str, str], set[str]] = {}
    for host in manifest["hosts"]:
        for s in host["services"]:
            if s["nmap_version"]:
                where.setdefault((s["nmap_product"], s["nmap_version"]), set()).add(host["ipv4"])
    shared = [(k, v) for k, v in where.items() if len(v) > 1]
    assert shared
    for (product, version), addresses in shared:
        (svc,) = [s for s in data["services"] if (s["product"], s["version"]) == (product, version)]
        assert {loc["address"] for loc in svc["locations"]} == addresses
        assert svc["vulnerabilities"], f"the sample has no CVE for {product} {version}"
        for vuln in svc["vulnerabilities"]:
            assert {loc["address"] for loc in vuln["locations"]} == addresses
    # The version Nmap could not pin (PostgreSQL "9.6.0 or later") gives product-only matches,
    # kept apart from the main list.
    unpinned = [
        (h["ipv4"], s["nmap_product"]) for h in manifest["hosts"] for s in h["services"]
        if s["nmap_version"] is None
    ]  # fmt: skip
    for address, product in unpinned:
        (svc,) = [s for s in data["services"] if s["product"] == product]
        assert svc["vulnerabilities"] == [] and svc["product_only"]
        assert svc["locations"][0]["address"] == address
