"""Which source decides, per (CVE, product): the matching tiers beyond NVD configurations.

Order of trust (docs/matching.md has examples from real records):
1. analysed NVD configurations (the matcher's own evaluation);
2. an anchore override: replaces the NVD's configurations for its CVE, as Grype does;
3. the CVE 5 record's CNA container: `cpeApplicability` if it names the product, else the
   `affected` entries naming it (registry spellings, package name, or CPEs);
4. the CISA ADP container's `affected` entries, only when they pass the sanity checks;
5. a distribution-derived upstream fix (Debian unstable's fixed version, revision dropped);
6. description text ("Memcached before 1.6.22"): the `possible` tier (`description.py`).

The first tier that says anything about the product decides, whatever it says: a lower tier
never widens a higher one. Explicit negative statements win over weaker positives: a CNA/ADP
`unaffected` (or `defaultStatus: unaffected`) decides "not affected" at its tier, and Debian's
`<not-affected>` for unstable (the package never had the code) overrules ADP and distribution
positives, and description text (the `possible` tier). Only known versions are matched here
(product-only matching stays NVD-only).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flanscan._lookup import AffectedData, TierLookup, UnstableFix
from flanscan._match.aliases import ProductAlias, spelling_key
from flanscan._match.cve5 import Verdict, adp_entry_is_sane, evaluate_entry
from flanscan._match.description import DescriptionRange, description_affects, read_description
from flanscan._match.versions import compare_versions
from flanscan._model import MatchSource

# (criteria or spelling, range text, platform conditions, record)
Evidence = tuple[str, str, tuple[str, ...], str | None]
# Evaluates NVD-shaped configurations for the product: the evidence of the entries that match.
ConfigEvaluator = Callable[[Sequence[dict[str, Any]]], list[tuple[str, str, tuple[str, ...]]]]

_EPOCH = re.compile(r"^\d+:")
_DEB_SUFFIX = re.compile(r"[+~].*$")
_EDITION = re.compile(r"-s\d+\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class TierHit:
    cve_id: str
    source: MatchSource
    evidence: tuple[Evidence, ...]


@dataclass
class TierOutcome:
    """Tier findings for one product version, and what the matcher should note."""

    hits: dict[str, TierHit] = field(default_factory=dict)
    overridden: set[str] = field(default_factory=set)  # CVEs whose NVD result is replaced
    not_affected: dict[str, str] = field(default_factory=dict)  # CVE -> the negative statement
    unparsable: int = 0
    refused_adp: list[str] = field(default_factory=list)


def index_names(alias: ProductAlias | None, nvd_names: Iterable[tuple[str, str]]) -> list[str]:
    """The `affected_name` keys under which sources may name this product."""
    cpes = set(nvd_names)
    names: set[str] = set()
    if alias is not None:
        cpes |= alias.cpe_names
        names |= {f"s:{k}" for k in alias.cve5_keys}
        names |= {f"p:{' '.join(p.split()).lower()}" for p in alias.cve5_packages}
    names |= {f"c:{v}:{p}" for v, p in cpes}
    return sorted(names)


def upstream_of_debian(version: str) -> str | None:
    """`1:10.0p1-1` -> `10.0p1`, `1.26.0-2` -> `1.26.0`, `2.3.19.1+dfsg1-2` -> `2.3.19.1`."""
    text = _EPOCH.sub("", version.strip())
    if "-" in text:
        text = text.rsplit("-", 1)[0]
    text = _DEB_SUFFIX.sub("", text)
    return text if text and text[0].isdigit() else None


def _range_text(found: DescriptionRange) -> str:
    if found.ranges:
        return "; ".join(b.text() for b in found.ranges)
    return "fixed in " + ", ".join(found.fixes) + " (per release branch)"


def _cpe_pairs(cpes: Iterable[str]) -> set[tuple[str, str]]:
    pairs = set()
    for cpe in cpes:
        fields = cpe.split(":")
        if cpe.startswith("cpe:2.3:") and len(fields) > 4:
            pairs.add((fields[3].lower(), fields[4].lower()))
        elif cpe.startswith("cpe:/") and len(fields) > 3:
            pairs.add((fields[2].lower(), fields[3].lower()))
    return pairs


def _names_product(
    entry: dict[str, Any], alias: ProductAlias | None, cpes: set[tuple[str, str]]
) -> bool:
    if _cpe_pairs(entry.get("cpes") or ()) & cpes:
        return True
    if alias is None:
        return False
    vendor, product = entry.get("vendor"), entry.get("product")
    if vendor or product:
        return spelling_key(vendor, product) in alias.cve5_keys
    package = " ".join(str(entry.get("packageName") or "").split()).lower()
    return bool(package) and package in alias.cve5_package_keys


def _spelling(entry: dict[str, Any]) -> str:
    if entry.get("vendor") or entry.get("product"):
        return f"{entry.get('vendor') or 'n/a'} / {entry.get('product') or 'n/a'}"
    return f"package {entry.get('packageName')}"


def _record(data: dict[str, Any], container: str) -> str:
    who = f"CNA {data.get('assigner')}" if container == "cna" else "CISA ADP"
    return f"CVE 5 record {data.get('file')} ({who}, updated {str(data.get('date'))[:10]})"


def _entries_verdict(
    entries: list[dict[str, Any]], version: str, alias: ProductAlias | None
) -> tuple[str, list[tuple[dict[str, Any], Verdict]], int]:
    """Combined status of the entries naming the product: affected > unaffected > unknown."""
    scheme = alias.versions if alias is not None else "generic"
    verdicts = [(e, evaluate_entry(e, version, scheme)) for e in entries]
    unparsable = sum(v.unparsable for _, v in verdicts)
    for status in ("affected", "unaffected"):
        chosen = [(e, v) for e, v in verdicts if v.status == status]
        if chosen:
            return status, chosen, unparsable
    return "unknown", verdicts, unparsable


class TierMatcher:
    """Evaluates the tiers for one product version (see the module docstring)."""

    def __init__(
        self,
        lookup: TierLookup,
        alias: ProductAlias | None,
        nvd_names: tuple[tuple[str, str], ...],
        evaluate_configs: ConfigEvaluator,
    ) -> None:
        self.lookup = lookup
        self.alias = alias
        self.nvd_names = nvd_names
        self.cpes = set(nvd_names) | (alias.cpe_names if alias is not None else set())
        self._evaluate_configs = evaluate_configs
        self._version = ""
        # Per product, not per version: what each record says about this product (the
        # matcher keeps one TierMatcher per product and asks it for every version).
        self._statements: dict[str, dict[str, AffectedData]] | None = None
        self._debian_rows: dict[str, list[UnstableFix]] | None = None
        self._entries: dict[tuple[str, str], tuple[list[dict[str, Any]], str | None]] = {}
        self._applicable: dict[str, bool] = {}
        self._records: dict[tuple[str, str], str] = {}

    def use(self, evaluate_configs: ConfigEvaluator) -> None:
        """The configuration evaluator for the next version asked for."""
        self._evaluate_configs = evaluate_configs

    def evaluate_configs(
        self, raw: Sequence[dict[str, Any]]
    ) -> list[tuple[str, str, tuple[str, ...]]]:
        found = self._evaluate_configs(raw)
        if self.alias is None or self.alias.versions != "bind":
            return found
        # BIND's Subscription Edition ("-S1", CPE sw_edition supported_preview) is another
        # build: its entries match only -S banners, the plain ones only plain banners.
        edition = bool(_EDITION.search(self._version))
        return [
            e
            for e in found
            if bool(_EDITION.search(e[1]) or "supported_preview" in e[0]) == edition
        ]

    def _debian(self) -> dict[str, list[UnstableFix]]:
        if self._debian_rows is None:
            self._debian_rows = self._read_debian()
        return self._debian_rows

    def _read_debian(self) -> dict[str, list[UnstableFix]]:
        alias = self.alias
        if alias is None or not alias.debian:
            return {}
        packages = [p for p in self.lookup.debian_packages() if alias.names_debian_package(p)]
        out: dict[str, list[UnstableFix]] = {}
        for row in self.lookup.unstable_fixes(packages):
            out.setdefault(row.cve_id, []).append(row)
        return out

    def match(
        self, version: str, nvd_decided: set[str], *, descriptions: bool = True
    ) -> TierOutcome:
        """Tier findings for `version`; `nvd_decided`: CVEs whose NVD configurations name it;
        `descriptions`: also the description-text tier."""
        outcome = TierOutcome()
        self._version = version
        if self._statements is None:
            self._statements = {}
            names = index_names(self.alias, self.nvd_names)
            for item in self.lookup.affected_candidates(names):
                self._statements.setdefault(item.cve_id, {})[item.source] = item
        statements = self._statements
        debian = self._debian()
        for cve_id in sorted(statements.keys() | debian.keys()):
            by_source = statements.get(cve_id, {})
            override = by_source.get("overrides")
            if override is not None:
                outcome.overridden.add(cve_id)
                self._override(cve_id, override.data, outcome)
                continue
            if cve_id in nvd_decided:
                continue
            decided = False
            record = by_source.get("cve5")
            if record is not None:
                decided = self._cve5(cve_id, record.data, version, outcome)
            rows = debian.get(cve_id)
            negative = next((r for r in rows if r.fixed_version == "0"), None) if rows else None
            hit = outcome.hits.get(cve_id)
            if negative is not None and (hit is None or hit.source is MatchSource.ADP):
                outcome.hits.pop(cve_id, None)
                why = f"Debian: {negative.package} <not-affected>"
                outcome.not_affected.setdefault(
                    cve_id, why + (f" ({negative.note})" if negative.note else "")
                )
                continue
            if not decided and cve_id in debian:
                self._distribution(cve_id, debian[cve_id], version, outcome)
        if descriptions:
            self._descriptions(version, nvd_decided, statements.keys() | debian.keys(), outcome)
        return outcome

    def _descriptions(
        self, version: str, nvd_decided: set[str], spoken: set[str], outcome: TierOutcome
    ) -> None:
        """The `possible` tier, for CVEs no other source says anything about for the product."""
        if self.alias is None or not self.alias.words:
            return
        for cve_id, text in self.lookup.description_candidates(self.alias.key):
            if cve_id in nvd_decided or cve_id in spoken or cve_id in outcome.hits:
                continue
            found = read_description(text, self.alias.words)
            if found is None:
                continue
            if description_affects(found, version):
                evidence = (
                    (f"description: {found.phrase!r}", _range_text(found), (), "description text"),
                )
                outcome.hits[cve_id] = TierHit(cve_id, MatchSource.DESCRIPTION, evidence)

    def _override(self, cve_id: str, data: dict[str, Any], outcome: TierOutcome) -> None:
        found = self.evaluate_configs(data.get("configurations") or ())
        if found:
            date = str(data.get("date"))[:10] if data.get("date") else "no date"
            record = f"nvd-data-overrides {data.get('file')} ({date})"
            evidence = tuple((c, r, cond, record) for c, r, cond in found)
            outcome.hits[cve_id] = TierHit(cve_id, MatchSource.OVERRIDE, evidence)

    def _cve5(self, cve_id: str, data: dict[str, Any], version: str, outcome: TierOutcome) -> bool:
        """CNA, then ADP; True when one of them decided for the product."""
        applicability = data.get("applicability") or []
        applies = self._applicable.get(cve_id)
        if applies is None:
            applies = self._applicable[cve_id] = bool(
                applicability
                and _cpe_pairs(
                    m.get("criteria", "")
                    for conf in applicability
                    for node in conf.get("nodes") or ()
                    for m in node.get("cpeMatch") or ()
                )
                & set(self.nvd_names)
            )
        if applies:
            found = self.evaluate_configs(applicability)
            if found:
                record = _record(data, "cna") + ", cpeApplicability"
                evidence = tuple((c, r, cond, record) for c, r, cond in found)
                outcome.hits[cve_id] = TierHit(cve_id, MatchSource.CNA, evidence)
            return True
        for container, source in (("cna", MatchSource.CNA), ("adp", MatchSource.ADP)):
            entries, refusal = self._product_entries(cve_id, data, container)
            if not entries:
                continue
            if refusal is not None:
                outcome.refused_adp.append(f"{cve_id}: CISA ADP {refusal}")
                return False
            status, chosen, unparsable = _entries_verdict(entries, version, self.alias)
            outcome.unparsable += unparsable
            if status == "affected":
                record_text = self._records.get((cve_id, container))
                if record_text is None:
                    record_text = self._records[(cve_id, container)] = _record(data, container)
                evidence = tuple((_spelling(e), v.range_text, (), record_text) for e, v in chosen)
                outcome.hits[cve_id] = TierHit(cve_id, source, evidence[:3])
            elif status == "unaffected":
                e, v = chosen[0]
                outcome.not_affected[cve_id] = (
                    f"{_record(data, container)}: {_spelling(e)} {v.range_text}: unaffected"
                )
            return True
        return False

    def _product_entries(
        self, cve_id: str, data: dict[str, Any], container: str
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A container's entries naming the product, and why ADP ones are refused (cached)."""
        key = (cve_id, container)
        hit = self._entries.get(key)
        if hit is None:
            entries = [
                e for e in data.get(container) or () if _names_product(e, self.alias, self.cpes)
            ]
            refusal = None
            if container == "adp":
                refusal = next(
                    (r for r in (adp_entry_is_sane(e, self.cpes) for e in entries) if r), None
                )
            hit = self._entries[key] = (entries, refusal)
        return hit

    def _distribution(
        self, cve_id: str, rows: list[UnstableFix], version: str, outcome: TierOutcome
    ) -> None:
        for row in rows:
            if not row.fixed_version or row.fixed_version == "0":
                continue
            fix = upstream_of_debian(row.fixed_version)
            if fix is None:
                outcome.unparsable += 1
                continue
            order = compare_versions(version, fix)
            if order is None:
                outcome.unparsable += 1
                continue
            if order < 0:
                evidence = (
                    (
                        f"Debian source package {row.package}",
                        f"< {fix} (Debian unstable fixed in {row.fixed_version})",
                        (),
                        "Debian security tracker, unstable",
                    ),
                )
                outcome.hits[cve_id] = TierHit(cve_id, MatchSource.DISTRIBUTION, evidence)
            return
