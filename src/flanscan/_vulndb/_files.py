"""Opening feed files whatever their compression, and sniffing what they contain."""

from __future__ import annotations

import gzip
import io
import lzma
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import ijson

from flanscan._errors import VulnDbError

_GZIP_MAGIC = b"\x1f\x8b"
_XZ_MAGIC = b"\xfd7zXZ\x00"
PROBE_BYTES = 64 * 1024
PROBE_EVENTS = 400
# Limits against hostile files (each ends the import with an error naming the file): a compressed
# feed may not inflate to more than MAX_RATIO times its size (real feeds: about 15), beyond a
# floor; JSON may not nest deeper than MAX_DEPTH (NVD records: about 12).
MAX_RATIO = 100
RATIO_FLOOR = 256 << 20
MAX_DEPTH = 64


class LimitExceeded(ValueError):
    """A hostile-input limit was hit (compression ratio, nesting depth, member size)."""


class _InflateLimit(io.RawIOBase):
    """Decompressed bytes, counted: LimitExceeded past `limit` (a compression bomb)."""

    def __init__(self, inner: IO[bytes], limit: int) -> None:
        self.inner = inner
        self.limit = limit
        self.count = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Only back to the start (a second pass over the feed), which resets the count."""
        if (offset, whence) == (0, io.SEEK_SET):
            self.inner.seek(0)
            self.count = 0
            return 0
        if (offset, whence) == (0, io.SEEK_CUR):
            return self.count
        raise io.UnsupportedOperation("seek other than to the start")

    def tell(self) -> int:
        return self.count

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        self.count += len(data)
        if self.count > self.limit:
            raise LimitExceeded(
                f"decompresses to more than {self.limit >> 20} MiB ({MAX_RATIO} times its size): "
                "a compression bomb? refused"
            )
        buffer[: len(data)] = data
        return len(data)


def inflate_limit(compressed_size: int) -> int:
    """How many bytes a compressed file (or archive member) of this size may inflate to."""
    return max(RATIO_FLOOR, MAX_RATIO * compressed_size)


def limit_depth(events: Iterator[tuple[str, str, Any]]) -> Iterator[tuple[str, str, Any]]:
    """ijson events, LimitExceeded when containers nest deeper than MAX_DEPTH."""
    depth = 0
    for event in events:
        kind = event[1]
        if kind in ("start_map", "start_array"):
            depth += 1
            if depth > MAX_DEPTH:
                raise LimitExceeded(f"JSON nested deeper than {MAX_DEPTH} levels: refused")
        elif kind in ("end_map", "end_array"):
            depth -= 1
        yield event


# Exceptions that mean "this file is damaged" while reading or decompressing a feed.
READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes gzip.BadGzipFile
    EOFError,  # gzip stream cut short
    zlib.error,
    lzma.LZMAError,
    ijson.JSONError,  # includes IncompleteJSONError (truncated JSON)
    UnicodeDecodeError,
    ValueError,
)


@contextmanager
def open_feed(path: Path) -> Iterator[IO[bytes]]:
    """Open a file for reading, transparently decompressing gzip or xz (detected by content)."""
    with path.open("rb") as raw:
        magic = raw.read(6)
        raw.seek(0)
        decompressor: gzip.GzipFile | lzma.LZMAFile
        if magic.startswith(_GZIP_MAGIC):
            decompressor = gzip.GzipFile(fileobj=raw, mode="rb")
        elif magic.startswith(_XZ_MAGIC):
            decompressor = lzma.LZMAFile(raw, mode="rb")
        else:
            yield raw
            return
        try:
            # A big buffer in front of the decompressor: ijson reads in small chunks.
            limited = _InflateLimit(
                cast(IO[bytes], decompressor), inflate_limit(os.fstat(raw.fileno()).st_size)
            )
            yield cast(IO[bytes], io.BufferedReader(limited, buffer_size=1 << 20))
        finally:
            decompressor.close()


def _first_line(exc: BaseException) -> str:
    # yajl's messages span several lines (with a caret picture): messages are one line.
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0].strip()


def describe_error(exc: BaseException) -> str:
    """A short one-line phrase for a read/parse failure, for messages that name the file."""
    from flanscan._vulndb._jsonstream import StreamError

    text = _first_line(exc)
    if isinstance(exc, StreamError):
        return text
    if isinstance(exc, gzip.BadGzipFile | zlib.error):
        return f"corrupt gzip data ({text})"
    if isinstance(exc, EOFError):
        return "file is cut short (compressed stream ended early)"
    if isinstance(exc, ijson.IncompleteJSONError):
        return f"truncated or invalid JSON ({text})"
    if isinstance(exc, ijson.JSONError):
        return f"invalid JSON ({text})"
    return text


def feed_error(path: Path, exc: BaseException, hint: str = "") -> VulnDbError:
    """A VulnDbError naming the file that failed and why."""
    tail = f"; {hint}" if hint else ""
    return VulnDbError(f"{path}: {describe_error(exc)}{tail}")


@dataclass(frozen=True)
class ContentProbe:
    """The head of a file, decoded both as text and as the first JSON parse events.

    Sources decide from it whether a file is theirs (`Source.sniff`), so detection works on
    content, never on file names.
    """

    path: Path
    text_head: str
    json_events: tuple[tuple[str, str, Any], ...]  # (prefix, event, value) from ijson.parse

    @property
    def is_json(self) -> bool:
        return bool(self.json_events)

    def keys_at(self, prefix: str) -> list[str]:
        """Map keys seen (in the probed head) directly under `prefix` ('' is the top level)."""
        return [str(v) for p, e, v in self.json_events if p == prefix and e == "map_key"]

    def value_at(self, prefix: str) -> Any:
        """The first scalar value seen at `prefix`, or None."""
        for p, e, v in self.json_events:
            if p == prefix and e not in ("map_key", "start_map", "end_map", "start_array"):
                return v
        return None


def probe_file(path: Path) -> ContentProbe:
    """Read the head of `path` (decompressed) for content detection."""
    try:
        with open_feed(path) as stream:
            head = stream.read(PROBE_BYTES)
    except READ_ERRORS as exc:
        raise feed_error(path, exc) from exc
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    events: list[tuple[str, str, Any]] = []
    if text.lstrip()[:1] in ("{", "["):
        try:
            # Small buffers: yajl emits a whole buffer's events at once, each with its full
            # prefix, so 64 KiB of "[" would make 64 Ki prefixes of up to 64 Ki levels.
            parsed = ijson.parse(io.BytesIO(head), use_float=True, buf_size=256)
            for event in limit_depth(parsed):
                events.append(event)
                if len(events) >= PROBE_EVENTS:
                    break
        except ijson.JSONError:
            pass  # the head cuts the document; the events so far are what we need
        except LimitExceeded as exc:
            raise feed_error(path, exc) from exc
    return ContentProbe(path=path, text_head=text, json_events=tuple(events))
