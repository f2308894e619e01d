"""The environment a run reads its defaults from: flan's own variables, a Kubernetes Indexed
Job's, and the original Flan Scan container's (`upload`, `bucket`, `format`, /shared/ips.txt).

Command-line options always win; these are read only for what the command line leaves open.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from flanscan._errors import UsageError
from flanscan._run.shard import Shard, parse_shard

RUN_ID_ENV = "FLAN_RUN_ID"
# Environment of a Kubernetes Indexed Job: the pod's index, and the shard count the manifest sets
# equal to the Job's `completions`.
INDEX_ENV = "JOB_COMPLETION_INDEX"
COUNT_ENV = "FLAN_SHARD_COUNT"
# The original container read its targets here when none were given.
LEGACY_TARGETS_FILE = Path("/shared/ips.txt")
_LEGACY_SCHEMES = {"aws": "s3", "gcp": "gs"}


def legacy_output(env: Mapping[str, str]) -> str | None:
    """The original container's destination: `upload=aws|gcp` with `bucket=NAME`."""
    upload = env.get("upload", "").strip().lower()
    if not upload:
        return None
    if upload not in _LEGACY_SCHEMES:
        raise UsageError(f"environment upload={upload!r}: use aws or gcp (or unset it)")
    bucket = env.get("bucket", "").strip().strip("/")
    if not bucket:
        raise UsageError(f"environment upload={upload} needs bucket=NAME (the bucket to write to)")
    return f"{_LEGACY_SCHEMES[upload]}://{bucket}"


def legacy_formats(env: Mapping[str, str], choices: Sequence[str]) -> tuple[str, ...]:
    """Report formats from the original container's `format` variable (comma-separated)."""
    raw = env.get("format", "").strip().lower()
    if not raw:
        return ()
    formats = tuple(dict.fromkeys(f.strip() for f in raw.replace(" ", ",").split(",") if f))
    bad = [f for f in formats if f not in choices]
    if bad:
        raise UsageError(
            f"environment format={raw!r}: {bad[0]!r} is not one of {', '.join(choices)}"
        )
    return formats


def legacy_targets_file(path: Path | None = None) -> Path | None:
    """/shared/ips.txt when it exists (used only when no target is given)."""
    path = path or LEGACY_TARGETS_FILE
    return path if path.is_file() else None


def shard_from_env(env: Mapping[str, str] | None = None) -> Shard | None:
    """The shard of a Kubernetes Indexed Job pod (JOB_COMPLETION_INDEX and FLAN_SHARD_COUNT),
    or None outside one. Only the index without the count is an error (the count is needed)."""
    env = os.environ if env is None else env
    index = env.get(INDEX_ENV, "").strip()
    count = env.get(COUNT_ENV, "").strip()
    if not index and not count:
        return None
    if not count:
        raise UsageError(
            f"{INDEX_ENV}={index} is set but {COUNT_ENV} is not: set {COUNT_ENV} to the Job's "
            "`completions` in the manifest"
        )
    if not index:
        raise UsageError(
            f"{COUNT_ENV}={count} is set but {INDEX_ENV} is not: use an Indexed Job, or pass "
            "--shard I/N"
        )
    return parse_shard(f"{index}/{count}", f"{INDEX_ENV}/{COUNT_ENV}")
