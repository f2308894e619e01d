"""The `flan` command line: parses arguments and prints. All logic lives in the library."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from flanscan._errors import FlanError

EXIT_CODES_HELP = """\b
Exit codes:
  0  done
  1  done, and findings reached the --fail-on threshold
  2  usage or environment error (bad input, nmap missing, ...)
  3  scan incomplete (a worker failed or was interrupted; raw XML kept)
  4  results saved, but an alert, an upload or the history record failed
"""

# name -> "module:attribute"; imported only when the command runs, so `flan --help` stays fast
# and one command's optional dependencies never break another.
COMMANDS: dict[str, str] = {
    # each command module adds its own line here
    "scan": "flanscan._cli.scan:scan",
    "db": "flanscan._cli.db:db",
    "report": "flanscan._cli.report:report",
    "history": "flanscan._cli.history:history",
    "diff": "flanscan._cli.history:diff",
    "merge": "flanscan._cli.merge:merge",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (click's documented lazy pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FlanError as exc:
            click.echo(f"flan: error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=LazyGroup, epilog=EXIT_CODES_HELP)
@click.version_option(package_name="flanscan", prog_name="flan")
def cli() -> None:
    """Flan Scan: Nmap finds services, an offline CVE database says which are vulnerable,
    and a short report grouped by service says what to fix."""


def main() -> None:
    cli(prog_name="flan")
