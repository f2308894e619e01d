"""NVD configuration semantics that the sample has no record for (negated nodes, AND nodes,
start-excluding bounds on a service, wildcards), and CPE parsing. Configurations here are
written the way the CVE API 2.0 publishes them."""

from __future__ import annotations

from typing import Any

import pytest

from flanscan._match.cpe import ANY, NA, attribute_relation, parse_cpe22, parse_cpe23
from flanscan._match.nvdconfig import Target, evaluate, parse_configurations

OPENSSH = frozenset({("openbsd", "openssh")})


def m(criteria: str, vulnerable: bool = True, **bounds: str) -> dict[str, Any]:
    return {"vulnerable": vulnerable, "criteria": criteria, "matchCriteriaId": "X", **bounds}


def node(*matches: dict[str, Any], operator: str = "OR", negate: bool = False) -> dict[str, Any]:
    return {"operator": operator, "negate": negate, "cpeMatch": list(matches)}


def run(conf: dict[str, Any], version: str | None) -> Any:
    (parsed,) = parse_configurations([conf])
    found, _ = evaluate(parsed, Target.of(OPENSSH, version))
    return found


APP = "cpe:2.3:a:openbsd:openssh:*:*:*:*:*:*:*:*"
WINDOWS = "cpe:2.3:o:microsoft:windows:*:*:*:*:*:*:*:*"
LINUX = "cpe:2.3:o:linux:linux_kernel:*:*:*:*:*:*:*:*"


def test_negated_platform_node_is_a_not_running_on_condition() -> None:
    conf = {
        "operator": "AND",
        "nodes": [node(m(APP, versionEndExcluding="9.0")), node(m(WINDOWS, False), negate=True)],
    }
    found = run(conf, "8.0p1")
    assert found is not None
    assert found.platform_conditions == (f"not running on {WINDOWS}",)
    assert run(conf, "9.0p1") is None


def test_product_inside_a_negated_node_is_not_a_vulnerable_match() -> None:
    conf = {"operator": "AND", "nodes": [node(m(LINUX)), node(m(APP), negate=True)]}
    assert run(conf, "8.0p1") is None


def test_configuration_level_negate() -> None:
    conf = {"negate": True, "nodes": [node(m(APP, versionEndExcluding="9.0"))]}
    # Negating a configuration that holds our hit makes it false for that version.
    assert run(conf, "8.0p1") is None


def test_and_node_needs_every_entry() -> None:
    conf = {"nodes": [node(m(APP, versionEndExcluding="9.0"), m(LINUX, False), operator="AND")]}
    found = run(conf, "8.0p1")
    assert found is not None and found.platform_conditions == (f"running on {LINUX}",)
    conf_two = {
        "nodes": [
            node(
                m(APP, versionEndExcluding="9.0"),
                m(WINDOWS, False),
                m(LINUX, False),
                operator="AND",
            )
        ]
    }
    found = run(conf_two, "8.0p1")
    assert found.platform_conditions == (f"running on all of: {WINDOWS}; {LINUX}",)


def test_product_only_as_the_platform_does_not_count() -> None:
    # "Plugin X running with OpenSSH": OpenSSH is vulnerable: false there.
    plugin = "cpe:2.3:a:example:plugin:*:*:*:*:*:*:*:*"
    conf = {"operator": "AND", "nodes": [node(m(plugin)), node(m(APP, False))]}
    assert run(conf, "8.0p1") is None
    assert run(conf, None) is None  # not even product-only


def test_or_configuration_with_other_products_has_no_conditions() -> None:
    conf = {"nodes": [node(m("cpe:2.3:a:example:other:*:*:*:*:*:*:*:*"), m(APP))]}
    found = run(conf, "1.0p1")
    assert found is not None and found.platform_conditions == ()


@pytest.mark.parametrize(
    ("bounds", "inside", "outside"),
    [
        ({"versionStartExcluding": "8.0"}, ["8.1p1", "9.0"], ["8.0", "8.0p1", "7.9p1"]),
        ({"versionStartIncluding": "8.0"}, ["8.0", "8.0p1"], ["7.9p1"]),
        ({"versionEndIncluding": "8.0"}, ["8.0", "8.0p1", "7.1"], ["8.1"]),
        ({"versionEndExcluding": "8.0"}, ["7.9p1"], ["8.0", "8.0p1"]),
        ({"versionEndExcluding": "8.0p2"}, ["8.0p1", "8.0"], ["8.0p2", "8.1"]),
    ],
)
def test_all_four_bounds(bounds: dict[str, str], inside: list[str], outside: list[str]) -> None:
    conf = {"nodes": [node(m(APP, **bounds))]}
    for v in inside:
        assert run(conf, v) is not None, v
    for v in outside:
        assert run(conf, v) is None, v


