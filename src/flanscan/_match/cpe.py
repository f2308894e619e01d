"""CPE names: Nmap's 2.2 URIs (`cpe:/a:openbsd:openssh:9.2p1`) and NVD 2.3 match strings.

Both are read into the eleven attributes of a CPE 2.3 well-formed name, with the two logical
values kept apart: ANY (`*`, or an empty 2.2 component) and NA (`-`, "not applicable").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

ANY = "*"
NA = "-"
ATTRIBUTES = (
    "part",
    "vendor",
    "product",
    "version",
    "update",
    "edition",
    "language",
    "sw_edition",
    "target_sw",
    "target_hw",
    "other",
)
# Attributes after version and update: matched only for conditions the banner cannot show.
EXTRA_ATTRIBUTES = ATTRIBUTES[5:]


@dataclass(frozen=True, slots=True)
class Cpe:
    """A CPE name or match string; values are lower case and unescaped, or ANY / NA."""

    part: str
    vendor: str
    product: str
    version: str = ANY
    update: str = ANY
    edition: str = ANY
    language: str = ANY
    sw_edition: str = ANY
    target_sw: str = ANY
    target_hw: str = ANY
    other: str = ANY
    wildcards: frozenset[str] = frozenset()  # attributes holding an embedded `*` or `?`

    def extras(self) -> tuple[str, ...]:
        return (
            self.edition,
            self.language,
            self.sw_edition,
            self.target_sw,
            self.target_hw,
            self.other,
        )


def _split_fs(text: str) -> list[str]:
    """Split a 2.3 formatted string on colons that are not backslash-escaped."""
    out: list[str] = []
    cur: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            cur.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if escaped:
        cur.append("\\")
    out.append("".join(cur))
    return out


def _fs_value(raw: str) -> tuple[str, bool]:
    """Unescape one 2.3 value; report whether it holds an unescaped wildcard."""
    if raw in ("", ANY):
        return ANY, False
    if raw == NA:
        return NA, False
    out: list[str] = []
    wild = False
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            out.append(raw[i + 1])
            i += 2
            continue
        if ch in "*?":
            wild = True
        out.append(ch)
        i += 1
    return "".join(out).lower(), wild


@lru_cache(maxsize=131072)
def parse_cpe23(text: str) -> Cpe | None:
    """Parse `cpe:2.3:a:vendor:product:...`; None when it is not a 2.3 formatted string."""
    if not text.lower().startswith("cpe:2.3:"):
        return None
    parts = _split_fs(text)[2:]
    if len(parts) < 3:
        return None
    parts = (parts + [ANY] * 11)[:11]
    values: list[str] = []
    wild: set[str] = set()
    for name, raw in zip(ATTRIBUTES, parts, strict=True):
        value, has_wild = _fs_value(raw)
        values.append(value)
        if has_wild:
            wild.add(name)
    return Cpe(**dict(zip(ATTRIBUTES, values, strict=True)), wildcards=frozenset(wild))


_URI = re.compile(r"^cpe:/([aho])?(?::|$)", re.IGNORECASE)


@lru_cache(maxsize=65536)
def parse_cpe22(text: str) -> Cpe | None:
    """Parse a 2.2 URI as Nmap writes it (`cpe:/a:mysql:mysql::::es`); None if malformed."""
    t = text.strip()
    if not t.lower().startswith("cpe:/"):
        return None
    comps = t[5:].split(":")
    if len(comps) < 3 or comps[0].lower() not in ("a", "o", "h"):
        return None

    def value(raw: str) -> str:
        v = unquote(raw).strip().lower()
        return ANY if v == "" else v

    comps = (comps + [""] * 7)[:7]
    part, vendor, product, version, update, edition, language = (value(c) for c in comps)
    extra = [ANY] * 5  # edition, sw_edition, target_sw, target_hw, other
    if edition.startswith("~"):  # 2.2 "packed" edition: ~edition~sw_edition~target_sw~...
        packed = (edition[1:].split("~") + [""] * 5)[:5]
        extra = [ANY if p == "" else p for p in packed]
    else:
        extra[0] = edition
    return Cpe(
        part,
        vendor,
        product,
        version,
        update,
        extra[0],
        language,
        extra[1],
        extra[2],
        extra[3],
        extra[4],
    )


def parse_cpe(text: str) -> Cpe | None:
    """Parse either form; None when the text is neither."""
    return parse_cpe23(text) if text.lower().startswith("cpe:2.3:") else parse_cpe22(text)


def wildcard_match(pattern: str, value: str) -> bool:
    """CPE 2.3 embedded wildcards: `*` any run of characters, `?` one character."""
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, value) is not None


def attribute_relation(source: str, target: str, source_wild: bool = False) -> str:
    """Relation of a match-string attribute to a name's attribute (NISTIR 7696, table 6-2).

    Returns "superset", "equal", "subset" or "disjoint". SUBSET means the name leaves the
    attribute unknown while the match string asks for a value.
    """
    if source == ANY:
        return "equal" if target == ANY else "superset"
    if target == ANY:
        return "subset"
    if source == NA or target == NA:
        return "equal" if source == target else "disjoint"
    if source_wild:
        return "superset" if wildcard_match(source, target) else "disjoint"
    return "equal" if source == target else "disjoint"
