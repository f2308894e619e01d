"""CVE JSON 5 version statements, read per product (never trusting `versionType`).

An `affected` entry lists `versions` items: `version` alone (that one version), or a range from
`version` to `lessThan` (excluded) or `lessThanOrEqual`, with a `status`, and `changes` points
where the status changes; versions no item covers have the entry's `defaultStatus` (unknown
when absent). Shapes met in real records, each handled here:

- free text in `version` (GitHub's CNA): `">= 7.0.0, < 7.2.6"`, `"exim 4.95"`;
- `version: "0"` (from the first release) and `lessThan: "*"` (no upper bound);
- `changes` written per release branch: nginx's `1.5.13 .. *` with unaffected points at 1.26.2
  and 1.27.0 means "fixed in 1.26.2 on the 1.26 branch, in 1.27.0 on 1.27, and later
  branches"; a change point applies to its own branch (`major.minor`), and to branches above
  the highest point, never to another branch below it (1.27.0-1.27.3 stay affected by
  CVE-2025-23419 although 1.26.3 is fixed);
- BIND's Subscription Edition (`9.16.8-S1`): such items apply only to `-S` banners, and plain
  items only to plain ones;
- OpenSSH `p` levels (`9.2p1` < `10.0`), four-part Dovecot (`2.3.19.1`), PostgreSQL's
  major-only `16`, MariaDB (read from its own version text) compare with `compare_versions`.

A comparison that cannot be made (`R31 P3` against `1.22.1`, text that is no version) makes the
item *unparsable*: it does not match and is counted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from flanscan._match.aliases import VersionScheme
from flanscan._match.versions import compare_versions, parse_version

Status = Literal["affected", "unaffected", "unknown"]
_FREE = re.compile(r"(>=|<=|>|<|=)\s*([^\s,;]+)")
_EDITION = re.compile(r"-s\d+\b", re.IGNORECASE)
_ANY = ("", "*", "0", "n/a", "-")


@dataclass(frozen=True)
class Bounds:
    """One range: lower bound (inclusive or not) and upper bound (excluded or included)."""

    lower: str | None
    lower_inclusive: bool
    upper: str | None
    upper_inclusive: bool

    def text(self) -> str:
        parts = []
        if self.lower is not None:
            parts.append(f"{'>=' if self.lower_inclusive else '>'} {self.lower}")
        if self.upper is not None:
            if self.lower is not None and self.lower == self.upper and self.upper_inclusive:
                return f"= {self.upper}"
            parts.append(f"{'<=' if self.upper_inclusive else '<'} {self.upper}")
        return ", ".join(parts) or "every version"


@dataclass(frozen=True)
class Verdict:
    """What an entry says about one version: the status, and the item that said it."""

    status: Status
    range_text: str  # the item (or "default status") that decided
    unparsable: int = 0  # items that could not be compared with the version


def _strip_product_word(text: str) -> str:
    """`exim 4.95` -> `4.95`: a leading product word before a version."""
    parts = text.split()
    if len(parts) == 2 and not parts[0][0].isdigit() and parts[1][:1].isdigit():
        return parts[1]
    return text


def item_bounds(item: dict[str, Any]) -> Bounds | None:
    """The range of one `versions` item; None when its text cannot be read as versions."""
    version = str(item.get("version", "")).strip()
    less = item.get("lessThan")
    less_eq = item.get("lessThanOrEqual")
    if any(op in version for op in ("<", ">", "=")):
        found = _FREE.findall(version)
        if not found or less is not None or less_eq is not None:
            return None
        lower = upper = None
        lower_inc = upper_inc = False
        for op, value in found:
            if op in (">=", ">"):
                lower, lower_inc = value, op == ">="
            elif op in ("<=", "<"):
                upper, upper_inc = value, op == "<="
            else:
                lower = upper = value
                lower_inc = upper_inc = True
        return Bounds(lower, lower_inc, upper, upper_inc)
    version = _strip_product_word(version)
    if less is None and less_eq is None:
        if version in _ANY:
            return None  # "n/a" alone says nothing about a version
        return Bounds(version, True, version, True)
    lower = None if version in _ANY else version
    if less_eq is not None:
        upper = str(less_eq).strip()
        return Bounds(lower, True, None if upper == "*" else upper, upper != "*")
    upper = str(less).strip()
    return Bounds(lower, True, None if upper in ("*", "") else upper, False)


def _cmp(a: str, b: str) -> int | None:
    return compare_versions(a, b)


def _inside(version: str, b: Bounds) -> bool | None:
    """Whether `version` is inside `b`; None when a bound cannot be compared with it."""
    if b.lower is not None:
        c = _cmp(version, b.lower)
        if c is None:
            return None
        if c < 0 or (c == 0 and not b.lower_inclusive):
            return False
    if b.upper is not None:
        c = _cmp(version, b.upper)
        if c is None:
            return None
        if c > 0 or (c == 0 and not b.upper_inclusive):
            return False
    return True


def _branch(version: str, depth: int = 2) -> tuple[int, ...] | None:
    parsed = parse_version(version)
    if parsed is None or parsed.kind != "numeric":
        return None
    release = parsed.release + (0,) * depth
    return release[:depth]


def _as_status(value: object) -> Status:
    if value == "affected":
        return "affected"
    if value == "unaffected":
        return "unaffected"
    return "unknown"


def _changed_status(version: str, base: Status, changes: Sequence[dict[str, Any]]) -> Status:
    """The status after `changes`, read per release branch (see the module docstring)."""
    mine = _branch(version)
    points: list[tuple[str, Status]] = [
        (str(c["at"]), _as_status(c.get("status")))
        for c in changes
        if _branch(str(c["at"])) is not None
    ]
    if not points or mine is None:
        return base
    same = [(at, st) for at, st in points if _branch(at) == mine]
    if same:
        passed = [(at, st) for at, st in same if (_cmp(version, at) or 0) >= 0]
        if not passed:
            return base
        latest = passed[0]
        for point in passed[1:]:
            if (_cmp(point[0], latest[0]) or 0) > 0:
                latest = point
        return latest[1]
    top = max(points, key=lambda p: _branch(p[0]) or ())
    if mine > (_branch(top[0]) or ()):
        return top[1]  # a newer branch than every fix: has the fix
    return base


_Prepared = tuple[bool, Bounds | None, Status, tuple[dict[str, Any], ...], str]
_PREPARED: dict[int, tuple[dict[str, Any], tuple[_Prepared, ...]]] = {}
_PREPARED_MAX = 200_000


def _prepare(entry: dict[str, Any]) -> tuple[_Prepared, ...]:
    """An entry's items read once (bounds, status, edition): entries come from the lookup's
    cache and are evaluated for every version of a scan, so reading is kept per entry object."""
    hit = _PREPARED.get(id(entry))
    if hit is not None and hit[0] is entry:
        return hit[1]
    items: list[_Prepared] = []
    for item in entry.get("versions") or ():
        texts = " ".join(str(item.get(k, "")) for k in ("version", "lessThan", "lessThanOrEqual"))
        bounds = item_bounds(item)
        changes = tuple(item.get("changes") or ())
        text = bounds.text() if bounds is not None else ""
        if changes:
            text += " (status changes at " + ", ".join(str(c["at"]) for c in changes) + ")"
        items.append(
            (bool(_EDITION.search(texts)), bounds, _as_status(item.get("status")), changes, text)
        )
    if len(_PREPARED) >= _PREPARED_MAX:
        _PREPARED.clear()
    _PREPARED[id(entry)] = (entry, tuple(items))
    return tuple(items)


def evaluate_entry(entry: dict[str, Any], version: str, scheme: VersionScheme) -> Verdict:
    """What one `affected` entry says about `version` of its product."""
    affected: list[str] = []
    unaffected: list[str] = []
    unparsable = 0
    edition = bool(_EDITION.search(version)) if scheme == "bind" else False
    for has_edition, bounds, status, changes, text in _prepare(entry):
        if scheme == "bind" and has_edition != edition:
            continue  # BIND -S1 items apply to -S banners only, plain items to plain ones
        if bounds is None:
            unparsable += 1
            continue
        inside = _inside(version, bounds)
        if inside is None:
            unparsable += 1
            continue
        if not inside:
            continue
        if changes:
            status = _changed_status(version, status, changes)
        if status == "affected":
            affected.append(text)
        elif status == "unaffected":
            # An explicit single version marked unaffected beats a range marked affected.
            if bounds.lower == bounds.upper and bounds.lower is not None:
                return Verdict("unaffected", text, unparsable)
            unaffected.append(text)
    if affected:
        return Verdict("affected", affected[0], unparsable)
    if unaffected:
        return Verdict("unaffected", unaffected[0], unparsable)
    default = _as_status(entry.get("defaultStatus"))
    return Verdict(default, f"default status {default}", unparsable)


def adp_entry_is_sane(entry: dict[str, Any], known_cpes: Iterable[tuple[str, str]]) -> str | None:
    """Why a CISA ADP entry fails the sanity checks (None when it passes).

    Checks: it names a known CPE product of ours, and every range starts before it ends on one
    release branch (CVE-2024-1737's ADP pairs 9.11.4 with 9.16.50: refused).
    """
    known = set(known_cpes)
    cpes = entry.get("cpes") or ()
    names = set()
    for cpe in cpes:
        fields = cpe.split(":")
        if cpe.startswith("cpe:2.3:") and len(fields) > 4:
            names.add((fields[3].lower(), fields[4].lower()))
    if not names & known:
        listed = ", ".join(sorted(":".join(n) for n in names)) or "no CPE"
        return f"names no known CPE product ({listed})"
    for item in entry.get("versions") or ():
        bounds = item_bounds(item)
        if bounds is None:
            return f"range {item.get('version')!r} cannot be read"
        if bounds.lower is None or bounds.upper is None:
            continue
        order = _cmp(bounds.lower, bounds.upper)
        if order is None or order > 0:
            return f"range {bounds.text()} does not start before it ends"
        lower = parse_version(bounds.lower)
        depth = min(2, len(lower.release)) if lower is not None else 2
        if _branch(bounds.lower, depth) != _branch(bounds.upper, depth):
            return f"range {bounds.text()} spans release branches"
    return None
