"""The Debian tracker and Ubuntu OSV sources: detection, import into a real database, errors."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

from flanscan._distro import tracker_for
from flanscan._distro._releases import DEBIAN_RELEASES
from flanscan._errors import VulnDbError
from flanscan._vulndb import VulnDb, import_paths
from flanscan._vulndb._files import probe_file
from flanscan._vulndb.sources import load_source

DATA = Path(__file__).parent / "data" / "distro"
TRACKER = DATA / "debian-tracker.json"


def expected_debian_rows() -> set[tuple[str, str, str, str, str | None]]:
    """(release, package, cve, status, fixed) read straight from the fixture's JSON."""
    rows = set()
    for package, cves in json.loads(TRACKER.read_text()).items():
        for cve, entry in cves.items():
            if not cve.startswith("CVE-"):
                continue
            for release, data in entry["releases"].items():
                if release in DEBIAN_RELEASES.values():
                    rows.add((release, package, cve, data["status"], data.get("fixed_version")))
    return rows


def test_sniff_by_content(nvd_sample: Path) -> None:
    debian, ubuntu = load_source("debian"), load_source("ubuntu")
    assert debian.sniff(probe_file(TRACKER))
    assert not ubuntu.sniff(probe_file(TRACKER))
    record = DATA / "ubuntu-osv" / "UBUNTU-CVE-2023-38408.json"
    assert ubuntu.sniff(probe_file(record)) and not debian.sniff(probe_file(record))
    for other in ("nvdcve-2.0-sample.json", "known_exploited_vulnerabilities.json"):
        probe = probe_file(nvd_sample / other)
        assert not debian.sniff(probe) and not ubuntu.sniff(probe)


def test_import_with_nvd_sample(tmp_path: Path, nvd_sample: Path) -> None:
    db_path = tmp_path / "v.sqlite3"
    archive = tmp_path / "all.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for record in sorted((DATA / "ubuntu-osv").glob("*.json")):
            zf.write(record, record.name)
    result = import_paths(db_path, [nvd_sample / "nvdcve-2.0-sample.json.gz", TRACKER, archive])
    assert {s for s, _ in result.files} == {"nvd", "debian", "ubuntu"}
    db = VulnDb.open(db_path)
    try:
        tracker = tracker_for(db)
        assert tracker is not None
        conn = db.connection
        got = set(
            conn.execute(
                "SELECT release, package, cve_id, status, fixed_version FROM distro_fix"
                " WHERE distribution = 'debian'"
            )
        )
        assert got == expected_debian_rows()  # every release entry, no TEMP- ids, no sid
        assert not any(r[0] == "sid" for r in got)
        ubuntu = {
            (r, p, c): (s, f, n)
            for r, p, c, s, f, n in conn.execute(
                "SELECT release, package, cve_id, status, fixed_version, note FROM distro_fix"
                " WHERE distribution = 'ubuntu'"
            )
        }
        assert ubuntu[("jammy", "openssh", "CVE-2023-38408")][:2] == (
            "resolved",
            "1:8.9p1-3ubuntu0.3",
        )
        assert ubuntu[("jammy", "openssh", "CVE-2020-15778")][:2] == ("open", None)
        assert ubuntu[("bionic", "openssh", "CVE-2023-38408")][2].endswith("(Ubuntu Pro)")
        entry = tracker.entry("debian", "bookworm", "openssh", "CVE-2024-6387")
        assert entry is not None and entry.fixed_version == "1:9.2p1-2+deb12u3"
        names = {s.name for s in db.status().sources}
        assert {"debian", "ubuntu"} <= names
    finally:
        db.close()


def test_database_without_tracker_data(tmp_path: Path, nvd_sample: Path) -> None:
    db_path = tmp_path / "v.sqlite3"
    import_paths(db_path, [nvd_sample / "nvdcve-2.0-sample.json.gz"])
    db = VulnDb.open(db_path)
    try:
        assert tracker_for(db) is None
    finally:
        db.close()


def test_truncated_tracker_names_the_file_and_keeps_the_database(
    tmp_path: Path, nvd_sample: Path
) -> None:
    db_path = tmp_path / "v.sqlite3"
    import_paths(db_path, [nvd_sample / "nvdcve-2.0-sample.json.gz", TRACKER])
    before = db_path.read_bytes()
    cut = tmp_path / "tracker-cut.json"
    cut.write_text(TRACKER.read_text()[:20000])
    with pytest.raises(VulnDbError, match=r"tracker-cut\.json"):
        import_paths(db_path, [cut])
    assert db_path.read_bytes() == before


