"""Reading the JSON members of a source's archive (zip, tar.gz) or directory tree, one by one.

The cvelistV5 daily release is a zip holding a zip (`cves.zip`) of the `cves/<year>/...` tree;
GitHub's repository archives (cvelistV5, vulnrichment, nvd-data-overrides) are tarballs or zips
with one top directory. Members stream: a tarball is never unpacked on disk, and only a nested
zip (which needs seeking) is copied to a temporary file. A damaged archive (cut short, corrupt)
raises `ArchiveError`; the caller names the file and stops the import.
"""

from __future__ import annotations

import re
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Literal

from flanscan._vulndb._files import ContentProbe, inflate_limit

ArchiveKind = Literal["zip", "tar"]
# A member larger than this is no single record: skipped and counted by the caller.
MAX_MEMBER = 16 << 20
_RECORD_NAME = re.compile(r"(?:^|/)CVE-\d{4}-\d{4,}\.json$")


class ArchiveError(Exception):
    """The archive is damaged (truncated, corrupt): nothing from it may be trusted."""


def archive_kind(probe: ContentProbe) -> ArchiveKind | None:
    """zip or tar (plain or compressed; `probe` holds the decompressed head) or None."""
    if probe.text_head.startswith("PK\x03\x04"):
        return "zip"
    if probe.text_head[257:262] == "ustar":
        return "tar"
    return None


def is_record_name(name: str) -> bool:
    return bool(_RECORD_NAME.search(name))


def read_member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int = MAX_MEMBER
) -> bytes | None:
    """A member's content, or None when it inflates past `limit` bytes: read in blocks and
    counted, since a hostile zip can declare any size in its directory."""
    if info.file_size > limit:
        return None
    out = bytearray()
    with archive.open(info) as src:
        while block := src.read(1 << 20):
            out += block
            if len(out) > limit:
                return None
    return bytes(out)


def _copy_bounded(src: IO[bytes], dst: IO[bytes], limit: int, name: str) -> None:
    copied = 0
    while block := src.read(1 << 20):
        copied += len(block)
        if copied > limit:
            raise ArchiveError(
                f"{name} inflates to more than {limit >> 20} MiB: a compression bomb? refused"
            )
        dst.write(block)


def _zip_members(path: Path, depth: int = 0) -> Iterator[tuple[str, bytes | None]]:
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.is_dir():
                    continue
                if info.filename.endswith(".zip") and depth == 0:
                    # cvelistV5's release zip holds cves.zip: copy it out (zip needs seeking).
                    with tempfile.TemporaryDirectory() as tmp:
                        inner = Path(tmp) / "inner.zip"
                        with archive.open(info) as src, inner.open("wb") as dst:
                            limit = inflate_limit(path.stat().st_size)
                            _copy_bounded(src, dst, limit, info.filename)
                        yield from _zip_members(inner, depth + 1)
                    continue
                if not info.filename.endswith(".json"):
                    continue
                yield info.filename, read_member(archive, info)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise ArchiveError(f"damaged zip archive ({exc})") from exc


def _tar_members(path: Path) -> Iterator[tuple[str, bytes | None]]:
    try:
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                if not member.isfile() or not member.name.endswith(".json"):
                    continue
                if member.size > MAX_MEMBER:
                    yield member.name, None
                    continue
                stream = archive.extractfile(member)
                if stream is None:
                    continue
                data = stream.read(MAX_MEMBER + 1)
                if len(data) != member.size:
                    raise ArchiveError(f"{member.name} is cut short")
                yield member.name, data
    except (tarfile.TarError, zlib.error, EOFError, OSError) as exc:
        raise ArchiveError(f"damaged tar archive ({exc})") from exc


def json_members(path: Path, kind: ArchiveKind) -> Iterator[tuple[str, bytes | None]]:
    """(member name, content) of each `.json` member; content None when absurdly large."""
    return _zip_members(path) if kind == "zip" else _tar_members(path)


def first_record(path: Path, kind: ArchiveKind, limit: int = 2000) -> bytes | None:
    """The first member named like a CVE record (`CVE-YYYY-NNNN.json`), for sniffing.

    A zip holding `cves.zip` (the cvelistV5 release) answers with that name instead of
    unpacking it: only CVE 5 releases are shaped so.
    """
    try:
        if kind == "zip":
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
            if any(n.rsplit("/", 1)[-1] == "cves.zip" for n in names):
                return b"cves.zip"
            if not any(is_record_name(n) for n in names):
                return None
        for count, (name, data) in enumerate(json_members(path, kind)):
            if is_record_name(name) and data is not None:
                return data
            if count >= limit:
                break
    except (ArchiveError, zipfile.BadZipFile, OSError):
        return None
    return None
