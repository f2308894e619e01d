"""Which distribution source package built a detected service, and that package's epoch.

Trackers key their data by *source* package (Debian's `openssh`, not the binary
`openssh-server`), and compare full versions including the epoch (`1:9.2p1-2+deb12u10`), which
no banner shows. Both tables are reviewed by hand; a product missing here is reported as a
distribution build the tracker cannot confirm, never guessed.
"""

from __future__ import annotations

import re

# NVD or Nmap CPE vendor:product -> source package name (Debian and Ubuntu agree on these).
CPE_SOURCE_PACKAGES: dict[str, str] = {
    "openbsd:openssh": "openssh",
    "apache:http_server": "apache2",
    "igor_sysoev:nginx": "nginx",
    "nginx:nginx": "nginx",
    "f5:nginx": "nginx",
    "isc:bind": "bind9",
    "redis:redis": "redis",
    "redislabs:redis": "redis",
    "memcached:memcached": "memcached",
    "memcachedb:memcached": "memcached",
    "beasts:vsftpd": "vsftpd",
    "vsftpd_project:vsftpd": "vsftpd",
    "dovecot:dovecot": "dovecot",
    "exim:exim": "exim4",
    "postfix:postfix": "postfix",
    "samba:samba": "samba",
    "squid-cache:squid": "squid",
    "lighttpd:lighttpd": "lighttpd",
    "proftpd:proftpd": "proftpd-dfsg",
    "proftpd_project:proftpd": "proftpd-dfsg",
    "openssl:openssl": "openssl",
    "thekelleys:dnsmasq": "dnsmasq",
    "haproxy:haproxy": "haproxy",
    "nlnetlabs:unbound": "unbound",
    "postgresql:postgresql": "postgresql",  # versioned below: postgresql-15
    "mariadb:mariadb": "mariadb",
}

# Nmap product name (lower case) -> source package, for services Nmap gives no CPE.
PRODUCT_SOURCE_PACKAGES: dict[str, str] = {
    "openssh": "openssh",
    "apache httpd": "apache2",
    "nginx": "nginx",
    "isc bind": "bind9",
    "redis key-value store": "redis",
    "memcached": "memcached",
    "vsftpd": "vsftpd",
    "dovecot imapd": "dovecot",
    "dovecot pop3d": "dovecot",
    "exim smtpd": "exim4",
    "postfix smtpd": "postfix",
    "samba smbd": "samba",
    "squid http proxy": "squid",
    "lighttpd": "lighttpd",
    "proftpd": "proftpd-dfsg",
    "dnsmasq": "dnsmasq",
    "postgresql db": "postgresql",
    "mysql": "mysql",
}

# (distribution, source package) -> epoch. Epochs only ever grow, and these have been stable
# across every supported release of each distribution.
EPOCHS: dict[tuple[str, str], str] = {
    ("debian", "openssh"): "1",
    ("ubuntu", "openssh"): "1",
    ("debian", "bind9"): "1",
    ("ubuntu", "bind9"): "1",
    ("debian", "redis"): "5",
    ("ubuntu", "redis"): "5",
    ("debian", "dovecot"): "1",
    ("ubuntu", "dovecot"): "1",
    ("debian", "samba"): "2",
    ("ubuntu", "samba"): "2",
    ("debian", "mariadb"): "1",
    ("ubuntu", "mariadb"): "1",
}
# Source packages known to carry no epoch (so the missing epoch is a fact, not a gap).
NO_EPOCH: frozenset[str] = frozenset(
    {
        "apache2",
        "nginx",
        "memcached",
        "vsftpd",
        "exim4",
        "postfix",
        "squid",
        "lighttpd",
        "proftpd-dfsg",
        "openssl",
        "dnsmasq",
        "haproxy",
        "unbound",
        "postgresql",
        "mysql",
    }
)

_CPE_RE = re.compile(r"^cpe:(?:/|2\.3:)a:([^:]+):([^:]+)")


def _versioned(source: str, upstream: str | None) -> str | None:
    """PostgreSQL is packaged per major version (`postgresql-15`); MySQL likewise (`mysql-8.0`)."""
    if upstream is None:
        # Without a version the per-major package is unknown ("9.6.0 or later" is no version).
        return None if source in ("postgresql", "mysql") else source
    parts = upstream.split(".")
    if source == "postgresql" and parts[0].isdigit():
        major = parts[0] if int(parts[0]) >= 10 else ".".join(parts[:2])
        return f"postgresql-{major}"
    if source == "mysql" and len(parts) >= 2:
        return f"mysql-{parts[0]}.{parts[1]}"
    return source


def source_package_for(
    cpes: tuple[str, ...], product: str | None, upstream: str | None, banner: str = ""
) -> str | None:
    """The source package that builds this service, from its CPEs or Nmap product name
    (`banner`: Nmap's raw version text, which tells MariaDB from MySQL)."""
    if "mariadb" in banner.lower():
        return "mariadb"
    for cpe in cpes:
        match = _CPE_RE.match(cpe)
        if match:
            name = CPE_SOURCE_PACKAGES.get(f"{match.group(1)}:{match.group(2)}".lower())
            if name:
                return _versioned(name, upstream)
    if product:
        key = product.strip().lower()
        name = PRODUCT_SOURCE_PACKAGES.get(key)
        if name:
            return _versioned(name, upstream)
    return None


def epoch_for(distribution: str, source_package: str) -> tuple[str | None, bool]:
    """(epoch, known): the epoch of the package's versions; known is False when unlisted."""
    base = source_package.split("-")[0] if source_package.startswith("postgresql") else None
    if (distribution, source_package) in EPOCHS:
        return EPOCHS[(distribution, source_package)], True
    if source_package in NO_EPOCH or base in NO_EPOCH or source_package.startswith("mysql-"):
        return None, True
    return None, False
