"""apply_distribution: tracker decisions, inheritance, unconfirmed builds, evidence."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from flanscan._distro import DistroTracker, apply_distribution, host_release
from flanscan._distro._tracker import DISTRO_DDL
from flanscan._model import (
    Finding,
    FindingStatus,
    HostObservation,
    MatchEvidence,
    ServiceObservation,
    SuppressionRef,
    Vulnerability,
)
from flanscan._vulndb._progress import NULL_PROGRESS
from flanscan._vulndb.sources import ImportFile
from flanscan._vulndb.sources.debian import SOURCE as DEBIAN
from flanscan._vulndb.sources.ubuntu import SOURCE as UBUNTU

DATA = Path(__file__).parent / "data" / "distro"
ADDR = "127.0.0.1"


@pytest.fixture
def tracker() -> Iterator[DistroTracker]:
    conn = sqlite3.connect(":memory:")
    conn.executescript(DISTRO_DDL)
    conn.executescript(
        "CREATE TABLE sources (name TEXT PRIMARY KEY, data_date TEXT, imported_at TEXT NOT NULL,"
        " detail TEXT);"
    )
    DEBIAN.import_files(conn, [ImportFile(DATA / "debian-tracker.json")], NULL_PROGRESS)
    UBUNTU.import_files(
        conn, [ImportFile(p) for p in sorted((DATA / "ubuntu-osv").glob("*.json"))], NULL_PROGRESS
    )
    found = DistroTracker.from_connection(conn)
    assert found is not None
    yield found
    conn.close()


def tracker_json() -> dict[str, dict[str, dict[str, object]]]:
    data: dict[str, dict[str, dict[str, object]]] = json.loads(
        (DATA / "debian-tracker.json").read_text()
    )
    return data


def finding(cve: str, version: str = "9.2p1") -> Finding:
    ev = MatchEvidence("cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*", "< 9.9", version)
    return Finding(Vulnerability(cve), evidence=(ev,))


SSH_DEB = ServiceObservation(
    ADDR,
    22,
    "tcp",
    name="ssh",
    product="OpenSSH",
    version="9.2p1 Debian 2+deb12u10",
    extrainfo="protocol 2.0",
    cpes=("cpe:/a:openbsd:openssh:9.2p1",),
)


def host(*services: ServiceObservation) -> HostObservation:
    return HostObservation(ADDR, services=services)


def test_fixed_by_distribution_with_evidence(tracker: DistroTracker) -> None:
    [out] = apply_distribution(host(SSH_DEB), SSH_DEB, [finding("CVE-2023-38408")], tracker)
    assert out.status is FindingStatus.FIXED_BY_DISTRIBUTION
    dist = out.distribution
    assert dist is not None
    fixed = tracker_json()["openssh"]["CVE-2023-38408"]["releases"]["bookworm"]  # type: ignore[index]
    assert dist.fixed_version == fixed["fixed_version"]
    assert (dist.distribution, dist.release, dist.source_package) == (
        "debian",
        "bookworm",
        "openssh",
    )
    assert dist.package_version == "1:9.2p1-2+deb12u10"
    assert dist.tracker == "Debian security tracker"
    assert dist.tracker_status == "resolved"
    assert "security-tracker.debian.org/tracker/CVE-2023-38408" in (dist.note or "")
    assert out.evidence  # the matcher's evidence is kept


def test_older_build_keeps_the_finding_confirmed(tracker: DistroTracker) -> None:
    old = ServiceObservation(
        ADDR,
        22,
        "tcp",
        product="OpenSSH",
        version="9.2p1 Debian 2+deb12u2",
        cpes=("cpe:/a:openbsd:openssh:9.2p1",),
    )
    out = apply_distribution(
        host(old), old, [finding("CVE-2024-6387"), finding("CVE-2023-51385")], tracker
    )
    status = {f.id: f.status for f in out}
    assert status["CVE-2024-6387"] is FindingStatus.CONFIRMED  # fixed only in deb12u3
    assert status["CVE-2023-51385"] is FindingStatus.FIXED_BY_DISTRIBUTION  # fixed in deb12u2
    note = out[0].distribution.note if out[0].distribution else ""
    assert "older" in (note or "")


def test_not_affected_and_open(tracker: DistroTracker) -> None:
    out = apply_distribution(
        host(SSH_DEB), SSH_DEB, [finding("CVE-2024-6409"), finding("CVE-2020-15778")], tracker
    )
    by_id = {f.id: f for f in out}
    assert by_id["CVE-2024-6409"].status is FindingStatus.NOT_AFFECTED
    assert by_id["CVE-2024-6409"].distribution.tracker_status == "not-affected"  # type: ignore[union-attr]
    opened = by_id["CVE-2020-15778"]
    assert opened.status is FindingStatus.CONFIRMED
    assert (
        opened.distribution is not None
        and opened.distribution.tracker_status == "open (unimportant)"
    )


def test_cve_unknown_to_tracker_stays_unconfirmed(tracker: DistroTracker) -> None:
    [out] = apply_distribution(host(SSH_DEB), SSH_DEB, [finding("CVE-2099-0001")], tracker)
    assert out.status is FindingStatus.UNCONFIRMED_DISTRIBUTION
    assert "no entry" in (out.distribution.note or "")  # type: ignore[union-attr]


def test_release_specific_entries(tracker: DistroTracker) -> None:
    bullseye = ServiceObservation(
        ADDR,
        22,
        "tcp",
        product="OpenSSH",
        version="8.4p1 Debian 5+deb11u1",
        cpes=("cpe:/a:openbsd:openssh:8.4p1",),
    )
    out = apply_distribution(
        host(bullseye),
        bullseye,
        [finding("CVE-2024-6387", "8.4p1"), finding("CVE-2023-38408", "8.4p1")],
        tracker,
    )
    status = {f.id: f.status for f in out}
    assert status["CVE-2024-6387"] is FindingStatus.NOT_AFFECTED  # bullseye: fixed_version "0"
    assert status["CVE-2023-38408"] is FindingStatus.CONFIRMED  # fixed in deb11u2 > deb11u1


def test_red_hat_is_unconfirmed_even_with_tracker(tracker: DistroTracker) -> None:
    rh = ServiceObservation(
        ADDR,
        80,
        "tcp",
        product="Apache httpd",
        version="2.4.37",
        extrainfo="(Red Hat Enterprise Linux)",
        cpes=("cpe:/a:apache:http_server:2.4.37",),
    )
    [out] = apply_distribution(host(rh), rh, [finding("CVE-2023-25690", "2.4.37")], tracker)
    assert out.status is FindingStatus.UNCONFIRMED_DISTRIBUTION
    assert out.distribution is not None and out.distribution.distribution == "rhel"
    assert "backports" in (out.distribution.note or "")
    assert out.status.is_open  # still in the main report, marked


def test_debian_marker_alone_without_host_release(tracker: DistroTracker) -> None:
    web = ServiceObservation(
        ADDR,
        80,
        "tcp",
        product="Apache httpd",
        version="2.4.62",
        extrainfo="(Debian)",
        cpes=("cpe:/a:apache:http_server:2.4.62",),
    )
    [out] = apply_distribution(host(web), web, [finding("CVE-2025-53020", "2.4.62")], tracker)
    assert out.status is FindingStatus.UNCONFIRMED_DISTRIBUTION
    assert out.distribution is not None and out.distribution.release is None


def test_inherited_release_for_debian_marker(tracker: DistroTracker) -> None:
    web = ServiceObservation(
        ADDR,
        80,
        "tcp",
        product="Apache httpd",
        version="2.4.62",
        extrainfo="(Debian)",
        cpes=("cpe:/a:apache:http_server:2.4.62",),
    )
    h = host(SSH_DEB, web)
    cves = ("CVE-2023-31122", "CVE-2024-40898", "CVE-2025-53020", "CVE-2021-41773")
    out = apply_distribution(h, web, [finding(c, "2.4.62") for c in cves], tracker)
    by_id = {f.id: f for f in out}
    # fixed in 2.4.59-1~deb12u1: every bookworm build of upstream 2.4.62 has it
    assert by_id["CVE-2023-31122"].status is FindingStatus.FIXED_BY_DISTRIBUTION
    # fixed in 2.4.62-1~deb12u1: a build of 2.4.62 may or may not have it -> unconfirmed
    assert by_id["CVE-2024-40898"].status is FindingStatus.UNCONFIRMED_DISTRIBUTION
    # fixed in 2.4.65-1~deb12u1: bookworm moved to a newer upstream for it -> 2.4.62 is open
    assert by_id["CVE-2025-53020"].status is FindingStatus.CONFIRMED
    assert by_id["CVE-2021-41773"].status is FindingStatus.NOT_AFFECTED
    dist = by_id["CVE-2023-31122"].distribution
    assert dist is not None and dist.release == "bookworm"
    assert dist.inherited_from == "22/tcp OpenSSH 9.2p1 Debian 2+deb12u10 (protocol 2.0)"


def test_unmarked_service_inherits_the_host_release(tracker: DistroTracker) -> None:
    nginx = ServiceObservation(
        ADDR,
        80,
        "tcp",
        product="nginx",
        version="1.22.1",
        ostype="Linux",
        cpes=("cpe:/a:igor_sysoev:nginx:1.22.1",),
    )
    h = host(SSH_DEB, nginx)
    cves = ("CVE-2021-23017", "CVE-2024-7347", "CVE-2099-0002")
    out = apply_distribution(h, nginx, [finding(c, "1.22.1") for c in cves], tracker)
    by_id = {f.id: f for f in out}
    assert by_id["CVE-2021-23017"].status is FindingStatus.FIXED_BY_DISTRIBUTION
    # bookworm backported the fix to 1.22.1 (deb12u2): the banner cannot say which build runs
    assert by_id["CVE-2024-7347"].status is FindingStatus.UNCONFIRMED_DISTRIBUTION
    # unknown to the tracker: the banner never claimed a distribution build -> stays confirmed
    assert by_id["CVE-2099-0002"].status is FindingStatus.CONFIRMED
    assert all(f.distribution and f.distribution.inherited_from for f in out)


def test_version_bound_is_not_a_version(tracker: DistroTracker) -> None:
    pg = ServiceObservation(
        ADDR,
        5432,
        "tcp",
        product="PostgreSQL DB",
        version="9.6.0 or later",
        cpes=("cpe:/a:postgresql:postgresql",),
    )
    f = Finding(Vulnerability("CVE-2023-5869"))
    [out] = apply_distribution(host(SSH_DEB, pg), pg, [f], tracker)
    assert out is f  # per-major source package unknown: left as the matcher made it


def test_no_inheritance_when_host_releases_disagree(tracker: DistroTracker) -> None:
    other = ServiceObservation(
        ADDR,
        2222,
        "tcp",
        product="OpenSSH",
        version="8.4p1 Debian 5+deb11u3",
        cpes=("cpe:/a:openbsd:openssh:8.4p1",),
    )
    nginx = ServiceObservation(ADDR, 80, "tcp", product="nginx", version="1.22.1")
    h = host(SSH_DEB, other, nginx)
    assert host_release(h, nginx) is None
    [out] = apply_distribution(h, nginx, [finding("CVE-2021-23017", "1.22.1")], tracker)
    assert out.status is FindingStatus.CONFIRMED and out.distribution is None


def test_no_tracker_marks_distribution_builds_unconfirmed() -> None:
    out = apply_distribution(host(SSH_DEB), SSH_DEB, [finding("CVE-2023-38408")], None)
    assert [f.status for f in out] == [FindingStatus.UNCONFIRMED_DISTRIBUTION]
    assert "flan db update" in (out[0].distribution.note or "")  # type: ignore[union-attr]
    nginx = ServiceObservation(ADDR, 80, "tcp", product="nginx", version="1.22.1")
    [plain] = apply_distribution(host(SSH_DEB, nginx), nginx, [finding("CVE-2021-23017")], None)
    assert plain.status is FindingStatus.CONFIRMED


def test_ubuntu_from_osv_data(tracker: DistroTracker) -> None:
    ssh = ServiceObservation(
        ADDR,
        22,
        "tcp",
        product="OpenSSH",
        version="8.9p1 Ubuntu 3ubuntu0.10",
        extrainfo="Ubuntu Linux; protocol 2.0",
        cpes=("cpe:/a:openbsd:openssh:8.9p1",),
    )
    out = apply_distribution(
        host(ssh),
        ssh,
        [
            finding(c, "8.9p1")
            for c in ("CVE-2023-38408", "CVE-2024-6387", "CVE-2025-26465", "CVE-2020-15778")
        ],
        tracker,
    )
    status = {f.id: f.status for f in out}
    assert status == {
        "CVE-2023-38408": FindingStatus.FIXED_BY_DISTRIBUTION,  # fixed 3ubuntu0.3 < 0.10
        "CVE-2024-6387": FindingStatus.FIXED_BY_DISTRIBUTION,  # fixed exactly in 3ubuntu0.10
        "CVE-2025-26465": FindingStatus.CONFIRMED,  # fixed in 3ubuntu0.11
        "CVE-2020-15778": FindingStatus.CONFIRMED,  # listed without a fix
    }
    assert out[0].distribution is not None
    assert out[0].distribution.tracker == "Ubuntu security data (OSV export)"


def test_never_drops_and_keeps_earlier_statuses(tracker: DistroTracker) -> None:
    suppressed = Finding(
        Vulnerability("CVE-2023-38408"),
        status=FindingStatus.SUPPRESSED,
        suppression=SuppressionRef("f:1", "r", "o"),
    )
    given = [suppressed, finding("CVE-2024-6387"), finding("CVE-2024-6387")]
    out = apply_distribution(host(SSH_DEB), SSH_DEB, given, tracker)
    assert len(out) == 3
    assert out[0] is suppressed
    assert apply_distribution(host(SSH_DEB), SSH_DEB, [], tracker) == []


def test_unknown_epoch_comes_from_the_fixed_version(
    tracker: DistroTracker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without its epoch, "9.2p1-2+deb12u10" would sort below "1:9.2p1-2+deb12u3".
    from flanscan._distro import _packages

    monkeypatch.delitem(_packages.EPOCHS, ("debian", "openssh"))
    [out] = apply_distribution(host(SSH_DEB), SSH_DEB, [finding("CVE-2024-6387")], tracker)
    assert out.status is FindingStatus.FIXED_BY_DISTRIBUTION
    assert out.distribution is not None
    assert "epoch taken from the tracker" in (out.distribution.note or "")
