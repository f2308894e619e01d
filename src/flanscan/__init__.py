"""Flan Scan: Nmap-based network vulnerability scanning with an offline CVE database.

The library's public face; everything else (`flanscan._*`) is private. Attributes are imported
on first use, so `import flanscan` (and `flan --help`) stays fast. See docs/library.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = [
    "FORMATS",
    "ExitStatus",
    "Finding",
    "FindingStatus",
    "FlanError",
    "HostObservation",
    "Location",
    "MergeRequest",
    "Report",
    "ReportOptions",
    "RunOutcome",
    "ScanRequest",
    "ScanSummary",
    "ServiceFinding",
    "ServiceObservation",
    "ServiceReport",
    "Severity",
    "SourceConfidence",
    "VulnDb",
    "Vulnerability",
    "__version__",
    "merge",
    "render",
    "report",
    "scan",
]

# Where each public name is defined (imported on first use).
_MODEL = "flanscan._model"
_HOME = {
    "scan": "flanscan._run",
    "merge": "flanscan._run",
    "ScanRequest": "flanscan._run",
    "MergeRequest": "flanscan._run",
    "RunOutcome": "flanscan._status",
    "ExitStatus": "flanscan._status",
    "report": "flanscan._pipeline",
    "ReportOptions": "flanscan._pipeline",
    "render": "flanscan._render",
    "FORMATS": "flanscan._render",
    "VulnDb": "flanscan._vulndb",
    "FlanError": "flanscan._errors",
}

if TYPE_CHECKING:
    from flanscan._errors import FlanError
    from flanscan._model import (
        Finding,
        FindingStatus,
        HostObservation,
        Location,
        Report,
        ScanSummary,
        ServiceFinding,
        ServiceObservation,
        ServiceReport,
        Severity,
        SourceConfidence,
        Vulnerability,
    )
    from flanscan._pipeline import ReportOptions, report
    from flanscan._render import FORMATS, render
    from flanscan._run import MergeRequest, ScanRequest, merge, scan
    from flanscan._status import ExitStatus, RunOutcome
    from flanscan._vulndb import VulnDb


def __getattr__(name: str) -> object:
    module = _HOME.get(name, _MODEL if name in __all__ else None)
    if module is None:
        raise AttributeError(f"module 'flanscan' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
