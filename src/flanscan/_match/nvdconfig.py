"""NVD configurations (CVE API 2.0 `configurations`) evaluated for one detected product.

A configuration is a boolean expression: nodes of `cpeMatch` entries joined by the node's
operator, nodes joined by the configuration's operator, either of them possibly negated.
Each entry is judged against the detected product:

- HIT: it names the product (same part, vendor, product) and the detected version, update and
  other attributes fall inside it;
- MISS: it names the product but the detected version is outside it;
- OTHER: it names something a banner cannot show (an operating system, hardware, another
  application) - unknown.

The expression is then evaluated in three-valued logic. A CVE applies when the configuration is
not false and a HIT on a `vulnerable: true` entry outside a negated node carries it; the nodes
left unknown (the "running on Windows" side of an AND) become platform conditions in the
evidence, since a banner cannot confirm them. Configurations that never name the product
(operating-system-only ones) therefore never match an application.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from flanscan._match.cpe import (
    ANY,
    EXTRA_ATTRIBUTES,
    NA,
    Cpe,
    attribute_relation,
    parse_cpe23,
    wildcard_match,
)
from flanscan._match.versions import (
    compare_versions,
    is_post_release_update,
    normalize_update,
    split_update,
)

_TRUE, _FALSE, _UNKNOWN = 1, 0, -1
_HIT, _MISS, _OTHER = "hit", "miss", "other"
_P_UPDATE = re.compile(r"^p\d+$")
_MAX_LISTED = 6  # platform entries spelled out in one condition before "and N more"


@dataclass(frozen=True, slots=True, eq=False)
class MatchEntry:
    """One `cpeMatch` entry, parsed once (and shared: compared by identity)."""

    criteria: str
    cpe: Cpe
    vulnerable: bool
    start_including: str | None = None
    start_excluding: str | None = None
    end_including: str | None = None
    end_excluding: str | None = None

    @property
    def has_range(self) -> bool:
        return any(
            (self.start_including, self.start_excluding, self.end_including, self.end_excluding)
        )

    def range_text(self) -> str:
        """The versions this entry covers: `< 9.3p2`, `>= 2.4.0, <= 2.4.49`, `= 9.2p1`."""
        cpe = self.cpe
        if self.has_range:
            parts = []
            if self.start_including:
                parts.append(f">= {self.start_including}")
            if self.start_excluding:
                parts.append(f"> {self.start_excluding}")
            if self.end_including:
                parts.append(f"<= {self.end_including}")
            if self.end_excluding:
                parts.append(f"< {self.end_excluding}")
            text = ", ".join(parts)
        elif cpe.version == ANY:
            text = "any version"
        elif cpe.version == NA:
            return "no version (-)"
        elif _P_UPDATE.match(cpe.update):
            return f"= {cpe.version}{cpe.update}"
        else:
            text = f"= {cpe.version}"
        if cpe.update == NA:
            text += " (no update)"
        elif cpe.update != ANY:
            text += f" (update {cpe.update})"
        return text

    def describe(self) -> str:
        """The criteria with its range, for platform conditions."""
        if self.has_range:
            return f"{self.criteria} {self.range_text()}"
        return self.criteria


@dataclass(frozen=True, slots=True, eq=False)
class Node:
    """A node: `entries` may name the product; `others` (raw `cpeMatch` dicts) cannot."""

    operator: str  # "AND" | "OR"
    negate: bool
    entries: tuple[MatchEntry, ...]
    others: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True, eq=False)
class Configuration:
    operator: str  # "AND" | "OR"
    negate: bool
    nodes: tuple[Node, ...]
    # Equal for configurations that evaluate alike for the product (same entries naming it,
    # same shape); evaluation results are shared between them. -1: not shared.
    key: int = -1


def _bound(raw: dict[str, Any], key: str) -> str | None:
    value = raw.get(key)
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def _entry(raw: dict[str, Any]) -> MatchEntry | None:
    criteria = raw.get("criteria")
    if not isinstance(criteria, str):
        return None
    cpe = parse_cpe23(criteria)
    if cpe is None:
        return None
    return MatchEntry(
        criteria=criteria,
        cpe=cpe,
        vulnerable=raw.get("vulnerable") is True,
        start_including=_bound(raw, "versionStartIncluding"),
        start_excluding=_bound(raw, "versionStartExcluding"),
        end_including=_bound(raw, "versionEndIncluding"),
        end_excluding=_bound(raw, "versionEndExcluding"),
    )


def _operator(raw: object) -> str:
    return "AND" if isinstance(raw, str) and raw.upper() == "AND" else "OR"


def _names_product(
    criteria: str, prefixes: tuple[str, ...], names: frozenset[tuple[str, str]]
) -> bool:
    if criteria.startswith(prefixes):
        return True
    if "\\" in criteria or not criteria.islower():  # escaped or odd case: parse to be sure
        cpe = parse_cpe23(criteria)
        return cpe is not None and cpe.part == "a" and (cpe.vendor, cpe.product) in names
    return False


class ConfigParser:
    """Parses configurations for one product, sharing identical entries and shapes.

    Only entries naming the product are parsed; the others are kept raw (for the product they
    can only be unknown, and are spelled out only in platform conditions). Configurations that
    evaluate alike for the product get the same `key`, so `evaluate` computes them once.
    """

    def __init__(self, names: Iterable[tuple[str, str]] | None = None) -> None:
        self.names = frozenset(names) if names is not None else None
        self.prefixes = tuple(f"cpe:2.3:a:{v}:{p}:" for v, p in self.names or ())
        self._entries: dict[tuple[object, ...], MatchEntry | None] = {}
        self._shapes: dict[tuple[object, ...], int] = {}

    def _entry(self, m: dict[str, Any]) -> MatchEntry | None:
        key = (
            m.get("criteria"),
            m.get("vulnerable"),
            m.get("versionStartIncluding"),
            m.get("versionStartExcluding"),
            m.get("versionEndIncluding"),
            m.get("versionEndExcluding"),
        )
        try:
            return self._entries[key]
        except KeyError:
            entry = self._entries[key] = _entry(m)
            return entry
        except TypeError:  # unhashable junk in a malformed record
            return None

    def parse(self, raw: Sequence[dict[str, Any]] | None) -> tuple[Configuration, ...]:
        """Parse one CVE's `configurations`; malformed parts are skipped, never raised on."""
        names, prefixes = self.names, self.prefixes
        configs: list[Configuration] = []
        for conf in raw or ():
            if not isinstance(conf, dict):
                continue
            nodes: list[Node] = []
            for node in conf.get("nodes") or ():
                if not isinstance(node, dict):
                    continue
                entries: list[MatchEntry] = []
                others: list[dict[str, Any]] = []
                for m in node.get("cpeMatch") or ():
                    try:
                        criteria = m["criteria"]
                        mine = names is None or criteria.startswith(prefixes)
                    except (TypeError, KeyError, AttributeError):
                        continue
                    if (
                        not mine
                        and names is not None
                        and not _names_product(criteria, prefixes, names)
                    ):
                        others.append(m)
                        continue
                    e = self._entry(m)
                    if e is not None:
                        entries.append(e)
                nodes.append(
                    Node(
                        _operator(node.get("operator")),
                        node.get("negate") is True,
                        tuple(entries),
                        tuple(others),
                    )
                )
            if not nodes:
                continue
            operator, negate = _operator(conf.get("operator")), conf.get("negate") is True
            shape = (
                operator,
                negate,
                tuple((n.operator, n.negate, n.entries, len(n.others)) for n in nodes),
            )
            key = self._shapes.setdefault(shape, len(self._shapes))
            configs.append(Configuration(operator, negate, tuple(nodes), key))
        return tuple(configs)


