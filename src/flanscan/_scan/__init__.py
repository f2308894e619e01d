"""The scan engine: concurrent Nmap workers, raw XML per worker, progress, `run.json`."""

from flanscan._scan.engine import (
    PORTS_CHOICES,
    ScanOptions,
    check_scan,
    default_run_dir,
    default_workers,
    run_scan,
)
from flanscan._scan.jobs import ScanResult, WorkerStatus
from flanscan._scan.progress import NullProgress, ProgressSink, RecordingProgress, ScanProgress

__all__ = [
    "PORTS_CHOICES",
    "NullProgress",
    "ProgressSink",
    "RecordingProgress",
    "ScanOptions",
    "ScanProgress",
    "ScanResult",
    "WorkerStatus",
    "check_scan",
    "default_run_dir",
    "default_workers",
    "run_scan",
]
