"""Distribution builds: recognise them in banners, and read the Debian and Ubuntu trackers to
say which CVEs a distribution has fixed by backporting (see docs/false-positives.md)."""

from flanscan._distro._apply import DistributionMemo, apply_distribution, host_release
from flanscan._distro._banner import DistroBuild, detect_build
from flanscan._distro._dpkg import dpkg_compare, parse_dpkg_version
from flanscan._distro._tracker import DISTRO_DDL, DistroTracker, TrackerEntry, tracker_for

__all__ = [
    "DISTRO_DDL",
    "DistributionMemo",
    "DistroBuild",
    "DistroTracker",
    "TrackerEntry",
    "apply_distribution",
    "detect_build",
    "dpkg_compare",
    "host_release",
    "parse_dpkg_version",
    "tracker_for",
]
