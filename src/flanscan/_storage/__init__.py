"""Object storage: local directories, `s3://` and `gs://` behind one small sink interface, with
retries. What a run puts there, and when, is decided in `flanscan._run`. See docs/fleet.md."""

from flanscan._storage._retry import RetryPolicy, retrying
from flanscan._storage._sink import (
    LocalSink,
    Sink,
    StorageError,
    StorageLocation,
    checked_key,
    open_sink,
    parse_location,
)

__all__ = [
    "LocalSink",
    "RetryPolicy",
    "Sink",
    "StorageError",
    "StorageLocation",
    "checked_key",
    "open_sink",
    "parse_location",
    "retrying",
]