def test_wildcard_version_in_criteria() -> None:
    conf = {"nodes": [node(m("cpe:2.3:a:openbsd:openssh:8.*:*:*:*:*:*:*:*"))]}
    assert run(conf, "8.4p1") is not None
    assert run(conf, "9.0p1") is None


def test_any_version_without_bounds_is_every_version() -> None:
    conf = {"nodes": [node(m(APP))]}
    found = run(conf, "1.2p1")
    assert found is not None
    ((entry, _),) = found.hits
    assert entry.range_text() == "any version"


def test_unparsable_bound_never_matches_and_is_reported() -> None:
    (parsed,) = parse_configurations([{"nodes": [node(m(APP, versionEndExcluding="2021-03-03"))]}])
    found, uncomparable = evaluate(parsed, Target.of(OPENSSH, "8.0p1"))
    assert found is None and uncomparable == {"2021-03-03"}


def test_malformed_configurations_are_skipped_not_raised() -> None:
    parsed = parse_configurations(
        [{"nodes": [{"cpeMatch": [{"criteria": 42}, {"criteria": "not a cpe"}]}]}, "junk", {}]  # type: ignore[list-item]
    )
    assert all(not n.entries for c in parsed for n in c.nodes)


# --------------------------------------------------------------------------- CPE names


def test_nmap_uri_with_language_and_empty_version() -> None:
    cpe = parse_cpe22("cpe:/a:mysql:mysql::::es")
    assert cpe is not None
    assert (cpe.vendor, cpe.product, cpe.version, cpe.language) == ("mysql", "mysql", ANY, "es")


def test_nmap_uri_percent_encoding_and_packed_edition() -> None:
    cpe = parse_cpe22("cpe:/a:vendor:prod%21uct:1.0:beta:~~legacy~linux~x64~")
    assert cpe is not None
    assert cpe.product == "prod!uct" and cpe.update == "beta"
    assert (cpe.sw_edition, cpe.target_sw, cpe.target_hw) == ("legacy", "linux", "x64")


def test_formatted_string_escapes_and_logical_values() -> None:
    cpe = parse_cpe23(r"cpe:2.3:a:vendor:prod\:uct:1.0:-:*:*:open_source:*:*:*")
    assert cpe is not None
    assert cpe.product == "prod:uct" and cpe.update == NA and cpe.sw_edition == "open_source"


@pytest.mark.parametrize(
    ("source", "target", "relation"),
    [
        (ANY, ANY, "equal"),
        (ANY, "x", "superset"),
        (ANY, NA, "superset"),
        (NA, ANY, "subset"),
        (NA, NA, "equal"),
        (NA, "x", "disjoint"),
        ("x", ANY, "subset"),
        ("x", NA, "disjoint"),
        ("x", "x", "equal"),
        ("x", "y", "disjoint"),
    ],
)
def test_attribute_relations_follow_nistir_7696(source: str, target: str, relation: str) -> None:
    assert attribute_relation(source, target) == relation


def test_attributes_from_nmaps_cpe_must_not_contradict() -> None:
    german = ("*", "de", "*", "*", "*", "*")  # Nmap: cpe:/a:...::::de
    any_language = {"nodes": [node(m(APP))]}
    english_only = {"nodes": [node(m("cpe:2.3:a:openbsd:openssh:*:*:*:en:*:*:*:*"))]}
    (parsed_any,) = parse_configurations([any_language])
    (parsed_en,) = parse_configurations([english_only])
    assert evaluate(parsed_any, Target.of(OPENSSH, "8.0p1", german))[0] is not None
    assert evaluate(parsed_en, Target.of(OPENSSH, "8.0p1", german))[0] is None
    # Unknown on our side: matched, with the attribute as a condition.
    found, _ = evaluate(parsed_en, Target.of(OPENSSH, "8.0p1"))
    assert found is not None and found.hits[0][1] == ("language en",)


def test_parsing_for_a_product_keeps_other_entries_raw_and_shares_shapes() -> None:
    from flanscan._match.nvdconfig import ConfigParser

    conf = {
        "operator": "AND",
        "nodes": [node(m(APP, versionEndExcluding="9.0")), node(m(LINUX, False))],
    }
    parser = ConfigParser(OPENSSH)
    (a,) = parser.parse([conf])
    (b,) = parser.parse([conf])
    assert a.key == b.key >= 0
    assert [len(n.entries) for n in a.nodes] == [1, 0]
    assert a.nodes[1].others[0]["criteria"] == LINUX
    memo: dict[int, object] = {}
    found, _ = evaluate(a, Target.of(OPENSSH, "8.0p1"), memo)  # type: ignore[arg-type]
    again, _ = evaluate(b, Target.of(OPENSSH, "8.0p1"), memo)  # type: ignore[arg-type]
    assert found is not None and again is not None
    assert found.platform_conditions == again.platform_conditions == (f"running on {LINUX}",)
