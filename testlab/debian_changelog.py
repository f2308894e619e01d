"""CVE ids a Debian package's changelog says were fixed, per package version.

Used as ground truth by the tests and the backport benchmark: `/usr/share/doc/<package>/
changelog.Debian.gz` of an installed package lists the CVEs its maintainers fixed. The changelog
is not exhaustive (a fix can be described without its CVE id), so it confirms decisions; it
does not replace the tracker.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from debian.changelog import Changelog

_CVE_RE = re.compile(r"CVE-\d{4}-\d{4,}")
DOC_DIR = Path("/usr/share/doc")


def changelog_path(binary_package: str, doc_dir: Path = DOC_DIR) -> Path | None:
    """The Debian changelog of an installed binary package, or None when absent."""
    path = doc_dir / binary_package / "changelog.Debian.gz"
    return path if path.is_file() else None


def changelog_cves(path: Path) -> dict[str, str]:
    """CVE id -> the oldest changelog version whose entry mentions it (when it was fixed)."""
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as stream:
        changelog = Changelog(stream, strict=False)
    found: dict[str, str] = {}
    for block in changelog:  # newest first: later assignments keep the oldest version
        text = "\n".join(block.changes())
        for cve in _CVE_RE.findall(text):
            found[cve] = str(block.version)
    return found


def changelog_block(path: Path, version: str) -> str:
    """The text of the changelog entry for `version` ("" when there is none)."""
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as stream:
        changelog = Changelog(stream, strict=False)
    for block in changelog:
        if str(block.version) == version:
            return "\n".join(block.changes())
    return ""
