"""Where a run's files go: a small interface, a local directory implementation, URL parsing.

Keys are relative paths with `/` separators ("<run-id>/shard-0-of-3/xml/scan-01.xml"), taken
below the sink's base (a directory, or a bucket prefix).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from flanscan._deadline import deadline_from_env
from flanscan._errors import UsageError
from flanscan._safefile import UnsafeKey, copy_atomic, key_parts
from flanscan._secrets import mask_url


class StorageError(Exception):
    """One storage operation failed. `permanent` when retrying cannot help (no such bucket,
    access denied); the message never contains credentials."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def storage_deadline() -> float:
    """Seconds one storage operation (an upload, a download, a listing) may take in all:
    FLAN_STORAGE_TIMEOUT, default 600."""
    return deadline_from_env("FLAN_STORAGE_TIMEOUT", 600.0)


def checked_key(key: str) -> tuple[str, ...]:
    """The components of an object key; a permanent StorageError for a key that would leave
    its directory once written to disk (`..`, `.`, empty components, absolute). Checked by
    every sink for every key it writes, reads or lists, and by every download."""
    try:
        # A listing prefix ends in "/": that last separator is not an empty component.
        return key_parts(key[:-1] if key.endswith("/") else key)
    except UnsafeKey as exc:
        raise StorageError(str(exc), permanent=True) from None


class Sink(Protocol):
    """A place to put and fetch a run's files."""

    @property
    def url(self) -> str:
        """The base location, for messages (`s3://bucket/prefix`, a directory)."""

    def put_file(self, local: Path, key: str) -> None:
        """Store the file `local` under `key` (replacing it)."""

    def get_file(self, key: str, local: Path) -> None:
        """Fetch `key` into the file `local` (parent directories created)."""

    def list(self, prefix: str = "") -> list[str]:
        """Every key below `prefix` (a directory-like prefix ending in `/`, or "")."""

    def delete(self, keys: Sequence[str]) -> None:
        """Remove `keys` (missing ones are ignored)."""


@dataclass(frozen=True)
class StorageLocation:
    """A parsed `--output` / merge SOURCE: scheme "s3", "gs" or "file"."""

    scheme: str
    bucket: str
    prefix: str  # no leading or trailing "/"; for "file" the directory path

    @property
    def is_remote(self) -> bool:
        return self.scheme != "file"

    @property
    def url(self) -> str:
        if not self.is_remote:
            return self.prefix
        return f"{self.scheme}://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")

    def child(self, *parts: str) -> StorageLocation:
        """This location with path parts appended."""
        if not self.is_remote:
            return StorageLocation("file", "", str(Path(self.prefix, *parts)))
        prefix = "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))
        return StorageLocation(self.scheme, self.bucket, prefix)


def parse_location(text: str, source: str = "--output") -> StorageLocation:
    """`s3://bucket/prefix`, `gs://bucket/prefix` or a local directory."""
    for scheme in ("s3", "gs"):
        if text.startswith(f"{scheme}://"):
            rest = text[len(scheme) + 3 :]
            bucket, _, prefix = rest.partition("/")
            if not bucket or "@" in bucket or ":" in bucket:
                raise UsageError(
                    f"{source} {mask_url(text)!r}: write {scheme}://BUCKET/PREFIX (no credentials "
                    "in the URL: they come from the environment, profiles or workload identity)"
                )
            return StorageLocation(scheme, bucket, prefix.strip("/"))
    if "://" in text:
        raise UsageError(
            f"{source} {mask_url(text)!r}: use s3://BUCKET/PREFIX, gs://BUCKET/PREFIX or a path"
        )
    if not text:
        raise UsageError(f"{source}: empty location")
    return StorageLocation("file", "", text)


class LocalSink:
    """A directory on this machine (or a mounted volume)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def url(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*checked_key(key))

    def put_file(self, local: Path, key: str) -> None:
        dest = self._path(key)
        if dest.resolve() == local.resolve():
            return
        try:
            copy_atomic(local, dest)
        except OSError as exc:
            raise StorageError(f"{dest}: {exc.strerror or exc}") from None

    def get_file(self, key: str, local: Path) -> None:
        src = self._path(key)
        if src.resolve() == local.resolve():
            return
        try:
            copy_atomic(src, local)
        except FileNotFoundError:
            raise StorageError(f"{src}: no such file", permanent=True) from None
        except OSError as exc:
            raise StorageError(f"{src}: {exc.strerror or exc}") from None

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(".part")
        )

    def delete(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._path(key).unlink(missing_ok=True)


def open_sink(location: StorageLocation) -> Sink:
    """The sink for a location; cloud clients are imported only when used."""
    from flanscan._extras import require_extra

    if location.scheme == "s3":
        from flanscan._storage._s3 import S3Sink

        require_extra("s3")
        return S3Sink(location.bucket, location.prefix)
    if location.scheme == "gs":
        from flanscan._storage._gcs import GcsSink

        require_extra("gcs")
        return GcsSink(location.bucket, location.prefix)
    return LocalSink(Path(location.prefix))
