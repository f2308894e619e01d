"""`flan db import/status/update` through the command line (click's CliRunner)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from flanscan._cli import cli


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def sample_ids(nvd_sample: Path) -> list[dict[str, object]]:
    data = json.loads((nvd_sample / "nvdcve-2.0-sample.json").read_text())
    return [v["cve"] for v in data["vulnerabilities"]]


def test_import_then_status(nvd_sample: Path, tmp_path: Path) -> None:
    db = tmp_path / "v.sqlite3"
    code, out, err = run("db", "import", "--db", str(db), str(nvd_sample))
    assert code == 0, err
    kept = [r for r in sample_ids(nvd_sample) if r["vulnStatus"] != "Rejected"]
    assert f"{len(kept)} CVEs" in out
    assert "skipped 1 file" in err  # the sample's README.md
    code, out, err = run("db", "status", "--db", str(db), "--json")
    assert code == 0
    status = json.loads(out)
    assert status["cve_count"] == len(kept)
    assert status["without_configurations"] == sum(1 for r in kept if not r.get("configurations"))
    assert [s["name"] for s in status["sources"]] == ["nvd", "kev"]
    kev = json.loads((nvd_sample / "known_exploited_vulnerabilities.json").read_text())
    assert status["kev_count"] == kev["count"]
    stamp = json.loads((nvd_sample / "nvdcve-2.0-sample.json").read_text())["timestamp"]
    age = datetime.now(UTC) - datetime.fromisoformat(stamp).replace(tzinfo=UTC)
    assert status["stale"] is (age.days >= 7)
    code, out, _err = run("db", "status", "--db", str(db))
    assert code == 0
    assert str(db) in out and f"CVEs:      {len(kept)}" in out and "2025.08.25" in out


def test_env_variable_selects_db(nvd_sample: Path, tmp_path: Path) -> None:
    db = tmp_path / "env.sqlite3"
    code, _, err = run(
        "db", "import", str(nvd_sample / "known_exploited_vulnerabilities.json"),
        env={"FLAN_DB": str(db)},
    )  # fmt: skip
    assert code == 0, err
    assert db.is_file()
    code, out, _ = run("db", "status", "--json", env={"FLAN_DB": str(db)})
    assert json.loads(out)["path"] == str(db)


def test_stale_warning(nvd_sample: Path, tmp_path: Path) -> None:
    # A single record, no feed timestamp: the data is as old as its lastModified.
    rec = next(r for r in sample_ids(nvd_sample) if r["id"] == "CVE-2007-5962")
    (tmp_path / "CVE-2007-5962.json").write_text(json.dumps(rec))
    db = tmp_path / "v.sqlite3"
    assert run("db", "import", "--db", str(db), str(tmp_path / "CVE-2007-5962.json"))[0] == 0
    code, _out, err = run("db", "status", "--db", str(db))
    assert code == 0
    assert "older than 7 days" in err and "flan db update" in err


def test_status_without_db(tmp_path: Path) -> None:
    missing = tmp_path / "none.sqlite3"
    code, _out, err = run("db", "status", "--db", str(missing))
    assert code == 2
    assert str(missing) in err and "flan db update" in err and "flan db import" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("content", [b"\x1f\x8b\x08\x00broken", b'{"format": "NVD_CVE", "vul'])
def test_import_error_is_one_line(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "nvdcve-2.0-2024.json.gz"
    bad.write_bytes(content)
    code, _out, err = run("db", "import", "--db", str(tmp_path / "v.sqlite3"), str(bad))
    assert code == 2
    assert err.startswith("flan: error: ") and str(bad) in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "v.sqlite3").exists()


def test_every_command_is_documented() -> None:
    doc = (
        Path(__file__).resolve().parent.parent / "docs" / "vulnerability-database.md"
    ).read_text()
    for command in ("update", "import", "status"):
        code, out, _ = run("db", command, "--help")
        assert code == 0 and "--db" in out
        assert f"flan db {command}" in doc


def test_update_from_local_server(nvd_sample: Path, tmp_path: Path) -> None:
    """`flan db update` end to end against a loopback server; the second run changes nothing."""
    import gzip
    import http.server
    import threading

    from test_vulndb_download import (
        EPSS_CSV,
        YEARS,
        FeedServer,
        _handler,
        feed_bytes,
        put_feed,
    )

    server = FeedServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        records = [v for v in sample_ids(nvd_sample)]
        for year in YEARS:
            put_feed(server, year, feed_bytes([r for r in records if str(r["id"])[4:8] == year]))
        put_feed(server, "modified", feed_bytes([]))
        server.files["/kev.json"] = (
            nvd_sample / "known_exploited_vulnerabilities.json"
        ).read_bytes()
        server.files["/epss.csv.gz"] = gzip.compress(EPSS_CSV.encode())
        db = tmp_path / "v.sqlite3"
        args = [
            "db", "update", "--db", str(db), "--only", "nvd", "--only", "kev", "--only", "epss",
            "--nvd-url", base + "/feeds/", "--kev-url", base + "/kev.json",
            "--epss-url", base + "/epss.csv.gz",
        ]  # fmt: skip
        code, out, err = run(*args)
        assert code == 0, err
        assert "updated" in out and "125 CVEs" in out
        code, out, err = run(*args)
        assert code == 0, err
        assert "already up to date" in out
    finally:
        httpd.shutdown()
        httpd.server_close()
