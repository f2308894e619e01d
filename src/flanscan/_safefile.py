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


# Kernel pseudo-filesystems: a file cannot be created there, whatever the permissions say.
_PSEUDO_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


class UnwritablePath(UsageError):
    """A file flan was asked to write that cannot be written there (one line: path, reason)."""


def _pseudo_root(path: Path) -> Path | None:
    absolute = Path(os.path.abspath(path))
    return next((r for r in _PSEUDO_ROOTS if absolute.is_relative_to(r)), None)


def check_file_target(path: Path, what: str = "output file") -> None:
    """Raise UnwritablePath when `path` cannot become a regular file flan replaces: a
    directory, a device or pipe (/dev/stdout), a kernel pseudo-filesystem (/proc), or a parent
    that is a file or not writable."""
    root = _pseudo_root(path)
    parent = next((p for p in path.parents if p.exists()), Path("."))
    if path.is_dir():
        reason = "is a directory; give a file name"
    elif path.exists() and not path.is_file():
        reason = "is a device or pipe, not a regular file; give a file path"
    elif not parent.is_dir():
        reason = f"{parent} is not a directory"
    elif root is not None:
        reason = f"{root} is a kernel pseudo-filesystem; give a path on disk"
    elif not os.access(parent, os.W_OK | os.X_OK):
        reason = f"directory {parent} is not writable"
    else:
        return
    raise UnwritablePath(f"{path}: cannot write the {what}: {reason}")


def check_dir_target(path: Path, what: str = "output directory") -> None:
    """Raise UnwritablePath when `path` cannot be (or be created as) a writable directory."""
    root = _pseudo_root(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    if path.exists() and not path.is_dir():
        reason = "is not a directory"
    elif not existing.is_dir():
        reason = f"{existing} is not a directory"
    elif root is not None:
        reason = f"{root} is a kernel pseudo-filesystem; give a path on disk"
    elif not os.access(existing, os.W_OK | os.X_OK):
        reason = f"directory {existing} is not writable"
    else:
        return
    raise UnwritablePath(f"{path}: cannot write the {what}: {reason}")


@contextmanager
def atomic_output(path: Path, mode: int = 0o644) -> Iterator[IO[bytes]]:
    """A binary file that replaces `path` when the block ends without an error (and is removed
    when it fails). The parent directory is created. A path that cannot hold a file (see
    `check_file_target`) raises UnwritablePath naming `path`, never its temporary file."""
    check_file_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # mkstemp: O_CREAT|O_EXCL under a random name, so nothing planted there is followed.
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UnwritablePath(
            f"{path}: cannot write the output file: {exc.strerror or exc}"
        ) from None
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
