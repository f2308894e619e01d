"""Match a detected service against the vulnerability database: findings with evidence.

Speed: a scan has many services but few distinct products and versions. Parsed configurations
are cached per NVD (vendor, product), match results per (product, version), and the findings
of a service per (CPEs, product, version, extrainfo), so matching 10,000 services costs little
more than matching their distinct versions once.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from flanscan._gcpause import gc_paused
from flanscan._lookup import TierLookup, VulnLookup
from flanscan._match.aliases import alias_for_nvd_names
from flanscan._match.cpe import parse_cpe23
from flanscan._match.detect import DetectedProduct, detect_products
from flanscan._match.nvdconfig import ConfigParser, Configuration, Target, evaluate
from flanscan._match.platform import excluded_by_host_os, host_os_family
from flanscan._match.tiers import Evidence, TierMatcher
from flanscan._model import (
    SOURCE_CONFIDENCE,
    Confidence,
    Finding,
    MatchEvidence,
    MatchSource,
    ServiceObservation,
    Vulnerability,
)

_MAX_EVIDENCE = 5  # evidence entries kept per finding (CVE-2012-2122 lists 60 MySQL versions)
_SERVICE_CACHE = 50_000
_RESULT_CACHE = 20_000
_PRODUCT_CACHE = 5_000


@dataclass(frozen=True, slots=True)
class _Hit:
    """One CVE for one detected product, before the service's details are added."""

    cve_id: str
    exact: bool
    evidence: tuple[Evidence, ...]  # (criteria, range, conditions, record)
    source: MatchSource = MatchSource.NVD


@dataclass(frozen=True)
class ServiceMatch:
    """Findings for a service, with notes saying why some could not be exact."""

    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class _ProductResult:
    hits: tuple[_Hit, ...]
    notes: tuple[str, ...] = ()


