"""The product registry's non-Nmap names, checked against the real records in cve-sources.

- every CVE 5 `affected` entry of the lab's upstream products in the real records is claimed by
  exactly the registry entry of that product (and nothing claims distributors' entries);
- every Debian source package named by the tracker records belongs to one entry;
- forks stay separate: Valkey's names never reach Redis's entry, and the reverse;
- a malformed registry is refused with a message naming the entry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import SHARED

from flanscan._match.aliases import ALIASES, alias_by_key, load_registry, spelling_key

SOURCES = SHARED / "cve-sources"

# (file, vendor / product as written) -> the registry key that must claim it (None: no product
# of ours, e.g. distributors' builds and commercial editions).
EXPECTED: dict[str, str | None] = {
    "f5 / nginx open source": "nginx",
    "f5 / nginx plus": None,
    "isc / bind 9": "bind",
    "apache software foundation / apache http server": "apache-httpd",
    "open-xchange gmbh / ox dovecot pro": "dovecot",
    "n/a / postgresql": "postgresql",
    "openbsd / openssh": "openssh",
    "redis / redis": "redis",
    "exim / exim": "exim",
    "n/a / mariadb": "mariadb",
    "red hat / red hat enterprise linux 9": None,
    "fedora / fedora": None,
    "n/a / n/a": None,
}


def _records() -> list[dict[str, Any]]:
    if not SOURCES.is_dir():
        pytest.skip(f"{SOURCES} is missing")
    return [json.loads(p.read_text()) for p in sorted(SOURCES.glob("cvelistV5/cves/*/*/*.json"))]


def _claimants(key: str) -> list[str]:
    return [a.key for a in ALIASES if key in a.cve5_keys]


def test_every_cna_spelling_in_the_real_records_is_claimed_as_expected() -> None:
    seen: set[str] = set()
    for record in _records():
        for entry in record["containers"]["cna"].get("affected", []):
            key = spelling_key(entry.get("vendor"), entry.get("product"))
            seen.add(key)
            if key in EXPECTED:
                want = EXPECTED[key]
                assert _claimants(key) == ([want] if want else []), key
            elif not key.startswith(("red hat /", "fedora /")):
                pytest.fail(f"{key}: a spelling of the real records this test does not know")
    assert {"f5 / nginx open source", "isc / bind 9", "n/a / postgresql"} <= seen


def test_adp_cpes_of_lab_products_are_known_names() -> None:
    # CISA ADP's CPEs: the right names are known, a wrong one (apache:apache_http_server) is not.
    httpd = alias_by_key("apache-httpd")
    assert ("apache", "http_server") in httpd.cpe_names
    assert ("apache", "apache_http_server") not in httpd.cpe_names
    assert ("open-xchange", "ox_dovecot_pro") in alias_by_key("dovecot").cpe_names


def test_debian_packages_of_the_tracker_records_belong_to_one_entry() -> None:
    if not SOURCES.is_dir():
        pytest.skip(f"{SOURCES} is missing")
    packages = set()
    for path in (SOURCES / "debian-tracker" / "CVE").glob("*.json"):
        for note in json.loads(path.read_text())["Annotations"]:
            if note.get("Type") == "package":
                packages.add(note["Package"])
    assert {"openssh", "nginx", "bind9", "apache2", "memcached", "postgresql-17"} <= packages
    for package in packages:
        owners = [a.key for a in ALIASES if a.names_debian_package(package)]
        assert len(owners) == 1, (package, owners)
    assert not alias_by_key("postgresql").names_debian_package("postgresql-common")


def test_forks_stay_separate_products() -> None:
    redis, valkey = alias_by_key("redis"), alias_by_key("valkey")
    assert not redis.cpe_names & valkey.cpe_names
    assert not redis.cve5_keys & valkey.cve5_keys
    assert not redis.names_debian_package("valkey")
    assert not valkey.names_debian_package("redis")


def test_no_name_belongs_to_two_products() -> None:
    for attr in ("cpe_names", "cve5_keys"):
        owner: dict[object, str] = {}
        for alias in ALIASES:
            for name in getattr(alias, attr):
                assert owner.setdefault(name, alias.key) == alias.key, (attr, name)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[product]]\nnvd = ["a:b"]\n', "entry without a key"),
        ('[[product]]\nkey = "x"\nnvd = "a:b"\n', "x: nvd must be a list"),
        ('[[product]]\nkey = "x"\nversions = "semver"\n', "unknown version scheme"),
    ],
)
def test_a_malformed_registry_names_the_entry(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        load_registry(text)


def test_the_registry_file_is_the_one_loaded() -> None:
    path = Path(__file__).parent.parent / "src" / "flanscan" / "data" / "products.toml"
    assert [a.key for a in load_registry(path.read_text())] == [a.key for a in ALIASES]
