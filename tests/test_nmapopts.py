"""flan's table of Nmap's options against the installed Nmap 7.93 itself, and argv read the way
Nmap's getopt_long_only() reads it. Nmap is only asked to parse its options (each call stops at
an option error, inside a network namespace of its own): no packet is sent."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from flanscan._nmapopts import (
    LONG_OPTIONS,
    REFUSED_SCRIPTS,
    SAFE_SCRIPT_CATEGORIES,
    SHORT_ARITY,
    mask_argv,
    mask_command,
    split_nmap_argv,
)

NMAP = shutil.which("nmap")
UNSHARE = shutil.which("unshare")
needs_nmap = pytest.mark.skipif(
    NMAP is None or UNSHARE is None, reason="nmap or unshare is not installed"
)


def _nmap_says(tmp_path: Path, *args: str) -> str:
    assert NMAP is not None and UNSHARE is not None
    r = subprocess.run(
        [UNSHARE, "-n", NMAP, *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    return r.stdout + r.stderr


def _version() -> str:
    assert NMAP is not None
    out = subprocess.run([NMAP, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"Nmap version (\S+)", out)
    return m.group(1) if m else ""


@needs_nmap
def test_every_long_option_has_nmaps_own_arity(tmp_path: Path) -> None:
    if _version() != "7.93":
        pytest.skip("the table is Nmap 7.93's")
    for name, arity in LONG_OPTIONS.items():
        if arity == "none":
            assert "doesn't allow an argument" in _nmap_says(tmp_path, f"--{name}=x"), name
        elif arity == "required":
            assert "requires an argument" in _nmap_says(tmp_path, f"--{name}"), name
        else:
            said = _nmap_says(tmp_path, f"--{name}=x")
            assert "doesn't allow" not in said and "unrecognized" not in said, name
    assert "unrecognized option" in _nmap_says(tmp_path, "--min_rate=5")  # no underscores in 7.93


@needs_nmap
def test_every_short_option_has_nmaps_own_arity(tmp_path: Path) -> None:
    if _version() != "7.93":
        pytest.skip("the table is Nmap 7.93's")
    for letter, arity in SHORT_ARITY.items():
        if arity == "required":
            assert "requires an argument" in _nmap_says(tmp_path, f"-{letter}"), letter
    for letter in "aBcCGjJkKNQtuUWxXzZ":  # not short options: flan and Nmap agree why
        said = _nmap_says(tmp_path, f"-{letter}")
        (ours,) = split_nmap_argv([f"-{letter}"]).problems
        assert ("ambiguous" in said) == ("ambiguous" in ours), (letter, said, ours)
        assert ("unrecognized" in said) == ("unrecognized" in ours), (letter, said, ours)
    # -l, -w, -y: unique prefixes of --log-errors, --webxml, --yoloscan for both
    for letter in "lwy":
        (arg,) = split_nmap_argv([f"-{letter}"]).options
        assert arg.abbreviated
        said = _nmap_says(tmp_path, f"-{letter}=x")
        assert f"option '{arg.name}' doesn't allow an argument" in said.replace("'-", "'--")


@needs_nmap
def test_every_option_in_nmap_help_is_in_the_table() -> None:
    assert NMAP is not None
    text = subprocess.run([NMAP, "--help"], capture_output=True, text=True).stdout
    names = set()
    for token in re.findall(r"(?<![\w-])(--?[A-Za-z][\w/-]*)", text):
        dashes = "--" if token.startswith("--") else "-"
        for part in token.lstrip("-").split("/"):
            names.add(dashes + part.lstrip("-"))
    names -= {"--", "-"}
    for name in sorted(names):
        parsed = split_nmap_argv([name, "value"])
        assert not parsed.problems, (name, parsed.problems)


def test_nse_categories_flan_allows_hold_no_refused_script() -> None:
    scripts = Path("/usr/share/nmap/scripts")
    if not (scripts / "script.db").is_file():
        pytest.skip("Nmap's script database is not installed")
    db = (scripts / "script.db").read_text()
    entries = re.findall(r'filename = "([^"]+)\.nse", categories = \{([^}]*)\}', db)
    assert entries
    writers = {
        path.stem
        for path in scripts.glob("*.nse")
        if re.search(r'io\.open\([^)]*"[wa]', path.read_text(errors="replace"))
    }
    assert writers <= REFUSED_SCRIPTS, sorted(writers - REFUSED_SCRIPTS)
    for name, categories in entries:
        if set(re.findall(r'"(\w+)"', categories)) & SAFE_SCRIPT_CATEGORIES:
            assert name not in REFUSED_SCRIPTS, name
            assert not name.startswith(("broadcast-", "targets-")), name


@pytest.mark.parametrize(
    ("argv", "options", "targets"),
    [
        (["--unique", "127.0.0.2"], ["--unique"], ["127.0.0.2"]),
        (["--iR=5"], ["--iR"], []),
        (["-iR5"], ["-i"], []),  # -i with the value R5: Nmap's deprecated -iL
        (["-oX-"], ["-o"], []),  # -o (normal output) with the value X-
        (["-sSV", "-p22", "-T4"], ["-sS", "-sV", "-p", "-T"], []),
        (["--timing", "4", "-PS22,80", "-Pn"], ["-T", "-PS", "-Pn"], []),
        (
            ["--script-timeout", "30s", "--proxy", "socks4://127.0.0.1:9"],
            ["--script-timeout", "--proxy"],
            [],
        ),
        (["-d", "127.0.0.2"], ["-d"], ["127.0.0.2"]),  # -d's value must be attached
        (["-vv", "--app"], ["--vv", "--append-output"], []),
        (["-sV", "--", "-p"], ["-sV"], ["-p"]),
    ],
)
def test_argv_is_split_as_nmap_splits_it(
    argv: list[str], options: list[str], targets: list[str]
) -> None:
    parsed = split_nmap_argv(argv)
    assert [o.name for o in parsed.options] == options
    assert list(parsed.targets) == targets
    assert not parsed.problems


def test_what_nmap_refuses_is_a_problem() -> None:
    assert "ambiguous" in split_nmap_argv(["--excl", "x"]).problems[0]
    assert "ambiguous" in split_nmap_argv(["-sc"]).problems[0]
    assert "takes no value" in split_nmap_argv(["--unique=127.0.0.2"]).problems[0]
    assert "needs a value" in split_nmap_argv(["-p"]).problems[0]
    assert "unrecognized" in split_nmap_argv(["--no-such-flag"]).problems[0]


def test_script_args_are_masked_in_every_spelling() -> None:
    argv = ["-sV", "--script-args", "pass=s1", "--script-args=pass=s2", "-script-args", "s3"]
    assert mask_argv(argv) == ["-sV", "--script-args", "***", "--script-args=***",
                               "-script-args", "***"]  # fmt: skip
    masked = mask_command("nmap -sV --script-args 'user=a,pass=s e c' -oX x.xml 127.0.0.1")
    assert masked == "nmap -sV --script-args '***' -oX x.xml 127.0.0.1"
    assert mask_command("nmap -sV 127.0.0.1") == "nmap -sV 127.0.0.1"
