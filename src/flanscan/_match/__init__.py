"""CVE matching: detected services against NVD configurations, with evidence.

`match_service(service, db)` is the entry point; see docs/matching.md for the rules.
"""

from flanscan._match.matcher import Matcher, ServiceMatch, match_service, matcher_for
from flanscan._match.versions import compare_versions, upstream_version

__all__ = [
    "Matcher",
    "ServiceMatch",
    "compare_versions",
    "match_service",
    "matcher_for",
    "upstream_version",
]
