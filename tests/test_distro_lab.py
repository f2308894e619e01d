"""The real case: the lab's Debian daemons, the real NVD sample, the tracker fixture, the real
matcher, checked against what the installed packages' changelogs say Debian fixed."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from test_distro_truth import changelog_truth, lab_hosts

from flanscan._distro import apply_distribution, detect_build, tracker_for
from flanscan._distro._dpkg import dpkg_compare
from flanscan._match import match_service
from flanscan._model import Confidence, Finding, FindingStatus, HostObservation, ServiceObservation
from flanscan._vulndb import VulnDb, import_paths

TRACKER = Path(__file__).parent / "data" / "distro" / "debian-tracker.json"
CLOSED = (FindingStatus.FIXED_BY_DISTRIBUTION, FindingStatus.NOT_AFFECTED)


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory, nvd_sample: Path) -> Path:
    path = tmp_path_factory.mktemp("distro-db") / "vulndb.sqlite3"
    import_paths(path, [nvd_sample / "nvdcve-2.0-sample.json.gz", TRACKER])
    return path


def check_against_changelogs(
    service: ServiceObservation, binary_package: str, installed: str, findings: list[Finding]
) -> tuple[set[str], set[str]]:
    """Assert the distribution decisions of one service agree with its package's changelog;
    return (CVE ids closed by the distribution, CVE ids the changelog confirms)."""
    truth = changelog_truth(binary_package)
    exact = [f for f in findings if f.confidence is Confidence.EXACT]
    closed = {f.id for f in exact if f.status in CLOSED}
    for f in exact:
        if f.status is FindingStatus.FIXED_BY_DISTRIBUTION:
            dist = f.distribution
            assert dist is not None and dist.fixed_version and dist.tracker, f
            # the installed package really is at or past the tracker's fixed version
            assert dpkg_compare(installed, dist.fixed_version) >= 0, (f.id, installed)
            assert f.id in truth, f"{f.id} marked fixed, but {binary_package}'s changelog is silent"
    build = detect_build(service)
    if build is not None and build.package_version is not None:
        # The banner shows the package revision: the changelog decides every exact finding.
        assert build.package_version == installed
        expected = {f.id for f in exact if f.id in truth}
        assert closed == expected, (service.banner, closed, expected)
    else:
        # Without a revision nothing may be called open that the tracker says is never
        # affected, and nothing fixed that the changelog does not list (checked above).
        for f in exact:
            if f.id not in truth:
                assert f.status.is_open, f
    return closed, {c for c in closed if c in truth}


def test_lab_observations_against_changelogs(db_path: Path) -> None:
    db = VulnDb.open(db_path)
    try:
        tracker = tracker_for(db)
        assert tracker is not None
        closed_all: set[tuple[str, int, str]] = set()
        open_all: set[tuple[str, int, str]] = set()
        for host, services in lab_hosts():
            for lab_service in services:
                obs = lab_service.observation
                before = match_service(obs, db)
                after = apply_distribution(host, obs, before, tracker)
                assert [f.id for f in after] == [f.id for f in before]  # none dropped
                closed, _ = check_against_changelogs(
                    obs, lab_service.binary_package, lab_service.installed, after
                )
                closed_all |= {(host.address, obs.port, c) for c in closed}
                open_all |= {
                    (host.address, obs.port, f.id)
                    for f in after
                    if f.status.is_open and f.confidence is Confidence.EXACT
                }
        # The sample holds CVEs the lab's OpenSSH is fixed for, and vsftpd's ALPACA issue,
        # which Debian has not fixed in bookworm: both kinds must be present.
        assert any(port == 22 for _, port, _ in closed_all)
        assert any(port == 21 and cve == "CVE-2021-3618" for _, port, cve in open_all)
    finally:
        db.close()


def test_redis_on_a_debian_host_is_unconfirmed_not_confirmed(db_path: Path) -> None:
    """The lab's redis has no other service on its host; beside the lab's sshd it inherits
    bookworm, and a CVE Debian backported to 7.0.15 is no longer called confirmed."""
    hosts = {h.address: (h, s) for h, s in lab_hosts()}
    ssh = next(s for h, ss in hosts.values() for s in ss if s.observation.port == 22)
    redis = next(s for h, ss in hosts.values() for s in ss if s.observation.port == 6379)
    truth = changelog_truth(redis.binary_package)
    together = HostObservation(
        redis.observation.address,
        services=(
            dataclasses.replace(ssh.observation, address=redis.observation.address),
            redis.observation,
        ),
    )
    db = VulnDb.open(db_path)
    try:
        before = match_service(redis.observation, db)
        alone = apply_distribution(
            HostObservation(redis.observation.address, services=(redis.observation,)),
            redis.observation,
            before,
            tracker_for(db),
        )
        beside = apply_distribution(together, redis.observation, before, tracker_for(db))
    finally:
        db.close()
    fixed_upstream = [f for f in beside if f.id in truth]
    assert fixed_upstream, "the sample no longer holds a redis CVE fixed by Debian"
    for f_alone, f_beside in zip(alone, beside, strict=True):
        assert f_alone.status is FindingStatus.CONFIRMED and f_alone.distribution is None
        if f_beside.id in truth:
            assert f_beside.status in (FindingStatus.UNCONFIRMED_DISTRIBUTION, *CLOSED)
            assert f_beside.distribution is not None
            assert (f_beside.distribution.inherited_from or "").startswith("22/tcp OpenSSH")


def test_lab_scan_report(lab: object, db_path: Path, tmp_path: Path) -> None:
    """A real Nmap scan of the lab, through the pipeline, with the tracker in the database."""
    from flanscan._pipeline import ReportOptions, report_from_xml
    from testlab import Lab

    assert isinstance(lab, Lab)
    locations = lab.service_locations()
    ports = sorted({loc.service.port for loc in locations if loc.service.protocol == "tcp"})
    xml = tmp_path / "lab.xml"
    run = lab.exec(
        ["nmap", "-sS", "-sV", "-n", "-p", ",".join(map(str, ports)), "-oX", xml, *lab.targets],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    report = report_from_xml([xml], ReportOptions(db_path=db_path, formats=("json",)))
    packages = {
        (loc.address, loc.service.port): (loc.service.debian_package, loc.service.package_version)
        for loc in locations
    }
    fixed_seen = 0
    for svc in report.services:
        for sf in svc.findings:
            for location in sf.locations:
                package, installed = packages[(location.address, location.port)]
                assert package and installed
                obs = ServiceObservation(
                    location.address,
                    location.port,
                    location.protocol,
                    product=svc.product,
                    version=svc.version,
                    extrainfo=svc.extrainfo,
                    cpes=svc.cpes,
                )
                _, confirmed = check_against_changelogs(obs, package, installed, [sf.finding])
                fixed_seen += len(confirmed)
    assert fixed_seen >= 2  # OpenSSH on both ssh hosts
