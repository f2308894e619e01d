"""The reviewed product registry (`flanscan/data/products.toml`): one product under every name.

Each entry names a product as Nmap does (`p/.../` product names and `cpe:/a:...` lines, checked
against Nmap 7.93's `nmap-service-probes`), as the NVD and the anchore overrides do (CPE names
used in `../shared/nvd-sample/`), as CVE 5 records spell it ("F5 / NGINX Open Source") and as
Debian names its source package. The data lives in a file so that it can be reviewed as data;
tests/test_aliases.py and tests/test_registry.py check every entry.

Nmap's names are used unchanged when no entry lists them: most products are named alike.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Literal, cast, get_args

VersionScheme = Literal["generic", "openssh", "bind", "dovecot", "mariadb", "nginx"]
_SCHEMES: frozenset[str] = frozenset(get_args(VersionScheme))


def _mariadb_version(text: str) -> str | None:
    """MariaDB greets as "5.5.5-10.11.6-MariaDB-0+deb12u1" (10.x) or "5.5.64-MariaDB-1~trusty"."""
    m = re.search(r"(?:^|-)(\d+\.\d+\.\d+)-MariaDB", text, re.IGNORECASE)
    return m.group(1) if m else None


VERSION_RULES: dict[str, Callable[[str], str | None]] = {"mariadb": _mariadb_version}


def spelling_key(vendor: str | None, product: str | None) -> str:
    """How CVE 5 vendor/product spellings are compared: lower case, spaces collapsed."""
    v = " ".join((vendor or "n/a").split()).lower() or "n/a"
    p = " ".join((product or "n/a").split()).lower() or "n/a"
    return f"{v} / {p}"


@dataclass(frozen=True)
class ProductAlias:
    """One product under its Nmap, NVD, CVE 5 and distribution names."""

    key: str
    nvd: tuple[str, ...]  # "vendor:product" names the NVD uses (current name first)
    nmap_cpes: tuple[str, ...] = ()  # "vendor:product" as Nmap's CPEs write it
    nmap_products: tuple[str, ...] = ()  # regexes over Nmap's product field (no CPE given)
    # Turns Nmap's version text into the NVD version; None means "use the generic rule".
    version_rule: Callable[[str], str | None] | None = None
    # Marker in the version text that identifies this product whatever the CPE says.
    version_marker: str | None = None
    note: str = ""
    cve5: tuple[str, ...] = ()  # "vendor / product" spellings of CVE 5 `affected` entries
    cve5_packages: tuple[str, ...] = ()  # `packageName` values naming the upstream product
    other_cpes: tuple[str, ...] = ()  # CPE names other sources (CISA ADP) use
    debian: tuple[str, ...] = ()  # Debian source package names (anchored regexes)
    versions: VersionScheme = "generic"
    words: tuple[str, ...] = ()  # lower-case names in description text ("apache http server")
    _product_res: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False)
    _debian_res: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False)
    _cve5_keys: frozenset[str] = field(default=frozenset(), init=False, repr=False)
    _cve5_packages: frozenset[str] = field(default=frozenset(), init=False, repr=False)

    def __post_init__(self) -> None:
        res = tuple(re.compile(p, re.IGNORECASE) for p in self.nmap_products)
        object.__setattr__(self, "_product_res", res)
        deb = tuple(re.compile(f"(?:{p})\\Z") for p in self.debian)
        object.__setattr__(self, "_debian_res", deb)
        keys = frozenset(spelling_key(*s.split(" / ", 1)) for s in self.cve5)
        object.__setattr__(self, "_cve5_keys", keys)
        packages = frozenset(" ".join(p.split()).lower() for p in self.cve5_packages)
        object.__setattr__(self, "_cve5_packages", packages)

    @property
    def cve5_package_keys(self) -> frozenset[str]:
        """`packageName` values naming the upstream product, as compared (lower case)."""
        return self._cve5_packages

    @property
    def nvd_names(self) -> tuple[tuple[str, str], ...]:
        return tuple(_pair(n) for n in self.nvd)

    @property
    def cpe_names(self) -> frozenset[tuple[str, str]]:
        """Every CPE vendor:product that names this product in any source."""
        return frozenset(_pair(n) for n in (*self.nvd, *self.nmap_cpes, *self.other_cpes))

    @property
    def cve5_keys(self) -> frozenset[str]:
        return self._cve5_keys

    def names_product(self, product: str) -> bool:
        return any(r.search(product) for r in self._product_res)

    def names_debian_package(self, package: str) -> bool:
        return any(r.match(package) for r in self._debian_res)


def _pair(name: str) -> tuple[str, str]:
    vendor, _, product = name.partition(":")
    return vendor, product


def _strings(entry: dict[str, object], name: str) -> tuple[str, ...]:
    value = entry.get(name, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"products.toml: {entry.get('key')}: {name} must be a list of strings")
    return tuple(cast(list[str], value))


def _entry(entry: dict[str, object]) -> ProductAlias:
    key = entry.get("key")
    if not isinstance(key, str):
        raise ValueError(f"products.toml: entry without a key: {entry}")
    scheme = str(entry.get("versions", "generic"))
    if scheme not in _SCHEMES:
        raise ValueError(f"products.toml: {key}: unknown version scheme {scheme!r}")
    rule_name = entry.get("version_rule")
    rule = VERSION_RULES[str(rule_name)] if rule_name is not None else None
    marker = entry.get("version_marker")
    return ProductAlias(
        key=key,
        nvd=_strings(entry, "nvd"),
        nmap_cpes=_strings(entry, "nmap_cpes"),
        nmap_products=_strings(entry, "nmap_products"),
        version_rule=rule,
        version_marker=str(marker) if marker is not None else None,
        note=str(entry.get("note", "")),
        cve5=_strings(entry, "cve5"),
        cve5_packages=_strings(entry, "cve5_packages"),
        other_cpes=_strings(entry, "other_cpes"),
        debian=_strings(entry, "debian"),
        versions=cast(VersionScheme, scheme),
        words=tuple(w.lower() for w in _strings(entry, "words")),
    )


def load_registry(text: str) -> tuple[ProductAlias, ...]:
    """Parse a registry file's text (ValueError naming the entry when it is malformed)."""
    data = tomllib.loads(text)
    entries = data.get("product", [])
    if not isinstance(entries, list):
        raise ValueError("products.toml: expected [[product]] tables")
    return tuple(_entry(e) for e in entries)


ALIASES: tuple[ProductAlias, ...] = load_registry(
    resources.files("flanscan").joinpath("data/products.toml").read_text(encoding="utf-8")
)

_BY_NMAP_CPE: dict[tuple[str, str], ProductAlias] = {
    _pair(n): a for a in ALIASES for n in a.nmap_cpes
}
_BY_NVD: dict[tuple[str, str], ProductAlias] = {_pair(n): a for a in ALIASES for n in a.nvd}
_BY_KEY: dict[str, ProductAlias] = {a.key: a for a in ALIASES}
_BY_NVD_NAMES: dict[tuple[tuple[str, str], ...], ProductAlias] = {a.nvd_names: a for a in ALIASES}


def alias_for_cpe(vendor: str, product: str) -> ProductAlias | None:
    """The entry for a `vendor:product` from Nmap (or already in NVD form); None if unlisted."""
    key = (vendor.lower(), product.lower())
    return _BY_NMAP_CPE.get(key) or _BY_NVD.get(key)


def alias_for_nvd_names(names: tuple[tuple[str, str], ...]) -> ProductAlias | None:
    """The entry whose NVD names are exactly `names` (how a detected product refers to it)."""
    return _BY_NVD_NAMES.get(names)


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
