"""The reviewed alias table: how Nmap names a product and how the NVD does.

Every entry was checked against what Nmap 7.93's `nmap-service-probes` emits (`p/.../` product
names and `cpe:/a:...` lines) and against the NVD CPE names used in the CVE records of
`../shared/nvd-sample/`; each has a test in tests/test_aliases.py. To add a product: add an
entry, then a test that matches a real NVD record through it.

Nmap's names are used unchanged when no entry lists them: most products are named alike.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field


def _mariadb_version(text: str) -> str | None:
    """MariaDB greets as "5.5.5-10.11.6-MariaDB-0+deb12u1" (10.x) or "5.5.64-MariaDB-1~trusty"."""
    m = re.search(r"(?:^|-)(\d+\.\d+\.\d+)-MariaDB", text, re.IGNORECASE)
    return m.group(1) if m else None


@dataclass(frozen=True)
class ProductAlias:
    """One product under its Nmap and NVD names."""

    key: str
    nvd: tuple[str, ...]  # "vendor:product" names the NVD uses (current name first)
    nmap_cpes: tuple[str, ...] = ()  # "vendor:product" as Nmap's CPEs write it
    nmap_products: tuple[str, ...] = ()  # regexes over Nmap's product field (no CPE given)
    # Turns Nmap's version text into the NVD version; None means "use the generic rule".
    version_rule: Callable[[str], str | None] | None = None
    # Marker in the version text that identifies this product whatever the CPE says.
    version_marker: str | None = None
    note: str = ""
    _product_res: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False)

    def __post_init__(self) -> None:
        res = tuple(re.compile(p, re.IGNORECASE) for p in self.nmap_products)
        object.__setattr__(self, "_product_res", res)

    @property
    def nvd_names(self) -> tuple[tuple[str, str], ...]:
        return tuple(_pair(n) for n in self.nvd)

    def names_product(self, product: str) -> bool:
        return any(r.search(product) for r in self._product_res)


def _pair(name: str) -> tuple[str, str]:
    vendor, _, product = name.partition(":")
    return vendor, product


ALIASES: tuple[ProductAlias, ...] = (
    ProductAlias(
        "openssh",
        nvd=("openbsd:openssh",),
        nmap_cpes=("openbsd:openssh",),
        nmap_products=(r"^OpenSSH$",),
        note="Nmap's 7.4p1 is the NVD's version 7.4, update p1",
    ),
    ProductAlias(
        "nginx",
        # f5:nginx since F5 bought nginx; older NVD records say nginx:nginx or igor_sysoev:nginx.
        nvd=("f5:nginx", "nginx:nginx", "igor_sysoev:nginx"),
        nmap_cpes=("igor_sysoev:nginx", "nginx:nginx", "f5:nginx"),
        nmap_products=(r"^nginx$",),
    ),
    ProductAlias(
        "apache-httpd",
        nvd=("apache:http_server",),
        nmap_cpes=("apache:http_server",),
        nmap_products=(r"^Apache httpd$",),
    ),
    ProductAlias(
        "iis",
        # The NVD names IIS both ways (7.5 and 10.0 "services", 5.0/6.0 often "server").
        nvd=("microsoft:internet_information_services", "microsoft:internet_information_server"),
        # Nmap 7.x: internet_information_services; Nmap before 7.10: microsoft:iis.
        nmap_cpes=("microsoft:internet_information_services", "microsoft:iis"),
        nmap_products=(r"^Microsoft IIS (?:httpd|ftpd|WebDAV|SSL)$",),
    ),
    ProductAlias(
        "mariadb",
        nvd=("mariadb:mariadb",),
        nmap_cpes=("mariadb:mariadb",),
        nmap_products=(r"^MariaDB$",),
        version_rule=_mariadb_version,
        version_marker="mariadb",
        note="Nmap reports MariaDB as product MySQL with version 5.5.5-10.x.y-MariaDB-...",
    ),
    ProductAlias(
        "mysql",
        # Oracle's MySQL; the NVD's records before 2010 say mysql:mysql.
        nvd=("oracle:mysql", "mysql:mysql"),
        nmap_cpes=("mysql:mysql",),
        nmap_products=(r"^MySQL$",),
    ),
    ProductAlias(
        "bind",
        nvd=("isc:bind",),
        nmap_cpes=("isc:bind",),
        nmap_products=(r"^ISC BIND$",),
        note="BIND's 9.11.5-P4 is the NVD's version 9.11.5, update p4",
    ),
    ProductAlias(
        "postgresql",
        nvd=("postgresql:postgresql",),
        nmap_cpes=("postgresql:postgresql",),
        nmap_products=(r"^PostgreSQL DB$",),
    ),
    ProductAlias(
        "redis",
        # Nmap writes redislabs:redis; the NVD moved from redislabs:redis to redis:redis.
        nvd=("redis:redis", "redislabs:redis"),
        nmap_cpes=("redislabs:redis", "redis:redis"),
        nmap_products=(r"^Redis key-value store$",),
    ),
    ProductAlias(
        "memcached",
        nvd=("memcached:memcached",),
        nmap_cpes=("memcached:memcached",),
        nmap_products=(r"^Memcached$",),
    ),
    ProductAlias(
        "vsftpd",
        # Nmap 7.93 writes vsftpd:vsftpd, other Nmap releases and OpenVAS beasts:vsftpd; the
        # NVD's records say vsftpd_project:vsftpd (older ones beasts:vsftpd).
        nvd=("vsftpd_project:vsftpd", "beasts:vsftpd"),
        nmap_cpes=("vsftpd:vsftpd", "beasts:vsftpd"),
        nmap_products=(r"^vsftpd$",),
    ),
    ProductAlias(
        "proftpd",
        nvd=("proftpd:proftpd",),
        nmap_cpes=("proftpd:proftpd",),
        nmap_products=(r"^ProFTPD$",),
    ),
    ProductAlias(
        "exim",
        nvd=("exim:exim",),
        nmap_cpes=("exim:exim",),
        nmap_products=(r"^Exim smtpd$",),
    ),
    ProductAlias(
        "dovecot",
        nvd=("dovecot:dovecot",),
        nmap_cpes=("dovecot:dovecot",),
        nmap_products=(r"^Dovecot (?:imapd|pop3d|lmtpd|DirectAdmin imapd|DirectAdmin pop3d)$",),
    ),
    ProductAlias(
        "samba",
        nvd=("samba:samba",),
        nmap_cpes=("samba:samba",),
        nmap_products=(r"^Samba smbd$",),
    ),
    ProductAlias(
        "squid",
        nvd=("squid-cache:squid",),
        nmap_cpes=("squid-cache:squid",),
        nmap_products=(r"^Squid(?: http proxy)?$",),
    ),
    ProductAlias(
        "lighttpd",
        nvd=("lighttpd:lighttpd",),
        nmap_cpes=("lighttpd:lighttpd",),
        nmap_products=(r"^lighttpd$",),
    ),
    ProductAlias(
        "openssl",
        nvd=("openssl:openssl",),
        nmap_cpes=("openssl:openssl",),
        nmap_products=(r"^OpenSSL$",),
        note="OpenSSL's letter releases (1.1.1k) stay in the version field, as in the NVD",
    ),
    ProductAlias(
        "tomcat",
        nvd=("apache:tomcat",),
        nmap_cpes=("apache:tomcat",),
        nmap_products=(r"^Apache Tomcat$",),
    ),
    ProductAlias(
        "jenkins",
        nvd=("jenkins:jenkins",),
        # Nmap's TcpSlaveAgentListener match writes cloudbees:jenkins.
        nmap_cpes=("jenkins:jenkins", "cloudbees:jenkins"),
        nmap_products=(r"^Jenkins httpd$",),
    ),
)

_BY_NMAP_CPE: dict[tuple[str, str], ProductAlias] = {
    _pair(n): a for a in ALIASES for n in a.nmap_cpes
}
_BY_NVD: dict[tuple[str, str], ProductAlias] = {_pair(n): a for a in ALIASES for n in a.nvd}
_BY_KEY: dict[str, ProductAlias] = {a.key: a for a in ALIASES}


def alias_for_cpe(vendor: str, product: str) -> ProductAlias | None:
    """The entry for a `vendor:product` from Nmap (or already in NVD form); None if unlisted."""
    key = (vendor.lower(), product.lower())
    return _BY_NMAP_CPE.get(key) or _BY_NVD.get(key)


def alias_for_product_name(product: str | None) -> ProductAlias | None:
    """The entry whose Nmap product name matches `product` ("OpenSSH", "PostgreSQL DB")."""
    if not product:
        return None
    for alias in ALIASES:
        if alias.names_product(product.strip()):
            return alias
    return None


def alias_for_version_text(text: str | None) -> ProductAlias | None:
    """The entry a version text names whatever the CPE says ("5.5.5-10.11.6-MariaDB-...")."""
    if not text:
        return None
    low = text.lower()
    for alias in ALIASES:
        if alias.version_marker and alias.version_marker in low:
            return alias
    return None


def alias_by_key(key: str) -> ProductAlias:
    """The entry with this key ("nginx"); KeyError if none."""
    return _BY_KEY[key]
