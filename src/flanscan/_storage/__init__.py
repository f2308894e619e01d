"""Run output in local directories, S3 and GCS: a small sink interface, uploads with retries
while a scan runs, and the planning of fleet runs (run id, shard, destination). See
docs/fleet.md."""

from flanscan._records import DONE_FILE, SHARD_FILE
from flanscan._storage._fleet import (
    LEGACY_TARGETS_FILE,
    RUN_ID_ENV,
    FleetRun,
    done_record,
    legacy_formats,
    legacy_output,
    legacy_targets_file,
    plan_fleet_run,
)
from flanscan._storage._retry import RetryPolicy, retrying
from flanscan._storage._sink import (
    LocalSink,
    Location,
    Sink,
    StorageError,
    checked_key,
    open_sink,
    parse_location,
)
from flanscan._storage._uploader import RunUploader

__all__ = [
    "DONE_FILE",
    "LEGACY_TARGETS_FILE",
    "RUN_ID_ENV",
    "SHARD_FILE",
    "FleetRun",
    "LocalSink",
    "Location",
    "RetryPolicy",
    "RunUploader",
    "Sink",
    "StorageError",
    "checked_key",
    "done_record",
    "legacy_formats",
    "legacy_output",
    "legacy_targets_file",
    "open_sink",
    "parse_location",
    "plan_fleet_run",
    "retrying",
]