def test_tracker_without_any_release_entry_is_rejected(tmp_path: Path) -> None:
    only_sid = tmp_path / "sid.json"
    only_sid.write_text(
        json.dumps(
            {
                "openssh": {
                    "CVE-2024-6387": {
                        "scope": "remote",
                        "releases": {
                            "sid": {
                                "status": "resolved",
                                "fixed_version": "1:9.7p1-7",
                                "urgency": "not yet assigned",
                                "repositories": {},
                            }
                        },
                    }
                }
            }
        )
    )
    with pytest.raises(VulnDbError, match=r"sid\.json: no CVE entries"):
        import_paths(tmp_path / "v.sqlite3", [only_sid])


def _osv(ident: str, ecosystem: str, fixed: str | None) -> dict[str, object]:
    events: list[dict[str, str]] = [{"introduced": "0"}]
    if fixed:
        events.append({"fixed": fixed})
    return {
        "id": ident,
        "upstream": ["CVE-2024-6387"],
        "affected": [
            {
                "package": {"ecosystem": ecosystem, "name": "openssh"},
                "ranges": [{"type": "ECOSYSTEM", "events": events}],
            }
        ],
    }


@pytest.mark.parametrize("reverse", [False, True])
def test_ubuntu_precedence_fixed_and_standard_win(tmp_path: Path, reverse: bool) -> None:
    import sqlite3

    from flanscan._distro._tracker import DISTRO_DDL
    from flanscan._vulndb.sources.ubuntu import import_osv

    records = [
        _osv("UBUNTU-CVE-2024-6387", "Ubuntu:22.04:LTS", None),
        _osv("USN-6859-1", "Ubuntu:22.04:LTS", "1:8.9p1-3ubuntu0.10"),
        _osv("USN-6859-2", "Ubuntu:Pro:20.04:LTS", "1:8.2p1-4ubuntu0.11+esm1"),
        _osv("USN-6859-1", "Ubuntu:20.04:LTS", "1:8.2p1-4ubuntu0.11"),
        _osv("UBUNTU-CVE-2024-6387", "Ubuntu:Pro:FIPS:20.04:LTS", "9:9"),  # not a release
    ]
    path = tmp_path / "records.json"
    path.write_text(json.dumps(records[::-1] if reverse else records))
    conn = sqlite3.connect(":memory:")
    conn.executescript(DISTRO_DDL)
    assert import_osv(conn, [path]) == 4
    rows = dict(
        (
            (r, (s, f, n))
            for r, s, f, n in conn.execute(
                "SELECT release, status, fixed_version, note FROM distro_fix"
            )
        )
    )
    assert rows == {
        "jammy": ("resolved", "1:8.9p1-3ubuntu0.10", "USN-6859-1"),
        "focal": ("resolved", "1:8.2p1-4ubuntu0.11", "USN-6859-1"),
    }


def test_update_downloads_trackers_from_a_local_server(tmp_path: Path) -> None:
    """`flan db update` for the two tracker sources, served over HTTP on loopback."""
    import functools
    import http.server
    import threading

    from flanscan._vulndb import update_db

    served = tmp_path / "www"
    served.mkdir()
    (served / "json").write_bytes(TRACKER.read_bytes())
    with zipfile.ZipFile(served / "all.zip", "w") as zf:
        for record in sorted((DATA / "ubuntu-osv").glob("*.json")):
            zf.write(record, record.name)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    urls = {"debian": f"{base}/json", "ubuntu": f"{base}/all.zip"}
    db_path = tmp_path / "db" / "vulndb.sqlite3"
    try:
        first = update_db(db_path, urls=urls, only=("debian", "ubuntu"), timeout=10)
        again = update_db(db_path, urls=urls, only=("debian", "ubuntu"), timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert first.changed and {s for s, _ in first.files} == {"debian", "ubuntu"}
    assert not again.changed  # same content: nothing rebuilt
    db = VulnDb.open(db_path)
    try:
        tracker = tracker_for(db)
        assert tracker is not None
        assert tracker.covers("debian", "bookworm") and tracker.covers("ubuntu", "jammy")
        debian_rows = db.connection.execute(
            "SELECT count(*) FROM distro_fix WHERE distribution = 'debian'"
        ).fetchone()[0]
        assert debian_rows == len(expected_debian_rows())
    finally:
        db.close()