def parse_configurations(
    raw: Sequence[dict[str, Any]] | None, names: Iterable[tuple[str, str]] | None = None
) -> tuple[Configuration, ...]:
    """Parse a CVE's `configurations` array (see `ConfigParser`)."""
    return ConfigParser(names).parse(raw)


# --------------------------------------------------------------------------- the detected side


@dataclass(frozen=True, slots=True)
class Target:
    """The detected product as the configurations see it.

    `version` is the full upstream version (`9.2p1`), `base` and `update` its NVD split
    (`9.2`, `p1`; update None = NA, the release has no update). `version` None means unknown:
    every entry naming the product then counts, for a product-only match.
    """

    names: frozenset[tuple[str, str]]  # NVD (vendor, product) names of the product
    version: str | None
    base: str | None = None
    update: str | None = None
    extras: tuple[str, ...] = (ANY,) * 6  # edition ... other, from Nmap's CPE (usually ANY)

    @classmethod
    def of(
        cls,
        names: Iterable[tuple[str, str]],
        version: str | None,
        extras: tuple[str, ...] = (ANY,) * 6,
    ) -> Target:
        """Build a target, splitting the version into the NVD's version and update."""
        if version is None:
            return cls(frozenset(names), None, None, None, extras)
        base, update = split_update(version)
        return cls(frozenset(names), version, base, update, extras)


