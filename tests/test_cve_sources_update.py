"""`flan db update` of the CVE 5, override and Debian-list sources from a loopback HTTP server
serving archives shaped like the real upstream ones (GitHub repository archives, the tracker's
raw `data/CVE/list`): downloaded, imported, skipped when unchanged, resumed after a cut, and a
damaged archive leaves the previous database in use."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest
from test_cve_sources import CVELIST, OVERRIDES, VULNRICHMENT, debian_list
from test_vulndb_download import FeedServer, feed_server  # noqa: F401 (fixture)

from flanscan._errors import VulnDbError
from flanscan._match import Matcher
from flanscan._model import MatchSource, ServiceObservation
from flanscan._vulndb import BuildResult, VulnDb, update_db
from flanscan._vulndb._paths import download_dir

ONLY = ("cve5", "overrides", "debian-list")


def _zip(src: Path, prefix: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(src.rglob("*.json")):
            archive.write(path, f"{prefix}{path.relative_to(src)}")
    return out.getvalue()


def _tar(src: Path, prefix: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as archive:
        archive.add(src, prefix)
    return out.getvalue()


@pytest.fixture
def served(
    feed_server: FeedServer,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> FeedServer:
    feed_server.files["/cvelistV5/main.zip"] = _zip(CVELIST, "cvelistV5-main/")
    feed_server.files["/vulnrichment/develop.zip"] = _zip(VULNRICHMENT, "vulnrichment-develop/")
    feed_server.files["/overrides/main.tar.gz"] = _tar(OVERRIDES, "nvd-data-overrides-main")
    feed_server.files["/tracker/list"] = debian_list(tmp_path / "list").read_bytes()
    monkeypatch.setenv("FLAN_VULNRICHMENT_URL", feed_server.url + "/vulnrichment/develop.zip")
    return feed_server


def run_update(server: FeedServer, db_path: Path) -> BuildResult:
    urls = {
        "cve5": server.url + "/cvelistV5/main.zip",
        "overrides": server.url + "/overrides/main.tar.gz",
        "debian-list": server.url + "/tracker/list",
    }
    return update_db(db_path, urls=urls, only=ONLY, timeout=10)


def _nginx_sources(db_path: Path) -> dict[str, MatchSource]:
    svc = ServiceObservation(
        "127.0.0.1", 80, "tcp", product="nginx", version="1.22.1",
        cpes=("cpe:/a:igor_sysoev:nginx:1.22.1",),
    )  # fmt: skip
    with VulnDb.open(db_path) as db:
        return {f.id: f.match_source for f in Matcher(db).match(svc)}


def test_update_downloads_and_imports_every_archive(served: FeedServer, tmp_path: Path) -> None:
    db_path = tmp_path / "vulndb.sqlite3"
    run = run_update(served, db_path)
    assert run.changed is True
    assert _nginx_sources(db_path)["CVE-2024-7347"] is MatchSource.OVERRIDE
    with VulnDb.open(db_path) as db:
        names = {s.name: s for s in db.status().sources}
        assert names["cve5"].figures.records == 23
        assert names["overrides"].figures.records == 20
        assert names["debian-list"].figures.records == 9
    # Nothing changed upstream: nothing is imported again, the database is the same file.
    before = db_path.read_bytes()
    served.log.clear()
    assert run_update(served, db_path).changed is False
    assert db_path.read_bytes() == before
    assert not download_dir(db_path).exists() or not any(download_dir(db_path).iterdir())


def test_a_cut_download_resumes(served: FeedServer, tmp_path: Path) -> None:
    db_path = tmp_path / "vulndb.sqlite3"
    body = served.files["/cvelistV5/main.zip"]
    half = len(body) // 2
    served.cut["/cvelistV5/main.zip"] = half
    with pytest.raises(VulnDbError, match=r"cvelistV5\.zip"):
        run_update(served, db_path)
    assert not db_path.exists()
    served.log.clear()
    assert run_update(served, db_path).changed is True
    assert served.gets("main.zip") == [f"bytes={half}-"]  # resumed, not restarted
    assert _nginx_sources(db_path)["CVE-2025-23419"] is MatchSource.OVERRIDE


def test_a_damaged_archive_keeps_the_previous_database(served: FeedServer, tmp_path: Path) -> None:
    db_path = tmp_path / "vulndb.sqlite3"
    run_update(served, db_path)
    before = db_path.read_bytes()
    good = served.files["/overrides/main.tar.gz"]
    served.files["/overrides/main.tar.gz"] = good[: len(good) // 2]  # served whole: a short file
    with pytest.raises(VulnDbError, match=r"nvd-data-overrides\.tar\.gz"):
        run_update(served, db_path)
    assert db_path.read_bytes() == before
