"""Writing files safely: atomic replacement through a fresh temporary file, and object keys that
cannot leave their directory.

Every report, record and downloaded object goes through `write_atomic` / `copy_atomic`: the
temporary file is created with O_CREAT|O_EXCL under a random name in the destination's directory
(so a symlink planted at a predictable name such as `report.json.part` is never followed), then
renamed over the destination (`rename` replaces a symlink itself, it does not write through it).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from flanscan._errors import UsageError


class UnsafeKey(UsageError):
    """An object key (or relative path) that would leave its directory."""


def key_parts(key: str, *, what: str = "object key") -> tuple[str, ...]:
    """The `/`-separated components of a relative key; UnsafeKey for an absolute key, an empty,
    `.` or `..` component, a backslash or a NUL (each could address a file outside the base)."""
    if not key or key.startswith("/"):
        raise UnsafeKey(f"refusing {what} {key!r}: absolute or empty")
    if "\\" in key or "\0" in key:
        raise UnsafeKey(f"refusing {what} {key!r}: backslash or NUL in the name")
    parts = tuple(key.split("/"))
    for part in parts:
        if part in ("", ".", ".."):
            raise UnsafeKey(f"refusing {what} {key!r}: {part or 'empty'!r} path component")
    return parts


def path_below(base: Path, key: str, *, what: str = "object key") -> Path:
    """`base/<key>` after `key_parts` checked that it stays below `base`."""
    return base.joinpath(*key_parts(key, what=what))


@contextmanager
def atomic_output(path: Path, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """A binary file that replaces `path` when the block ends without an error (and is removed
    when it fails). The parent directory is created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # mkstemp: O_CREAT|O_EXCL under a random name, so nothing planted there is followed.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fchmod(out.fileno(), mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Replace `path` with `data` (str is written as UTF-8) through `atomic_output`."""
    with atomic_output(path, mode) as out:
        out.write(data.encode("utf-8") if isinstance(data, str) else data)


def copy_atomic(src: Path, dest: Path) -> None:
    """Replace `dest` with a copy of `src` through `atomic_output`."""
    with src.open("rb") as inp, atomic_output(dest) as out:
        shutil.copyfileobj(inp, out, 1 << 20)


def fill_atomic(dest: Path, fill: Callable[[str], None]) -> None:
    """Let `fill(temp_path)` write a fresh temporary file beside `dest` (for clients that only
    write to a path name, e.g. boto3), then move it over `dest`."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    os.close(fd)
    try:
        fill(tmp)
        if Path(tmp).is_symlink():
            raise UnsafeKey(f"{dest}: the temporary file was replaced by a symlink")
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def open_append_nofollow(path: Path) -> IO[bytes]:
    """Open `path` to append (created when absent) without following a symlink at its name."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    return os.fdopen(fd, "ab")
