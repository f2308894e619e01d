"""Every command and option of `flan` is documented in the README or docs/ (sqlite-utils style),
and every command's --help works and lists the exit codes where it runs a job."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from flanscan._cli import cli

REPO = Path(__file__).resolve().parent.parent
DOCS = "\n".join(
    p.read_text(encoding="utf-8")
    for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
)


def _commands(
    group: click.Group, prefix: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    ctx = click.Context(group)
    out = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None, name
        out.append(((*prefix, name), command))
        if isinstance(command, click.Group):
            out.extend(_commands(command, (*prefix, name)))
    return out


COMMANDS = _commands(cli)


def test_expected_commands_exist() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"scan", "report", "db update", "db import", "db status", "history", "history import",
            "diff", "merge"} <= names  # fmt: skip


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_command_and_options_are_documented(path: tuple[str, ...], command: click.Command) -> None:
    assert f"flan {' '.join(path)}" in DOCS, f"`flan {' '.join(path)}` is not in README or docs/"
    missing = [
        opt
        for param in command.params
        if isinstance(param, click.Option)
        for opt in param.opts
        if opt.startswith("--") and opt != "--help" and opt not in DOCS
    ]
    assert not missing, f"flan {' '.join(path)}: options not documented: {missing}"


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=[" ".join(p) for p, _ in COMMANDS])
def test_help_works(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
