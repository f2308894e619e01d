"""The `flan` command line: parses arguments and prints. All logic lives in the library."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from flanscan._errors import FlanError, UsageError
from flanscan._secrets import mask_text
from flanscan._status import ExitStatus, exit_codes_help

EXIT_CODES_HELP = exit_codes_help()

# name -> ("module:attribute", first paragraph of its --help); imported only when the command
# runs, so `flan --help` stays fast (it lists the commands from this table) and one command's
# optional dependencies never break another. tests/test_cli_startup.py checks that the help
# text here is the command's own.
COMMANDS: dict[str, tuple[str, str]] = {
    # each command module adds its own line here
    "scan": (
        "flanscan._cli.scan:scan",
        "Scan TARGETs (addresses, CIDR networks, Nmap-style ranges such as 198.18.0.1-20, or "
        "hostnames) with Nmap and write a service-centred report.",
    ),
    "db": ("flanscan._cli.db:db", "Build, update and inspect the offline vulnerability database."),
    "report": (
        "flanscan._cli.report:report",
        "Rebuild reports from saved Nmap XML files or result directories, without rescanning.",
    ),
    "history": (
        "flanscan._cli.history:history",
        "List recorded scans, newest first: id, start time, targets, hosts, open findings.",
    ),
    "diff": (
        "flanscan._cli.history:diff",
        "Show what changed from OLD to NEW: new and fixed findings, status changes (KEV, "
        "suppressions), new and closed ports, version changes, hosts that appeared or went away.",
    ),
    "merge": (
        "flanscan._cli.merge:merge",
        "Merge the shards of one run (`flan scan --shard I/N`) into one report and one history "
        "entry. SOURCE is the run's directory or its s3:// / gs:// prefix (PREFIX/<run-id>).",
    ),
}


def _name_envvars(command_name: str, command: click.Command) -> None:
    """Every option of a command reads FLAN_<COMMAND>_<OPTION>, named after its long name
    (FLAN_SCAN_PORTS, FLAN_REPORT_FORMAT), shown in --help; an option with its own documented
    variable (the history command's FLAN_HISTORY) keeps it."""
    for param in command.params:
        if not isinstance(param, click.Option) or param.envvar or param.hidden:
            continue
        longs = [o for o in param.opts if o.startswith("--")]
        if not longs or longs[0] in ("--help", "--version"):
            continue
        suffix = longs[0][2:].replace("-", "_").upper()
        param.envvar = f"FLAN_{command_name.upper()}_{suffix}"
        param.show_envvar = True


def _short_help(text: str, limit: int) -> str:
    # click's own truncation, through a stand-in command carrying the same help text.
    return click.Command(None, help=text).get_short_help_str(limit)


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (click's documented lazy pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target[0].split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        self._apply_config(ctx, cmd_name, command)
        return command

    def _apply_config(self, ctx: click.Context, name: str, command: click.Command) -> None:
        """flan.toml's values for this command become its defaults (below the command line and
        the environment; see _config.py)."""
        from flanscan._config import command_defaults, load_config, sections

        if "flan.config" not in ctx.meta:
            ctx.meta["flan.config"] = load_config()
            for section in sections(ctx.meta["flan.config"]):
                files = {s.file for s in ctx.meta["flan.config"][section].values()}
                where = ", ".join(sorted(str(f) for f in files))
                if section not in COMMANDS or section == "db":
                    raise UsageError(f"{where}: [{section}]: not a command whose options it sets")
        if isinstance(command, click.Group):
            return
        _name_envvars(name, command)
        options = {
            opt[2:]: (param.name or "", isinstance(param.type, click.Path))
            for param in command.params
            if isinstance(param, click.Option)
            for opt in param.opts
            if opt.startswith("--")
        }
        defaults = command_defaults(ctx.meta["flan.config"], name, options)
        if defaults:
            ctx.default_map = {**(ctx.default_map or {}), name: defaults}

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of `flan --help` from COMMANDS, without importing any command
        (the same layout and truncation as click's own `Group.format_commands`)."""
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = [(name, _short_help(COMMANDS[name][1], limit)) for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FlanError as exc:
            click.echo(f"flan: error: {mask_text(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        except OSError as exc:
            # A file or directory the user named or pointed flan at (read-only, full, missing):
            # one line naming it, never a traceback.
            where = f"{exc.filename}: " if exc.filename else ""
            reason = exc.strerror or type(exc).__name__
            click.echo(f"flan: error: {mask_text(where + reason)}", err=True)
            sys.exit(ExitStatus.USAGE)


@click.group(cls=LazyGroup, epilog=EXIT_CODES_HELP)
@click.version_option(package_name="flanscan", prog_name="flan")
def cli() -> None:
    """Flan Scan: Nmap finds services, an offline CVE database says which are vulnerable,
    and a short report grouped by service says what to fix."""


def main() -> None:
    # Every option also reads FLAN_<COMMAND>_<OPTION> (click's auto_envvar_prefix), e.g.
    # FLAN_SCAN_PORTS; none of these names is one of the documented FLAN_DB, FLAN_HISTORY,
    # FLAN_RUN_ID or FLAN_SHARD_COUNT (no command is called run or shard; the db group and the
    # history command take their names only as prefixes: FLAN_DB_UPDATE_..., FLAN_HISTORY_...).
    try:
        cli(prog_name="flan", auto_envvar_prefix="FLAN")
    except Exception:
        # A bug, not something the user did: the traceback is for the report, and the exit
        # status is not 1, which means "findings reached --fail-on" to a pipeline.
        import traceback

        traceback.print_exc()
        click.echo(f"flan: error: {ExitStatus.INTERNAL.meaning}", err=True)
        sys.exit(ExitStatus.INTERNAL)
