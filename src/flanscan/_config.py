"""flan.toml: option defaults from a user-level and a project-level file.

Precedence, highest first: the command line, then environment variables (FLAN_<COMMAND>_<OPTION>
and the documented FLAN_DB / FLAN_HISTORY), then the project's `./flan.toml` (the working
directory), then the user's `flan.toml` in the XDG config directory (`~/.config/flanscan/`),
then the built-in defaults. Click gives the first three (a file's values are its `default_map`).

A file holds top-level keys, for every command that has the option, and `[COMMAND]` tables
for one command, each key an option's long name without the dashes:

    db = "/var/lib/flan/vulndb.sqlite3"
    [scan]
    ports = "all"
    format = ["html", "json"]

Relative paths are relative to the file's directory, not to where flan runs.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from flanscan._errors import UsageError

CONFIG_NAME = "flan.toml"


@dataclass(frozen=True)
class Setting:
    """One value of a config file, and the file it came from."""

    value: object
    file: Path


def config_files(cwd: Path | None = None) -> list[Path]:
    """The files read, lowest precedence first: the user's, then the project's."""
    import platformdirs

    user = Path(platformdirs.user_config_dir("flanscan")) / CONFIG_NAME
    project = (cwd or Path.cwd()) / CONFIG_NAME
    files = [user] if _present(user) else []
    if _present(project) and project.resolve() != user.resolve():
        files.append(project)
    return files


def _present(path: Path) -> bool:
    # A directory flan may not enter (a container user's HOME=/root) holds no config for it.
    try:
        return path.is_file()
    except OSError:
        return False


def _read(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None


def load_config(files: list[Path] | None = None) -> dict[str, dict[str, Setting]]:
    """Settings by command ("" for the top level), later files overriding earlier ones."""
    merged: dict[str, dict[str, Setting]] = {}
    for path in config_files() if files is None else files:
        for key, value in _read(path).items():
            if isinstance(value, dict):
                table = merged.setdefault(key, {})
                for option, inner in value.items():
                    if isinstance(inner, dict):
                        raise UsageError(f"{path}: [{key}.{option}]: nested tables are not read")
                    table[option] = Setting(inner, path)
            else:
                merged.setdefault("", {})[key] = Setting(value, path)
    return merged


def command_defaults(
    config: Mapping[str, Mapping[str, Setting]],
    command: str,
    options: Mapping[str, tuple[str, bool]],
) -> dict[str, object]:
    """The default_map of `command`: its option names (long name without dashes) -> (parameter
    name, is a path) given by `options`. Top-level keys apply where the command has the
    option; a key in the command's own table that it does not have is an error."""
    found: dict[str, object] = {}
    for section, strict in (("", False), (command, True)):
        for key, setting in config.get(section, {}).items():
            known = options.get(key.replace("_", "-"))
            if known is None:
                if strict:
                    raise UsageError(
                        f"{setting.file}: [{command}] {key}: flan {command} has no option "
                        f"--{key.replace('_', '-')}"
                    )
                continue
            name, is_path = known
            found[name] = _resolve(setting, is_path)
    return found


def _resolve(setting: Setting, is_path: bool) -> object:
    if not is_path:
        return setting.value

    def one(value: object) -> object:
        if isinstance(value, str) and "://" not in value:
            return str(setting.file.parent / os.path.expanduser(value))
        return value

    if isinstance(setting.value, list):
        return [one(v) for v in setting.value]
    return one(setting.value)


def sections(config: Mapping[str, object]) -> Iterator[str]:
    """The command tables a config names."""
    return (name for name in config if name)
