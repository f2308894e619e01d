"""Start-up: offline commands load no network library, and `flan --help` lists the commands from
the CLI's table without importing them (so the table must say what the commands say).

Each command runs for real in a fresh interpreter (the modules a test process already imported
would hide a regression); the child then reports which network libraries `sys.modules` holds.
Timings are measured by bench/bench_startup.py, not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

from flanscan._cli import COMMANDS, cli

# Client libraries of the online features (downloads, uploads, alerts, PostgreSQL history).
NETWORK_LIBRARIES = (
    "httpx",
    "httpcore",
    "h11",
    "boto3",
    "botocore",
    "s3transfer",
    "google",
    "psycopg",
    "smtplib",
    "urllib3",
    "requests",
)

_CHILD = """
import json, sys
from flanscan._cli import cli
for args in json.loads(sys.argv[1]):
    try:
        cli(args, prog_name="flan", standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise
prefixes = json.loads(sys.argv[2])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in prefixes)))
"""


def _loaded_network_modules(*commands: list[str]) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(commands), json.dumps(NETWORK_LIBRARIES)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    loaded: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return loaded


def test_the_check_sees_a_network_library() -> None:
    # The probe itself must be able to fail: `flan db update --help` imports nothing online,
    # but importing the download module does.
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, flanscan._vulndb._download; print('httpx' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.stdout.strip() == "True", proc.stderr


def test_help_loads_no_command_module_or_network_library() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from flanscan._cli import cli\n"
            "try:\n cli(['--help'], prog_name='flan')\nexcept SystemExit: pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('flanscan._cli.')"
            " or m.split('.')[0] in ('httpx', 'rich', 'boto3', 'google', 'psycopg')))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_offline_commands_load_no_network_library(tmp_path: Path, nmap_samples: Path) -> None:
    pytest.importorskip("weasyprint")
    db = tmp_path / "vulndb.sqlite3"
    shared = nmap_samples.parent / "nvd-sample"
    old, new = nmap_samples / "2_hosts.xml", nmap_samples / "2_hosts_achange.xml"
    history = str(tmp_path / "history.sqlite3")
    out = tmp_path / "out"
    commands = [
        ["--help"],
        ["report", "--help"],
        ["db", "import", "--db", str(db), str(shared / "nvdcve-2.0-sample.json")],
        ["db", "status", "--db", str(db)],
        *(
            ["report", str(old), "--db", str(db), "-f", fmt, "-o", str(out)]
            for fmt in ("json", "html", "md", "csv", "tex", "pdf")
        ),
        ["history", "import", str(old), str(new), "--db", str(db), "--history", history],
        ["history", "--history", history],
        ["diff", str(old), str(new), "--db", str(db)],
    ]
    assert _loaded_network_modules(*commands) == []
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    assert (out / "report.json").stat().st_size > 0


def test_command_table_says_what_each_command_says() -> None:
    ctx = click.Context(cli)
    for name, (_target, short_help) in COMMANDS.items():
        command = cli.get_command(ctx, name)
        assert command is not None and command.help is not None
        for limit in (20, 45, 200):
            stand_in = click.Command(None, help=short_help)
            assert stand_in.get_short_help_str(limit) == command.get_short_help_str(limit), name
    # `flan --help` as click's own Group would write it with every command imported.
    formatter = ctx.make_formatter()
    click.Group.format_commands(cli, ctx, formatter)
    expected = formatter.getvalue()
    formatter = ctx.make_formatter()
    cli.format_commands(ctx, formatter)
    assert formatter.getvalue() == expected
