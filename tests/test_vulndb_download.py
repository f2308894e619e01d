"""`flan db update` against a local HTTP server (127.0.0.1) serving NVD feeds, KEV and EPSS."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from flanscan._errors import VulnDbError
from flanscan._vulndb import VulnDb, import_paths, update_db
from flanscan._vulndb._build import db_lock
from flanscan._vulndb._paths import download_dir, new_db_path

EPSS_CSV = (
    "#model_version:v2025.03.14,score_date:2025-08-25T12:55:00Z\n"
    "cve,epss,percentile\n"
    "CVE-2021-41773,0.94432,0.99967\n"
    "CVE-2024-6387,0.37118,0.97026\n"
)
# Sources this test serves; others registered (distribution trackers) are left out so that
# nothing is fetched from the internet.
ONLY = ("nvd", "kev", "epss")
YEARS = [str(y) for y in range(2002, datetime.now(UTC).year + 1)]


@dataclass
class FeedServer:
    """Serves `files` by path; `cut` makes one response stop after N bytes (Content-Length
    promises the whole body), once. Supports `Range: bytes=N-`."""

    files: dict[str, bytes] = field(default_factory=dict)
    cut: dict[str, int] = field(default_factory=dict)
    log: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""

    def gets(self, name: str) -> list[str | None]:
        return [rng for path, rng in self.log if path.endswith("/" + name)]


def _handler(server: FeedServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between header and body

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            server.log.append((self.path, rng))
            body = server.files.get(self.path)
            if body is None:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start = 0
            if rng:
                start = int(rng.removeprefix("bytes=").split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            cut = server.cut.pop(self.path, None)
            if cut is not None:
                self.wfile.write(body[start:cut])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body[start:])

    return Handler


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    state = FeedServer()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def feed_bytes(records: list[dict[str, Any]], **header: Any) -> bytes:
    doc = {
        "resultsPerPage": len(records),
        "startIndex": 0,
        "totalResults": len(records),
        "format": "NVD_CVE",
        "version": "2.0",
        "timestamp": "2026-11-22T10:45:00.000",
        **header,
        "vulnerabilities": [{"cve": r} for r in records],
    }
    return json.dumps(doc).encode()


def meta_bytes(json_body: bytes, gz: bytes) -> bytes:
    """An NVD .meta: sha256 of the uncompressed JSON, upper-case hex as the NVD writes it."""
    return (
        "lastModifiedDate:2026-11-22T03:00:01-05:00\r\n"
        f"size:{len(json_body)}\r\nzipSize:{len(gz)}\r\ngzSize:{len(gz)}\r\n"
        f"sha256:{hashlib.sha256(json_body).hexdigest().upper()}\r\n"
    ).encode()


def put_feed(server: FeedServer, feed: str, json_body: bytes, gz: bytes | None = None) -> None:
    gz = gzip.compress(json_body) if gz is None else gz
    server.files[f"/feeds/nvdcve-2.0-{feed}.json.gz"] = gz
    server.files[f"/feeds/nvdcve-2.0-{feed}.meta"] = meta_bytes(json_body, gz)


def sample_records(nvd_sample: Path) -> list[dict[str, Any]]:
    data = json.loads((nvd_sample / "nvdcve-2.0-sample.json").read_text())
    return [item["cve"] for item in data["vulnerabilities"]]


@pytest.fixture
def served(feed_server: FeedServer, nvd_sample: Path) -> FeedServer:
    """The sample split into yearly feeds by CVE id year, an empty `modified`, KEV and EPSS."""
    records = sample_records(nvd_sample)
    for year in YEARS:
        put_feed(feed_server, year, feed_bytes([r for r in records if r["id"][4:8] == year]))
    put_feed(feed_server, "modified", feed_bytes([]))
    feed_server.files["/kev.json"] = (
        nvd_sample / "known_exploited_vulnerabilities.json"
    ).read_bytes()
    feed_server.files["/epss.csv.gz"] = gzip.compress(EPSS_CSV.encode())
    return feed_server


def run_update(server: FeedServer, db_path: Path) -> Any:
    urls = {
        "nvd": server.url + "/feeds/",
        "kev": server.url + "/kev.json",
        "epss": server.url + "/epss.csv.gz",
    }
    return update_db(db_path, urls=urls, only=ONLY, timeout=10)


@pytest.fixture
def previous_db(nvd_sample: Path, tmp_path: Path) -> Path:
    """A working database (the sample without the KEV) that failed updates must leave alone."""
    db_path = tmp_path / "db" / "vulndb.sqlite3"
    import_paths(db_path, [nvd_sample / "nvdcve-2.0-sample.json.gz"])
    return db_path


def assert_unchanged(db_path: Path, before: bytes) -> None:
    assert db_path.read_bytes() == before
    assert not new_db_path(db_path).exists()
    with VulnDb.open(db_path) as vdb:
        assert vdb.status().cve_count == 125
        assert vdb.candidates("openbsd", "openssh")


def test_full_download(served: FeedServer, nvd_sample: Path, tmp_path: Path) -> None:
    db_path = tmp_path / "vulndb.sqlite3"
    result = run_update(served, db_path)
    assert result.changed
    kept = [r for r in sample_records(nvd_sample) if r["vulnStatus"] != "Rejected"]
    with VulnDb.open(db_path) as vdb:
        status = vdb.status()
        assert status.cve_count == len(kept)
        assert status.kev_count == 1404
        assert status.epss_count == 2
        assert vdb.vulnerabilities(["CVE-2024-6387"])["CVE-2024-6387"].epss == 0.37118
    for year in YEARS:
        assert served.gets(f"nvdcve-2.0-{year}.json.gz") == [None]
    assert not list(download_dir(db_path).glob("*")), "downloads are removed after the swap"


def test_unchanged_feeds_are_skipped(served: FeedServer, tmp_path: Path) -> None:
    db_path = tmp_path / "vulndb.sqlite3"
    run_update(served, db_path)
    before = db_path.read_bytes()
    served.log.clear()
    result = run_update(served, db_path)
    assert not result.changed
    assert db_path.read_bytes() == before
    # Yearly feeds are in and recent: only the `modified` feed's .meta is read, no feed body.
    assert not [p for p, _ in served.log if p.endswith(".json.gz")]
    assert [p for p, _ in served.log if p.endswith(".meta")] == ["/feeds/nvdcve-2.0-modified.meta"]


def test_modified_feed_updates_and_rejects(
    served: FeedServer, nvd_sample: Path, tmp_path: Path
) -> None:
    db_path = tmp_path / "vulndb.sqlite3"
    run_update(served, db_path)
    by_id = {r["id"]: r for r in sample_records(nvd_sample)}
    changed = dict(by_id["CVE-2024-6387"], lastModified="2099-01-01T00:00:00.000")
    changed["descriptions"] = [{"lang": "en", "value": "updated by the modified feed"}]
    rejected = dict(
        by_id["CVE-2021-41773"], vulnStatus="Rejected", lastModified="2099-01-01T00:00:00.000"
    )
    put_feed(served, "modified", feed_bytes([changed, rejected]))
    served.log.clear()
    assert run_update(served, db_path).changed
    assert served.gets("nvdcve-2.0-modified.json.gz") == [None]
    assert not served.gets("nvdcve-2.0-2024.json.gz")
    with VulnDb.open(db_path) as vdb:
        vulns = vdb.vulnerabilities(["CVE-2024-6387", "CVE-2021-41773"])
        assert vulns["CVE-2024-6387"].summary == "updated by the modified feed"
        assert "CVE-2021-41773" not in vulns
        assert "CVE-2021-41773" not in {c.cve_id for c in vdb.candidates("apache", "http_server")}


def test_resume_after_cut_connection(served: FeedServer, previous_db: Path) -> None:
    name = "nvdcve-2.0-2023.json.gz"
    body = served.files[f"/feeds/{name}"]
    half = len(body) // 2
    served.cut[f"/feeds/{name}"] = half
    before = previous_db.read_bytes()
    with pytest.raises(VulnDbError) as err:
        run_update(served, previous_db)
    assert name in str(err.value) and "resume" in str(err.value)
    assert_unchanged(previous_db, before)
    part = download_dir(previous_db) / (name + ".part")
    assert part.stat().st_size == half
    served.log.clear()
    assert run_update(served, previous_db).changed
    assert served.gets(name) == [f"bytes={half}-"]  # resumed, not restarted
    with VulnDb.open(previous_db) as vdb:
        assert vdb.status().kev_count == 1404


def test_sha256_mismatch(served: FeedServer, previous_db: Path) -> None:
    name = "nvdcve-2.0-2021.json.gz"
    good = served.files[f"/feeds/{name}"]
    served.files[f"/feeds/{name}"] = gzip.compress(
        gzip.decompress(good).replace(b"Apache", b"Apachf")
    )
    before = previous_db.read_bytes()
    with pytest.raises(VulnDbError, match="sha256") as err:
        run_update(served, previous_db)
    assert name in str(err.value)
    assert_unchanged(previous_db, before)
    assert not (download_dir(previous_db) / name).exists()


def test_corrupt_gzip(served: FeedServer, previous_db: Path) -> None:
    # A damaged .gz whose .meta carries the file's own hash: the check passes, gzip fails.
    name = "nvdcve-2.0-2022.json.gz"
    gz = served.files[f"/feeds/{name}"]
    broken = gz[:20] + bytes(b ^ 0x5A for b in gz[20:200]) + gz[200:]
    served.files[f"/feeds/{name}"] = broken
    served.files["/feeds/nvdcve-2.0-2022.meta"] = (
        f"lastModifiedDate:2026-11-22T03:00:01-05:00\r\nsha256:{hashlib.sha256(broken).hexdigest()}\r\n"
    ).encode()
    before = previous_db.read_bytes()
    with pytest.raises(VulnDbError, match=r"gzip|JSON") as err:
        run_update(served, previous_db)
    assert name in str(err.value)
    assert_unchanged(previous_db, before)


def test_truncated_json(served: FeedServer, nvd_sample: Path, previous_db: Path) -> None:
    records = [r for r in sample_records(nvd_sample) if r["id"].startswith("CVE-2024-")]
    body = feed_bytes(records)
    put_feed(served, "2024", body[: len(body) * 2 // 3])
    before = previous_db.read_bytes()
    with pytest.raises(VulnDbError, match="truncated or invalid JSON") as err:
        run_update(served, previous_db)
    assert "nvdcve-2.0-2024.json.gz" in str(err.value)
    assert_unchanged(previous_db, before)


def test_wrong_schema_version(served: FeedServer, previous_db: Path) -> None:
    put_feed(served, "2019", feed_bytes([], version="1.1"))
    before = previous_db.read_bytes()
    with pytest.raises(VulnDbError, match=r"version 1\.1") as err:
        run_update(served, previous_db)
    assert "nvdcve-2.0-2019.json.gz" in str(err.value)
    assert_unchanged(previous_db, before)


def test_missing_feed_is_named(served: FeedServer, previous_db: Path) -> None:
    del served.files["/feeds/nvdcve-2.0-2010.meta"]
    before = previous_db.read_bytes()
    with pytest.raises(VulnDbError, match=r"nvdcve-2\.0-2010\.meta: HTTP 404"):
        run_update(served, previous_db)
    assert_unchanged(previous_db, before)


def test_server_down_keeps_db(previous_db: Path) -> None:
    before = previous_db.read_bytes()
    urls = {
        "nvd": "http://127.0.0.1:9/feeds/",
        "kev": "http://127.0.0.1:9/k",
        "epss": "http://127.0.0.1:9/e",
    }
    with pytest.raises(VulnDbError, match=r"127\.0\.0\.1:9"):
        update_db(previous_db, urls=urls, only=ONLY, timeout=5)
    assert_unchanged(previous_db, before)


def test_concurrent_update_is_refused(previous_db: Path, nvd_sample: Path) -> None:
    with db_lock(previous_db):
        with pytest.raises(VulnDbError, match="another `flan db update`"):
            import_paths(previous_db, [nvd_sample / "known_exploited_vulnerabilities.json"])


def test_resumed_file_that_changed_is_fetched_again(served: FeedServer, previous_db: Path) -> None:
    """A .part left by a cut, then the feed changes on the server: no splice of two versions."""
    name = "nvdcve-2.0-2023.json.gz"
    served.cut[f"/feeds/{name}"] = len(served.files[f"/feeds/{name}"]) // 2
    with pytest.raises(VulnDbError):
        run_update(served, previous_db)
    body = gzip.decompress(served.files[f"/feeds/{name}"])
    put_feed(served, "2023", body.replace(b"OpenSSH", b"OpenSSH "), gz=None)
    served.log.clear()
    assert run_update(served, previous_db).changed
    ranges = served.gets(name)
    assert len(ranges) == 2 and ranges[0] is not None and ranges[1] is None