class Matcher:
    """Matches services against one database, caching what it can (see the module docstring)."""

    def __init__(self, db: VulnLookup) -> None:
        self._db = db
        self._configs: dict[
            tuple[tuple[str, str], ...], tuple[tuple[str, tuple[Configuration, ...]], ...]
        ] = {}
        self._results: dict[tuple[object, ...], _ProductResult] = {}
        self._vulns: dict[str, Vulnerability] = {}
        self._services: dict[tuple[object, ...], ServiceMatch] = {}
        self._tier_matchers: dict[
            tuple[tuple[str, str], ...],
            tuple[TierMatcher, ConfigParser, dict[int, tuple[object, tuple[Configuration, ...]]]],
        ] = {}

    # ------------------------------------------------------------------ database access

    def _candidates(
        self, names: tuple[tuple[str, str], ...]
    ) -> tuple[tuple[str, tuple[Configuration, ...]], ...]:
        """CVEs naming any of `names`, parsed for that product (cached per product)."""
        hit = self._configs.get(names)
        if hit is None:
            seen: set[str] = set()
            parser = ConfigParser(names)
            parsed: list[tuple[str, tuple[Configuration, ...]]] = []
            for vendor, product in names:
                for c in self._db.candidates(vendor, product):
                    if c.cve_id not in seen:
                        seen.add(c.cve_id)
                        parsed.append((c.cve_id, parser.parse(c.configurations)))
            hit = tuple(parsed)
            if len(self._configs) >= _PRODUCT_CACHE:
                self._configs.clear()
            self._configs[names] = hit
        return hit

    def _vulnerabilities(self, ids: Sequence[str]) -> dict[str, Vulnerability]:
        missing = [i for i in ids if i not in self._vulns]
        if missing:
            found = self._db.vulnerabilities(missing)
            for cve_id in missing:
                self._vulns[cve_id] = found.get(cve_id) or Vulnerability(
                    id=cve_id, url=f"https://nvd.nist.gov/vuln/detail/{cve_id}"
                )
        return {i: self._vulns[i] for i in ids}

    # ------------------------------------------------------------------ matching

    def match_product(self, product: DetectedProduct, *, possible: bool = False) -> _ProductResult:
        """CVEs for one detected product (cached per product names, version and attributes).

        `possible`: also the description-text tier (skipped when nobody will see it)."""
        # Product-only results carry the reason in their note: keep reasons apart.
        reason = product.unknown_reason if product.version is None else None
        key = (product.nvd_names, product.version, product.extras, reason, possible)
        cached = self._results.get(key)
        if cached is not None:
            return cached
        target = Target.of(product.nvd_names, product.version, product.extras)
        exact = product.version is not None
        hits: dict[str, _Hit] = {}
        uncomparable: set[str] = set()
        memo: dict[int, Any] = {}
        candidates = self._candidates(product.nvd_names)
        for cve_id, configs in candidates:
            evidence: list[Evidence] = []
            for config in configs:
                found, bad = evaluate(config, target, memo)
                if bad:
                    uncomparable |= bad
                if found is None:
                    continue
                for entry, attr_conditions in found.hits:
                    item = (
                        entry.criteria,
                        entry.range_text(),
                        attr_conditions + found.platform_conditions,
                        None,
                    )
                    if item not in evidence:
                        evidence.append(item)
            if evidence:
                # Unconditional evidence first: it is the strongest reason.
                evidence.sort(key=lambda e: len(e[2]))
                hits[cve_id] = _Hit(cve_id, exact, tuple(evidence[:_MAX_EVIDENCE]))
        notes: tuple[str, ...] = ()
        if exact and product.version is not None and isinstance(self._db, TierLookup):
            notes += self._match_tiers(product, target, hits, {c for c, _ in candidates}, possible)
        if exact and uncomparable:
            shown = ", ".join(sorted(uncomparable)[:3])
            notes = (
                f"{len(uncomparable)} NVD version bound(s) ({shown}) cannot be compared with"
                f" version {product.version!r}; those entries were not matched",
            )
        elif not exact:
            vendor, name = product.nvd_names[0]
            notes = (
                f"{vendor}:{name}: {product.unknown_reason}; its CVEs are product-only matches",
            )
        result = _ProductResult(tuple(hits.values()), notes)
        if len(self._results) >= _RESULT_CACHE:  # hostile banners can each bring a new version
            self._results.clear()
        self._results[key] = result
        return result

    def _match_tiers(
        self,
        product: DetectedProduct,
        target: Target,
        hits: dict[str, _Hit],
        nvd_decided: set[str],
        possible: bool,
    ) -> tuple[str, ...]:
        """Add the findings of the tiers beyond NVD configurations (see `tiers.py`)."""
        assert product.version is not None and isinstance(self._db, TierLookup)
        cached = self._tier_matchers.get(product.nvd_names)
        if cached is None:
            if len(self._tier_matchers) >= _PRODUCT_CACHE:
                self._tier_matchers.clear()
            cached = self._tier_matchers[product.nvd_names] = (
                TierMatcher(
                    self._db,
                    alias_for_nvd_names(product.nvd_names),
                    product.nvd_names,
                    lambda raw: [],
                ),
                ConfigParser(product.nvd_names),
                {},
            )
        tiers, parser, parsed = cached
        memo: dict[int, Any] = {}  # identical configurations evaluate once for this version

        def evaluate_configs(
            raw: Sequence[dict[str, Any]],
        ) -> list[tuple[str, str, tuple[str, ...]]]:
            out: list[tuple[str, str, tuple[str, ...]]] = []
            # The raw lists live in the lookup's cache: parse each once per product.
            configs = parsed.get(id(raw))
            if configs is None or configs[0] is not raw:
                configs = parsed[id(raw)] = (raw, parser.parse(list(raw)))
            for config in configs[1]:
                found, _ = evaluate(config, target, memo)
                if found is None:
                    continue
                for entry, attr_conditions in found.hits:
                    item = (
                        entry.criteria,
                        entry.range_text(),
                        attr_conditions + found.platform_conditions,
                    )
                    if item not in out:
                        out.append(item)
            out.sort(key=lambda e: len(e[2]))
            return out

        alias = tiers.alias
        tiers.use(evaluate_configs)
        outcome = tiers.match(product.version, nvd_decided, descriptions=possible)
        for cve_id in outcome.overridden:
            hits.pop(cve_id, None)
        for cve_id, hit in outcome.hits.items():
            hits[cve_id] = _Hit(cve_id, True, hit.evidence[:_MAX_EVIDENCE], hit.source)
        name = alias.key if alias is not None else ":".join(product.nvd_names[0])
        notes: list[str] = []
        if outcome.unparsable:
            notes.append(
                f"{name} {product.version}: {outcome.unparsable} version statement(s) of CVE 5"
                " or distribution data could not be compared with this version; not matched"
            )
        notes.extend(f"{name}: {text}; not used" for text in outcome.refused_adp[:3])
        notes.extend(
            f"{cve_id} not reported for {name} {product.version}: {why}"
            for cve_id, why in sorted(outcome.not_affected.items())[:5]
        )
        return tuple(notes)

    def explain(
        self,
        service: ServiceObservation,
        *,
        include_product_only: bool = True,
        include_possible: bool = False,
    ) -> ServiceMatch:
        """Findings for `service` and notes on what could not be matched exactly.

        The description-text tier (confidence `possible`) only with `include_possible=True`."""
        key = (
            service.cpes,
            service.product,
            service.version,
            service.extrainfo,
            include_product_only,
            include_possible,
        )
        cached = self._services.get(key)
        if cached is not None:
            return cached
        with gc_paused():  # many small acyclic objects, a large database in memory
            return self._explain(service, include_product_only, include_possible, key)

    def _explain(
        self,
        service: ServiceObservation,
        include_product_only: bool,
        include_possible: bool,
        key: tuple[object, ...],
    ) -> ServiceMatch:
        banner = service.banner
        host_os = host_os_family(service)
        merged: dict[str, tuple[bool, list[MatchEvidence]]] = {}
        sources: dict[str, MatchSource] = {}
        notes: list[str] = []
        for product in detect_products(service):
            if product.version is None and not include_product_only:
                continue
            result = self.match_product(product, possible=include_possible)
            notes.extend(n for n in result.notes if n not in notes)
            for hit in result.hits:
                ev = [
                    MatchEvidence(
                        criteria=criteria,
                        version_range=range_text,
                        detected_version=product.version or product.version_text,
                        detected_cpe=product.detected_cpe,
                        banner=banner,
                        platform_conditions=conditions,
                        alias=_alias(product, criteria),
                        record=record,
                    )
                    for criteria, range_text, conditions, record in hit.evidence
                    if not excluded_by_host_os(conditions, host_os)
                ]
                if not ev:
                    continue  # e.g. a Windows-only CVE on a host whose banner says Debian
                prev = merged.get(hit.cve_id)
                if prev is None or (hit.exact and not prev[0]):
                    merged[hit.cve_id] = (hit.exact, ev)
                    sources[hit.cve_id] = hit.source
                elif prev[0] == hit.exact:
                    prev[1].extend(e for e in ev if e not in prev[1])
        vulns = self._vulnerabilities(sorted(merged))
        findings = [
            Finding(
                vulnerability=vulns[cve_id],
                confidence=Confidence.EXACT if exact else Confidence.PRODUCT_ONLY,
                evidence=tuple(ev[:_MAX_EVIDENCE]),
                match_source=sources[cve_id],
                source_confidence=SOURCE_CONFIDENCE[sources[cve_id]],
            )
            for cve_id, (exact, ev) in merged.items()
        ]
        findings.sort(
            key=lambda f: (
                f.confidence != Confidence.EXACT,
                -f.source_confidence.rank,
                -(f.vulnerability.cvss.score if f.vulnerability.cvss else -1.0),
                f.id,
            )
        )
        match = ServiceMatch(tuple(findings), tuple(notes))
        if len(self._services) >= _SERVICE_CACHE:
            self._services.clear()
        self._services[key] = match
        return match

    def match(
        self,
        service: ServiceObservation,
        *,
        include_product_only: bool = True,
        include_possible: bool = False,
    ) -> list[Finding]:
        """Findings for `service`: exact ones first, then product-only (if asked for)."""
        found = self.explain(
            service,
            include_product_only=include_product_only,
            include_possible=include_possible,
        )
        return list(found.findings)


def _alias(product: DetectedProduct, criteria: str) -> str | None:
    cpe = parse_cpe23(criteria)
    return product.alias_for(cpe.vendor, cpe.product) if cpe is not None else None


_MATCHERS: weakref.WeakKeyDictionary[object, Matcher] = weakref.WeakKeyDictionary()


def matcher_for(db: VulnLookup) -> Matcher:
    """The cached Matcher of a database object (a new one if the object cannot be keyed)."""
    try:
        found = _MATCHERS.get(db)
        if found is None:
            found = _MATCHERS[db] = Matcher(db)
        return found
    except TypeError:  # not weak-referenceable or not hashable
        return Matcher(db)


def match_service(
    service: ServiceObservation,
    db: VulnLookup,
    *,
    include_product_only: bool = True,
    include_possible: bool = False,
) -> list[Finding]:
    """Findings for one service from the NVD data in `db`.

    `exact`: the detected version is inside an NVD range or equals a listed version.
    `product-only`: the service's version is unknown and the CVE exists for the product; these
    are left out when `include_product_only` is False.
    """
    return matcher_for(db).match(
        service, include_product_only=include_product_only, include_possible=include_possible
    )
