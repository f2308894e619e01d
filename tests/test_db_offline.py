"""The offline path: `flan db update --download-only DIR` on a connected machine, then
`flan db import DIR` on an air-gapped one, through the real CLI against the loopback feed
server of the download tests (NVD feeds split from the sample, KEV, EPSS)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_vulndb_download import ONLY, FeedServer, feed_server, served  # noqa: F401 (fixtures)

from flanscan._vulndb import VulnDb
from flanscan._vulndb.sources import epss, kev

FLAN = [sys.executable, "-m", "flanscan"]


def _flan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLAN, *args], capture_output=True, text=True, timeout=300)


def test_download_only_then_import_elsewhere(served: FeedServer, tmp_path: Path) -> None:  # noqa: F811
    urls = ["--nvd-url", served.url + "/feeds/", "--kev-url", served.url + "/kev.json",
            "--epss-url", served.url + "/epss.csv.gz"]  # fmt: skip
    only = [w for name in ONLY for w in ("--only", name)]
    copy = tmp_path / "to-copy"
    untouched = tmp_path / "never.sqlite3"
    r = _flan("db", "update", "--download-only", str(copy), "--db", str(untouched), *urls, *only)
    assert r.returncode == 0, r.stderr
    listed = [Path(line) for line in r.stdout.splitlines()]
    assert listed and all(p.parent == copy and p.is_file() for p in listed)
    names = {p.name for p in listed}
    assert {kev.FILE_NAME, epss.FILE_NAME, "nvdcve-2.0-modified.json.gz"} <= names
    assert f"run `flan db import {copy}` there" in r.stderr
    assert not untouched.exists() and not list(copy.glob("*.part"))

    # The air-gapped side: the directory alone, no network.
    offline = tmp_path / "offline.sqlite3"
    r = _flan("db", "import", "--db", str(offline), str(copy))
    assert r.returncode == 0, r.stderr
    online = tmp_path / "online.sqlite3"
    r = _flan("db", "update", "--db", str(online), *urls, *only)
    assert r.returncode == 0, r.stderr
    with VulnDb.open(offline) as a, VulnDb.open(online) as b:
        got, want = a.status(), b.status()
    assert (got.cve_count, got.kev_count, got.epss_count) == (
        want.cve_count, want.kev_count, want.epss_count,
    )  # fmt: skip
    assert got.cve_count > 0 and got.kev_count > 0 and got.epss_count == 2


def test_download_only_into_a_file_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    r = _flan("db", "update", "--download-only", str(target / "sub"), "--only", "kev",
              "--kev-url", "http://127.0.0.1:9/kev.json")  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip() == (
        f"flan: error: {target / 'sub'}: cannot write the download directory: {target} is not "
        "a directory"
    )


def test_distribution_builds_without_tracker_data_warn(tmp_path: Path) -> None:
    shared = Path(__file__).resolve().parent.parent.parent / "shared"
    db = tmp_path / "nvd-only.sqlite3"
    r = _flan(
        "db", "import", "--db", str(db), str(shared / "nvd-sample" / "nvdcve-2.0-sample.json")
    )
    assert r.returncode == 0, r.stderr
    samples = shared / "nmap-xml-samples"
    # fullscan.xml: OpenSSH 5.9p1 Debian 5ubuntu1 (Ubuntu precise); 1_hosts_banner.xml: none.
    for name, warned in (("fullscan.xml", True), ("1_hosts_banner.xml", False)):
        out = tmp_path / f"{name}.json"
        r = _flan("report", str(samples / name), "--db", str(db), "--max-db-age", "3650",
                  "-f", "json", "-o", str(out))  # fmt: skip
        assert r.returncode == 0, r.stderr
        lines = [line for line in r.stderr.splitlines() if "no tracker data" in line]
        assert len(lines) == int(warned), r.stderr
        if warned:
            assert lines[0].startswith("warning: distribution builds (ubuntu precise) were found")
            assert "`flan db import` the Debian and Ubuntu files" in lines[0]
            report = json.loads(out.read_text())
            assert any("no tracker data" in n for n in report["notes"])
            notes = [
                v["distribution"]["note"]
                for s in report["services"]
                for v in s["vulnerabilities"]
                if v.get("distribution") and v["distribution"].get("note")
            ]
            assert any("offline, `flan db import` its files" in n for n in notes), notes