@dataclass(frozen=True, slots=True)
class EntryResult:
    outcome: str  # _HIT | _MISS | _OTHER
    conditions: tuple[str, ...] = ()
    uncomparable: str | None = None  # an NVD bound that could not be compared


_OTHER_RESULT = EntryResult(_OTHER)
_MISS_RESULT = EntryResult(_MISS)


def _version_for_bound(target: Target, bound: str) -> str:
    """Which form of the detected version a bound compares with.

    A bound written with an update (`9.3p2`) compares with the full version; a bare bound
    (`7.7`) compares with the NVD version field when the detected update is a patch level,
    so that "through 7.7" covers 7.7p1 and "before 9.8" excludes 9.8p1, as in the NVD. A
    pre-release update (`1.0rc1`) keeps the full version: it comes before `1.0`.
    """
    assert target.version is not None
    if split_update(bound)[1] is not None:
        return target.version
    if is_post_release_update(target.update) and target.base is not None:
        return target.base
    return target.version


def _in_range(entry: MatchEntry, target: Target) -> tuple[bool, str | None]:
    checks = (
        (entry.start_including, (0, 1)),
        (entry.start_excluding, (1,)),
        (entry.end_including, (-1, 0)),
        (entry.end_excluding, (-1,)),
    )
    for bound, allowed in checks:
        if bound is None:
            continue
        c = compare_versions(_version_for_bound(target, bound), bound)
        if c is None:
            return False, bound
        if c not in allowed:
            return False, None
    return True, None


def judge_entry(entry: MatchEntry, target: Target) -> EntryResult:
    """HIT, MISS or OTHER for one entry (see the module docstring)."""
    cpe = entry.cpe
    if cpe.part != "a" or (cpe.vendor, cpe.product) not in target.names:
        return _OTHER_RESULT
    conditions: list[str] = []
    for name, source, tval in zip(EXTRA_ATTRIBUTES, cpe.extras(), target.extras, strict=True):
        rel = attribute_relation(source, tval, name in cpe.wildcards)
        if rel == "disjoint":
            return _MISS_RESULT
        if rel == "subset" and source != NA:
            conditions.append(f"{name} {source}")  # e.g. nginx "sw_edition open_source"
    if target.version is None:  # version unknown: any entry naming the product may apply
        return EntryResult(_HIT, tuple(conditions))
    # The update field.
    if cpe.update != ANY:
        if cpe.update == NA:
            if target.update is not None:
                return _MISS_RESULT
        elif target.update is None or normalize_update(cpe.update) != target.update:
            if "update" not in cpe.wildcards:
                return _MISS_RESULT
    # The version field.
    if cpe.version == NA:
        return _MISS_RESULT  # NA is disjoint from any concrete version (NISTIR 7696, 6-2)
    if cpe.version != ANY:
        if "version" in cpe.wildcards:
            ok = wildcard_match(cpe.version, target.version.lower()) or (
                target.base is not None and wildcard_match(cpe.version, target.base.lower())
            )
            return EntryResult(_HIT, tuple(conditions)) if ok else _MISS_RESULT
        # A listed version: written with its update (`7.2p2`) it compares with the full
        # detected version, otherwise with the NVD version field (`9.3` of `9.3p1`).
        mine = target.version if split_update(cpe.version)[1] else (target.base or target.version)
        c = compare_versions(mine, cpe.version)
        if c is None:
            return EntryResult(_MISS, uncomparable=cpe.version)
        if c != 0:
            return _MISS_RESULT
    if entry.has_range:
        ok, bad = _in_range(entry, target)
        if not ok:
            return EntryResult(_MISS, uncomparable=bad)
    return EntryResult(_HIT, tuple(conditions))


@dataclass(frozen=True, slots=True)
class ConfigMatch:
    """A configuration that makes the detected product vulnerable."""

    hits: tuple[tuple[MatchEntry, tuple[str, ...]], ...]  # vulnerable entries hit + conditions
    platform_conditions: tuple[str, ...]


def _raw_describe(m: dict[str, Any]) -> str:
    criteria = str(m.get("criteria"))
    parts = [
        f"{op} {_bound(m, key)}"
        for key, op in (
            ("versionStartIncluding", ">="),
            ("versionStartExcluding", ">"),
            ("versionEndIncluding", "<="),
            ("versionEndExcluding", "<"),
        )
        if _bound(m, key)
    ]
    return f"{criteria} {', '.join(parts)}" if parts else criteria


