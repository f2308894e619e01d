"""A run, end to end: planning and sharding (shard.py, placement.py), the fleet environment
(environment.py), uploads while it runs (uploads.py), the shards of a fleet run (shards.py), and
the two use cases, `scan(ScanRequest) -> RunOutcome` and `merge(MergeRequest) -> RunOutcome`.

The run directory's records are defined in `flanscan._records`; exit statuses and their
precedence in `flanscan._status`; object storage in `flanscan._storage`.
"""

from flanscan._run.merging import MergeRequest, merge
from flanscan._run.scanning import ScanRequest, scan
from flanscan._status import ExitStatus, RunOutcome

__all__ = ["ExitStatus", "MergeRequest", "RunOutcome", "ScanRequest", "merge", "scan"]
