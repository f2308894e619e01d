"""Fast streaming of the records of a big JSON feed: `{"header": ..., "<key>": [ {...}, ... ]}`.

ijson (used for every other shape) builds objects through yajl at about 40 MB/s; the standard
library's C decoder is several times faster. This reads the array under one top-level key in
1 MiB blocks and decodes each element with `json.JSONDecoder.raw_decode`, so memory holds a
block and one record, and a 400 MB year file streams at the decoder's speed.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from typing import Any, Protocol

BLOCK = 1 << 20
MAX_RECORD = 64 << 20  # one element larger than this is not a feed record: stop, invalid JSON
_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"[ \t\n\r]*")


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class StreamError(ValueError):
    """The document is truncated or not valid JSON where the records are."""


def find_array(head: str, key: str) -> int | None:
    """Offset just past `"key": [` in the document's head, or None when it is not there."""
    match = re.search(r'"' + re.escape(key) + r'"\s*:\s*\[', head)
    return match.end() if match else None


def iter_array_items(stream: Readable, key: str) -> Iterator[Any] | None:
    """Elements of the array under top-level `key`, or None when the head has no such array.

    Reads `stream` to its end (so a gzip CRC is checked and a hashing reader sees it all).
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    text = decoder.decode(stream.read(BLOCK)).lstrip("\ufeff")
    pos = find_array(text, key)
    if pos is None:
        return None
    return _items(stream, decoder, text, pos)


def _items(
    stream: Readable, decoder: codecs.IncrementalDecoder, text: str, pos: int
) -> Iterator[Any]:
    eof = False

    def more() -> bool:
        nonlocal text, pos, eof
        if eof:
            return False
        block = stream.read(BLOCK)
        if not block:
            eof = True
            text = text[pos:] + decoder.decode(b"", final=True)
        else:
            text = text[pos:] + decoder.decode(block)
        pos = 0
        return True

    need_comma = False  # after a record: a ',' or the closing ']' must follow
    empty = True
    while True:
        pos = _SPACE.match(text, pos).end()  # type: ignore[union-attr]
        if pos >= len(text):
            if not more():
                raise StreamError("truncated or invalid JSON (file ends inside the records array)")
            continue
        char = text[pos]
        if char == "]" and (need_comma or empty):
            pos += 1
            break
        if need_comma:
            if char != ",":
                raise StreamError(
                    f"truncated or invalid JSON (no ',' or ']' after a record: {char!r})"
                )
            pos += 1
            need_comma = False
            continue
        try:
            item, end = _DECODER.raw_decode(text, pos)
        except RecursionError:
            # The C decoder stops at the interpreter's recursion limit: memory stays bounded.
            raise StreamError("JSON nested too deeply in a record: refused") from None
        except json.JSONDecodeError as exc:
            # Usually the block ends inside this record: read on and try again.
            if len(text) - pos > MAX_RECORD or not more():
                raise StreamError(f"truncated or invalid JSON ({exc.msg})") from exc
            continue
        need_comma, empty = True, False
        pos = end
        yield item
    # What follows the array must close the document (or carry more top-level members).
    rest = text[pos:].lstrip()
    while not rest and more():
        rest = text[pos:].lstrip()
    if not rest or rest[0] not in "},":
        raise StreamError("truncated or invalid JSON (file ends after the records array)")
    while more():
        pos = len(text)  # drain to the end without keeping it
