"""Version strings of network services: parsing, ordering, and the upstream version in a banner.

Written here rather than taken from `packaging` (PEP 440 rejects `7.4p1`, `1.1.1k`, `9.11.5-P4`)
or a Debian comparator (which orders `1.0rc1` after `1.0`): service versions mix numeric
releases, pre-release markers (`rc1`, `beta2`, Tomcat's `M17`) and post-release suffixes
(OpenSSH's `p1`, OpenSSL's letters, BIND's `-P4`), and the NVD ranges compare them all.

Order used:
- numeric release parts first, padded with zeros (`2.4 == 2.4.0`, `9.18.49 > 9.18.5`);
- then the suffix: a pre-release marker sorts before the bare release (`1.0rc1 < 1.0`), any
  other suffix after it (`7.4 < 7.4p1 < 7.10p1`, `1.1.1k < 1.1.1w`);
- dates (`2021-03-03`) compare only with dates; strings that are not versions compare with
  nothing (the result is None, never an exception).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# Words that mark a release before the final one. Single letters `a`, `b`, `m` count only when a
# number follows (`1.0b2`, Tomcat `10.1.0-M17`): a bare letter is OpenSSL's post-release `1.0.2m`.
_PRE_WORDS = {
    "dev": 0,
    "snapshot": 0,
    "alpha": 1,
    "beta": 2,
    "pre": 3,
    "preview": 3,
    "milestone": 3,
    "rc": 4,
    "cr": 4,
}
_PRE_LETTERS = {"a": 1, "b": 2, "m": 3}

_RELEASE = re.compile(r"\d+(?:\.\d+)*")
_TOKEN = re.compile(r"[a-z]+|\d+")
_DATE = re.compile(r"^((?:19|20)\d\d)-?([01]\d)-?([0-3]\d)$")
_PREFIXED = re.compile(r"^([a-z]+)(\d.*)$")

# A suffix kind: 0 = pre-release word, 1 = other word (post-release), 2 = number.
_PRE, _POST, _NUM = 0, 1, 2
_Suffix = tuple[tuple[int, int, str], ...]


@dataclass(frozen=True, slots=True)
class Version:
    """A parsed version: release numbers and suffix tokens; `kind` says what it may compare to."""

    text: str
    kind: str  # "numeric" | "date" | "other"
    prefix: str  # a leading word shared by a product's versions, e.g. nginx Plus "r" in "r27"
    release: tuple[int, ...]
    suffix: _Suffix

    @property
    def comparable(self) -> bool:
        return self.kind != "other"


def _suffix_tokens(rest: str) -> _Suffix:
    raw = _TOKEN.findall(rest)
    out: list[tuple[int, int, str]] = []
    for i, tok in enumerate(raw):
        if tok.isdigit():
            out.append((_NUM, int(tok), tok))
            continue
        followed_by_number = i + 1 < len(raw) and raw[i + 1].isdigit()
        if tok in _PRE_WORDS:
            out.append((_PRE, _PRE_WORDS[tok], tok))
        elif tok in _PRE_LETTERS and followed_by_number:
            out.append((_PRE, _PRE_LETTERS[tok], tok))
        else:
            out.append((_POST, 0, tok))
    return tuple(out)


@lru_cache(maxsize=65536)
def parse_version(text: str) -> Version | None:
    """Parse a version string; None when empty. Never raises."""
    s = text.strip().lower()
    if not s:
        return None
    if len(s) > 1 and s[0] == "v" and s[1].isdigit():
        s = s[1:]
    date = _DATE.match(s)
    if date:
        release = tuple(int(g) for g in date.groups())
        return Version(text, "date", "", release, ())
    prefix = ""
    release_match = _RELEASE.match(s)
    if release_match is None:
        prefixed = _PREFIXED.match(s)
        if prefixed is None:
            return Version(text, "other", "", (), ())
        prefix, s = prefixed.group(1), prefixed.group(2)
        release_match = _RELEASE.match(s)
        if release_match is None:  # pragma: no cover - _PREFIXED guarantees a digit
            return Version(text, "other", "", (), ())
    release = tuple(int(p) for p in release_match.group(0).split("."))
    return Version(text, "numeric", prefix, release, _suffix_tokens(s[release_match.end() :]))


def _cmp(a: int | str, b: int | str) -> int:
    return (a > b) - (a < b)  # type: ignore[operator]


def _compare_suffix(a: _Suffix, b: _Suffix) -> int:
    for ta, tb in zip(a, b, strict=False):
        if ta[0] != tb[0]:
            return _cmp(ta[0], tb[0])
        if ta[0] == _PRE:
            c = _cmp(ta[1], tb[1]) or _cmp(ta[2], tb[2])
        elif ta[0] == _NUM:
            c = _cmp(ta[1], tb[1])
        else:
            c = _cmp(ta[2], tb[2])
        if c:
            return c
    if len(a) == len(b):
        return 0
    # The longer one continues: a pre-release marker makes it smaller, anything else larger.
    if len(a) > len(b):
        return -1 if a[len(b)][0] == _PRE else 1
    return 1 if b[len(a)][0] == _PRE else -1


def compare_parsed(a: Version, b: Version) -> int | None:
    """-1, 0 or 1 as `a` is older, equal or newer than `b`; None when they cannot be compared."""
    if a.kind == "other" or b.kind == "other":
        return 0 if a.text.strip().lower() == b.text.strip().lower() else None
    if a.kind != b.kind or a.prefix != b.prefix:
        return None
    width = max(len(a.release), len(b.release))
    ra = a.release + (0,) * (width - len(a.release))
    rb = b.release + (0,) * (width - len(b.release))
    if ra != rb:
        return -1 if ra < rb else 1
    return _compare_suffix(a.suffix, b.suffix)


@lru_cache(maxsize=262144)
def compare_versions(a: str, b: str) -> int | None:
    """Compare two version strings: -1, 0, 1, or None when they are not comparable."""
    pa, pb = parse_version(a), parse_version(b)
    if pa is None or pb is None:
        return None
    return compare_parsed(pa, pb)


# --------------------------------------------------------------------------- banners


# Post-release and pre-release markers that the NVD writes in the CPE *update* field
# (`openssh:7.4:p1`, `bind:9.11.5:p4`, `proftpd:1.3.5:rc3`, `tomcat:9.0.0:milestone1`).
# OpenSSL-style letters (`1.1.1k`) stay in the version field, as the NVD writes them.
_UPDATE_SPLIT = re.compile(
    r"^(\d+(?:\.\d+)*)[-_.]?"
    r"((?:p|rc|beta|alpha|pre|a|b|m|milestone|stable|s)\d+|rc|beta|alpha|pre)$",
    re.IGNORECASE,
)
# Post-release updates: a bound without an update (`<= 7.7`) still covers `7.7p1`.
_POST_UPDATE = re.compile(r"^(?:p|patch|s|sp|stable)\d*$")


def split_update(version: str) -> tuple[str, str | None]:
    """Split `7.4p1` into (`7.4`, `p1`) the way the NVD names it; (version, None) otherwise."""
    m = _UPDATE_SPLIT.match(version.strip())
    if not m:
        return version, None
    return m.group(1), normalize_update(m.group(2))


def normalize_update(update: str) -> str:
    """Update field as compared: lower case, `milestone17` and `M17` alike."""
    u = update.strip().lower()
    if u.startswith("milestone"):
        u = "m" + u[len("milestone") :]
    return u


def is_post_release_update(update: str | None) -> bool:
    """True for patch-level updates (`p1`, BIND `s1`) that come after their bare release."""
    return update is not None and bool(_POST_UPDATE.match(update))


# Phrases in Nmap's version text meaning "not one version": "9.6.0 or later", "2.0.X",
# "9.1.2 - 9.1.3", "3.X - 4.X", "9.6.4 - 9.6.6 or 9.6.13 - 9.6.19".
_UNCERTAIN = re.compile(
    r"\bor (?:later|earlier|newer|older|higher|lower)\b|\s-\s|\sor\s|(?:^|\.)x\b|[<>?*]|\+$",
    re.IGNORECASE,
)
# The upstream version at the start of a banner version: a numeric release, then at most one
# recognised marker; distribution revisions ("-1ubuntu4", "+deb12u7", "~bpo") are dropped.
_UPSTREAM = re.compile(
    r"^v?(\d+(?:\.\d+)*"
    r"(?:[-_.]?(?:p|rc|beta|alpha|pre|a|b|m|s|stable)\d+"
    r"|[-_.]?(?:rc|beta|alpha|pre)(?![a-z])"
    r"|[a-z]{1,2}(?![a-z\d]))?)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class BannerVersion:
    """The upstream version read from Nmap's version text, or why there is none."""

    version: str | None
    reason: str | None = None  # set when `version` is None: why the version is unknown


def upstream_version(text: str | None) -> BannerVersion:
    """The upstream version in Nmap's version text: "9.2p1 Debian 2+deb12u7" -> "9.2p1".

    Version ranges and guesses ("9.6.0 or later", "2.0.X", "9.1.2 - 9.1.3") give no version.
    """
    if text is None or not text.strip():
        return BannerVersion(None, "no version detected")
    t = text.strip()
    if _UNCERTAIN.search(t):
        return BannerVersion(None, f"version text {t!r} is a range or guess, not one version")
    first = t.split()[0]
    m = _UPSTREAM.match(first)
    if m is None:
        return BannerVersion(None, f"version text {t!r} does not start with a version number")
    return BannerVersion(m.group(1))
