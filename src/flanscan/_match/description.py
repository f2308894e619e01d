"""The `possible` tier: version bounds read from a CVE's description text.

Only for CVEs no other source decides, and never counted unless asked for
(`--min-confidence possible`): prose is ambiguous ("OpenSSH before 9.6 and other products").
A phrase counts only when it names the product right before the bound, or when the text is
about the product alone (GitHub's "Redis is an open source ..." descriptions):
- "Memcached before 1.6.22", "OpenSSH before 9.6", "prior to version 6.8" -> below that version;
- "Exim through 4.97.1", "Apache HTTP Server 2.4.59 and earlier" -> up to and including;
- "from 2.4.17 up to 2.4.63", "Starting in version 3.5.27 and prior to version 6.8" -> a range;
- "fixed in Redis versions 6.2.16, 7.2.6, and 7.4.1" -> one fix per release branch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from flanscan._match.cve5 import Bounds
from flanscan._match.versions import compare_versions, parse_version

_V = r"v?(\d+(?:\.\d+)+(?:[a-z]+\d*)?)"
_LIST = rf"{_V}(?:\s*,\s*{_V})*(?:,?\s+and\s+{_V})?"


@dataclass(frozen=True)
class DescriptionRange:
    """What a description says: ranges, or fixed versions per branch; the phrase that said it."""

    ranges: tuple[Bounds, ...]
    fixes: tuple[str, ...]
    phrase: str


def _versions(text: str) -> list[str]:
    return re.findall(r"\d+(?:\.\d+)+(?:[a-z]+\d*)?", text)


@lru_cache(maxsize=65536)
def read_description(text: str, words: tuple[str, ...]) -> DescriptionRange | None:
    """The bounds the description gives for the product named by `words` (lower case).

    Cached: a scan asks once per product version for the same descriptions."""
    low = " ".join(text.split()).lower()
    named = [w for w in words if w in low]
    if not named:
        return None
    alone = any(low.startswith(f"{w} is ") for w in named)
    for word in named:
        w = re.escape(word)
        m = re.search(rf"{w}\s+(?:versions?\s+)?from\s+{_V}\s+(?:up\s+)?(?:to|through)\s+{_V}", low)
        if m:
            return DescriptionRange((Bounds(m[1], True, m[2], True),), (), m[0])
        m = re.search(
            rf"{w}\s+(?:\d+\s+)?(?:versions?\s+)?(?:before|prior to)\s+(?:versions?\s+)?{_LIST}",
            low,
        )
        if m:
            found = _versions(m[0].split(" before ")[-1].split(" prior to ")[-1])
            if len(found) > 1:
                return DescriptionRange((), tuple(found), m[0])
            return DescriptionRange((Bounds(None, True, found[0], False),), (), m[0])
        m = re.search(rf"{w}\s+(?:versions?\s+)?(?:through|up to)\s+{_V}", low) or re.search(
            rf"{w}\s+(?:versions?\s+)?{_V}\s+and\s+(?:earlier|prior)", low
        )
        if m:
            return DescriptionRange((Bounds(None, True, m[1], True),), (), m[0])
        m = re.search(rf"(?:fixed|patched) in {w}\s+(?:versions?\s+)?{_LIST}", low)
        if m:
            return DescriptionRange((), tuple(_versions(m[0])), m[0])
    if alone:
        m = re.search(
            rf"(?:starting (?:in|at) (?:version )?{_V} and )?prior to (?:versions? )?{_V}", low
        )
        if m:
            return DescriptionRange((Bounds(m[1], True, m[2], False),), (), m[0])
        m = re.search(rf"(?:fixed|patched) in (?:versions?\s+)?{_LIST}", low)
        if m:
            return DescriptionRange((), tuple(_versions(m[0])), m[0])
    return None


def _branch(version: str) -> tuple[int, ...]:
    parsed = parse_version(version)
    return (*parsed.release, 0, 0)[:2] if parsed is not None else ()


def description_affects(found: DescriptionRange, version: str) -> bool | None:
    """Whether `version` is inside what the description says; None when it cannot tell."""
    for bounds in found.ranges:
        lower_ok = bounds.lower is None or (compare_versions(version, bounds.lower) or -1) >= 0
        order = compare_versions(version, bounds.upper) if bounds.upper else -1
        if order is None:
            return None
        upper_ok = order < 0 or (order == 0 and bounds.upper_inclusive)
        if lower_ok and upper_ok:
            return True
    if found.ranges:
        return False
    if not found.fixes:
        return None
    same = [f for f in found.fixes if _branch(f) == _branch(version)]
    if same:
        order = compare_versions(version, same[0])
        return None if order is None else order < 0
    newest = max(found.fixes, key=_branch)
    order = compare_versions(version, newest)
    return None if order is None else order < 0  # an older branch with no fix of its own