def _describe_unknown(described: Sequence[tuple[str, str]], negate: bool, operator: str) -> str:
    """One platform condition from (part, description) of a node's unknown entries."""
    first = described[0][0]
    verb = {"o": "running on", "h": "on hardware"}.get(first, "with")
    listed = [d for _, d in described[:_MAX_LISTED]]
    if len(described) > _MAX_LISTED:
        listed.append(f"and {len(described) - _MAX_LISTED} more")
    if len(described) == 1:
        text = f"{verb} {listed[0]}"
    elif operator == "AND":
        text = f"{verb} all of: " + "; ".join(listed)
    else:
        text = f"{verb} one of: " + "; ".join(listed)
    return f"not {text}" if negate else text


def _part(criteria: object) -> str:
    fields = str(criteria).split(":", 3)
    return fields[2] if len(fields) > 3 else "a"


@dataclass(frozen=True, slots=True)
class _Eval:
    total: int
    hits: tuple[tuple[MatchEntry, tuple[str, ...]], ...]
    unknown: tuple[tuple[int, tuple[int, ...]], ...]  # (node index, its entries judged OTHER)
    uncomparable: frozenset[str]


def _evaluate(config: Configuration, target: Target) -> _Eval:
    uncomparable: set[str] = set()
    node_values: list[int] = []
    hits: list[tuple[MatchEntry, tuple[str, ...]]] = []
    unknown: list[tuple[int, tuple[int, ...]]] = []
    for index, node in enumerate(config.nodes):
        results = [judge_entry(e, target) for e in node.entries]
        outcomes = [r.outcome for r in results]
        outcomes.extend(_OTHER for _ in node.others)
        for r in results:
            if r.uncomparable:
                uncomparable.add(r.uncomparable)
        if node.operator == "AND":
            value = (
                _FALSE
                if _MISS in outcomes
                else _TRUE
                if outcomes and all(o == _HIT for o in outcomes)
                else _UNKNOWN
            )
        else:
            value = (
                _TRUE
                if _HIT in outcomes
                else _FALSE
                if all(o == _MISS for o in outcomes)
                else _UNKNOWN
            )
        if node.negate and value != _UNKNOWN:
            value = _TRUE - value
        node_values.append(value)
        if not node.negate and value != _FALSE:
            hits.extend(
                (e, r.conditions)
                for e, r in zip(node.entries, results, strict=True)
                if r.outcome == _HIT and e.vulnerable
            )
        if value == _UNKNOWN:
            judged_other = tuple(i for i, r in enumerate(results) if r.outcome == _OTHER)
            if judged_other or node.others:
                unknown.append((index, judged_other))
    if config.operator == "AND":
        total = (
            _FALSE
            if _FALSE in node_values
            else _TRUE
            if all(v == _TRUE for v in node_values)
            else _UNKNOWN
        )
    else:
        total = (
            _TRUE
            if _TRUE in node_values
            else _FALSE
            if all(v == _FALSE for v in node_values)
            else _UNKNOWN
        )
    if config.negate and total != _UNKNOWN:
        total = _TRUE - total
    return _Eval(total, tuple(hits), tuple(unknown), frozenset(uncomparable))


def evaluate(
    config: Configuration, target: Target, memo: dict[int, _Eval] | None = None
) -> tuple[ConfigMatch | None, frozenset[str]]:
    """Whether `config` makes the target vulnerable, with its conditions; also the NVD bounds
    that could not be compared with the detected version (for explanations).

    `memo` (one per target) shares results between configurations with the same `key`.
    """
    result: _Eval | None = None
    if memo is not None and config.key >= 0:
        result = memo.get(config.key)
    if result is None:
        result = _evaluate(config, target)
        if memo is not None and config.key >= 0:
            memo[config.key] = result
    if result.total == _FALSE or not result.hits:
        return None, result.uncomparable
    conditions: tuple[str, ...] = ()
    # In an OR configuration that our hit already makes true, the unknown siblings are
    # alternatives, not conditions.
    if result.total == _UNKNOWN:
        parts = []
        for index, judged in result.unknown:
            node = config.nodes[index]
            described = [(node.entries[i].cpe.part, node.entries[i].describe()) for i in judged] + [
                (_part(m.get("criteria")), _raw_describe(m)) for m in node.others
            ]
            parts.append(_describe_unknown(described, node.negate, node.operator))
        conditions = tuple(parts)
    return ConfigMatch(result.hits, conditions), result.uncomparable
