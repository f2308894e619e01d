"""Distribution builds recognised in Nmap's version/extra-info text, and release names."""

from __future__ import annotations

import pytest

from flanscan._distro import detect_build
from flanscan._distro._releases import (
    debian_release_from_revision,
    release_from_upstream,
    ubuntu_release_from_revision,
)
from flanscan._model import ServiceObservation


def svc(
    product: str, version: str, extrainfo: str | None = None, **kw: object
) -> ServiceObservation:
    return ServiceObservation(
        "127.0.0.1", 1, "tcp", product=product, version=version, extrainfo=extrainfo, **kw
    )  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        (
            svc(
                "OpenSSH",
                "9.2p1 Debian 2+deb12u10",
                "protocol 2.0",
                cpes=("cpe:/a:openbsd:openssh:9.2p1",),
            ),
            ("debian", "bookworm", "openssh", "9.2p1", "1:9.2p1-2+deb12u10"),
        ),
        (
            svc("ISC BIND", "9.18.49-1~deb12u3", "Debian Linux"),
            ("debian", "bookworm", "bind9", "9.18.49", "1:9.18.49-1~deb12u3"),
        ),
        (
            svc("OpenSSH", "8.9p1 Ubuntu 3ubuntu0.10", "Ubuntu Linux; protocol 2.0"),
            ("ubuntu", "jammy", "openssh", "8.9p1", "1:8.9p1-3ubuntu0.10"),
        ),
        (
            svc("Apache httpd", "2.4.62", "(Debian)"),
            ("debian", None, "apache2", "2.4.62", None),
        ),
        (
            svc("Apache httpd", "2.4.37", "(Red Hat Enterprise Linux)"),
            ("rhel", None, None, "2.4.37", None),
        ),
        (
            svc("PostgreSQL DB", "15.18", "Debian 15.18-0+deb12u1"),
            ("debian", "bookworm", "postgresql-15", "15.18", "15.18-0+deb12u1"),
        ),
        (
            svc("PostgreSQL DB", "14.11", "(Ubuntu 14.11-0ubuntu0.22.04.1)"),
            ("ubuntu", "jammy", "postgresql-14", "14.11", "14.11-0ubuntu0.22.04.1"),
        ),
        (  # the old Ubuntu OpenSSH banner says "Debian" but the revision says Ubuntu
            svc("OpenSSH", "5.9p1 Debian 5ubuntu1", "Ubuntu Linux; protocol 2.0"),
            ("ubuntu", "precise", "openssh", "5.9p1", "1:5.9p1-5ubuntu1"),
        ),
        (
            svc("ISC BIND", "9.18.30-0ubuntu0.22.04.2-Ubuntu", "Ubuntu Linux"),
            ("ubuntu", "jammy", "bind9", "9.18.30", "1:9.18.30-0ubuntu0.22.04.2"),
        ),
        (  # upstream versions may contain hyphens: the last one starts the revision
            svc("ISC BIND", "9.11.5-P4-5.1+deb10u9-Debian", "Debian Linux"),
            ("debian", "buster", "bind9", "9.11.5-P4", "1:9.11.5-P4-5.1+deb10u9"),
        ),
        (
            svc("OpenSSH", "8.4p1 Debian 5+deb11u3", "protocol 2.0"),
            ("debian", "bullseye", "openssh", "8.4p1", "1:8.4p1-5+deb11u3"),
        ),
        (  # no debNuM in the revision: bookworm is the release that ships 9.2p1
            svc("OpenSSH", "9.2p1 Debian 2", "protocol 2.0"),
            ("debian", "bookworm", "openssh", "9.2p1", "1:9.2p1-2"),
        ),
        (
            svc("MySQL", "5.5.5-10.11.6-MariaDB-0+deb12u1"),
            ("debian", "bookworm", "mariadb", "10.11.6", "1:10.11.6-0+deb12u1"),
        ),
        (
            svc("Apache httpd", "2.2.15", "(CentOS) PHP/5.3.3"),
            ("centos", None, None, "2.2.15", None),
        ),
        (
            svc("Apache httpd", "2.2.22", "(Ubuntu)"),
            ("ubuntu", None, "apache2", "2.2.22", None),
        ),
    ],
)
def test_detect_build(service: ServiceObservation, expected: tuple[object, ...]) -> None:
    build = detect_build(service)
    assert build is not None
    got = (
        build.distribution,
        build.release,
        build.source_package,
        build.upstream_version,
        build.package_version,
    )
    assert got == expected


@pytest.mark.parametrize(
    "service",
    [
        svc("nginx", "1.22.1", ostype="Linux"),
        svc("vsftpd", "3.0.3", ostype="Unix"),
        svc("Redis key-value store", "7.0.15"),
        svc("OpenSSH", "9.6", "protocol 2.0"),
        svc("Apache httpd", "", None),
    ],
)
def test_no_distribution_marker(service: ServiceObservation) -> None:
    assert detect_build(service) is None


def test_os_cpe_is_a_marker() -> None:
    build = detect_build(svc("nginx", "1.18.0", cpes=("cpe:/o:canonical:ubuntu_linux",)))
    assert build is not None and build.distribution == "ubuntu"


def test_hostile_banner_is_bounded_and_not_misread() -> None:
    long = "9.2p1 Debian " + "9" * 5000 + "+deb12u1"
    build = detect_build(svc("OpenSSH", long))
    assert build is not None and build.distribution == "debian"
    # cut at the bound: the injected revision is not taken as a release
    assert build.release in (None, "bookworm")
    assert detect_build(svc("OpenSSH", "9.2p1 Debian <script>", "x" * 10000)) is not None


@pytest.mark.parametrize(
    ("revision", "release"),
    [
        ("2+deb12u10", "bookworm"),
        ("1~deb12u3", "bookworm"),
        ("5+deb11u3", "bullseye"),
        ("10+deb10u2", "buster"),
        ("1~bpo11+1", "bullseye"),
        ("13", None),
        ("2+deb99u1", None),
    ],
)
def test_debian_release_from_revision(revision: str, release: str | None) -> None:
    assert debian_release_from_revision(revision) == release


@pytest.mark.parametrize(
    ("revision", "release"),
    [
        ("0ubuntu0.22.04.2", "jammy"),
        ("1ubuntu0.20.04.1", "focal"),
        ("0ubuntu0.24.04.1", "noble"),
        ("1~22.04.1", "jammy"),
        ("3ubuntu0.10", None),  # needs the upstream version
        ("6ubuntu14.4", None),
    ],
)
def test_ubuntu_release_from_revision(revision: str, release: str | None) -> None:
    assert ubuntu_release_from_revision(revision) == release


def test_release_from_upstream_table() -> None:
    assert release_from_upstream("ubuntu", "openssh", "8.9p1") == "jammy"
    assert release_from_upstream("ubuntu", "openssh", "9.6p1") == "noble"
    assert release_from_upstream("debian", "openssh", "9.2p1") == "bookworm"
    assert release_from_upstream("debian", "nginx", "1.22.1") is None
