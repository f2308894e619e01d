"""No target out of scope, no Internet-sized scope, no secret in reports: `flan scan` through the
CLI with a fake `nmap` early on PATH that records its argv and writes canned XML (no packet leaves
the machine). The hostile inputs live in tests/data/hostile/."""

from __future__ import annotations

import json
import random
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _fake_nmap import FakeNmap
from _interrupt import default_sigint
from click.testing import CliRunner

from flanscan._cli import cli
from flanscan._errors import UsageError
from flanscan._scan.nmapargs import PassThrough

HOSTILE = Path(__file__).parent / "data" / "hostile"


def _cases(name: str) -> list[tuple[str, str]]:
    rows = []
    for line in (HOSTILE / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            verdict, _, text = line.partition("\t")
            rows.append((verdict, text))
    return rows


FLAG_CASES = _cases("nmap-flags.txt")


def _flan(fake: FakeNmap, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flanscan", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=fake.env,
        cwd=fake.bin_dir,
    )


def _invoke(fake: FakeNmap, *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env=fake.env)


@pytest.mark.parametrize(("verdict", "flags"), FLAG_CASES, ids=[f[1] for f in FLAG_CASES])
def test_hostile_pass_through_flags(
    fake_nmap: FakeNmap, tmp_path: Path, verdict: str, flags: str
) -> None:
    words = shlex.split(flags)
    if verdict == "allow":
        PassThrough.parse(words)  # no UsageError
        return
    with pytest.raises(UsageError):
        PassThrough.parse(words)
    run = tmp_path / "run"
    result = _invoke(fake_nmap, "scan", "--no-db", "--output-dir", str(run), "127.0.0.1", "--",
                     *words)  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flan: error: "), result.stderr
    assert fake_nmap.calls() == []  # Nmap never ran
    assert not run.exists()


def test_a_value_nmap_would_scan_is_refused_not_taken_for_a_value(fake_nmap: FakeNmap) -> None:
    # --unique takes no value: 127.0.0.2 would be a second target.
    run = fake_nmap.bin_dir.parent / "run"
    r = _flan(fake_nmap, "scan", "--no-db", "--output-dir", str(run), "127.0.0.1", "--",
              "--unique", "127.0.0.2")  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "'127.0.0.2' is not an option (Nmap would scan it as a target)" in r.stderr
    assert fake_nmap.calls() == []


def test_allowed_flags_reach_nmap_with_only_the_given_targets(fake_nmap: FakeNmap) -> None:
    fake_nmap.hosts("127.0.0.1")
    run = fake_nmap.bin_dir.parent / "run"
    r = _flan(fake_nmap, "scan", "--no-db", "--format", "json", "--output-dir", str(run),
              "127.0.0.1", "--", "-sSV", "--script-timeout", "30s", "--unique", "-p22")  # fmt: skip
    assert r.returncode == 0, r.stderr
    (argv,) = fake_nmap.calls()
    assert argv[-1] == "127.0.0.1" and "127.0.0.2" not in argv
    assert argv[argv.index("--script-timeout") + 1] == "30s"
    report = json.loads((run / "report.json").read_text())
    assert "30s" not in report["scan"]["targets"]


def _xml(path: Path, args: str, *hosts: str) -> Path:
    host_xml = "".join(
        f'<host><status state="up" reason="syn-ack"/><address addr="{h}" addrtype="ipv4"/>'
        '<ports><port protocol="tcp" portid="22"><state state="open" reason="syn-ack"/>'
        '<service name="ssh" product="OpenSSH" version="9.2p1" method="probed" conf="10"/>'
        "</port></ports></host>"
        for h in hosts
    )
    path.write_text(
        f'<?xml version="1.0"?><nmaprun scanner="nmap" args="{args}" start="1700000000" '
        f'version="7.93">{host_xml}<runstats><finished time="1700000001" exit="success"/>'
        f'<hosts up="{len(hosts)}" down="0" total="{len(hosts)}"/></runstats></nmaprun>\n'
    )
    return path


def test_report_reads_saved_command_lines_with_nmaps_table(fake_nmap: FakeNmap) -> None:
    # Values of options the old table did not know became targets of the report.
    xml = _xml(fake_nmap.bin_dir.parent / "scan.xml",
               "nmap -sV --script-timeout 30s --proxy socks4://127.0.0.1:9 -d 127.0.0.1",
               "127.0.0.1")  # fmt: skip
    out = fake_nmap.bin_dir.parent / "report.json"
    r = _flan(fake_nmap, "report", "--no-db", "-f", "json", "-o", str(out), str(xml))
    assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text())["scan"]["targets"] == ["127.0.0.1"]


def test_script_args_are_masked_in_run_json_report_and_history(fake_nmap: FakeNmap) -> None:
    fake_nmap.hosts("127.0.0.1")
    run = fake_nmap.bin_dir.parent / "run"
    history = fake_nmap.bin_dir.parent / "history.sqlite3"
    r = _flan(fake_nmap, "scan", "--no-db", "--format", "json", "--format", "md",
              "--output-dir", str(run), "--history", str(history), "127.0.0.1", "--",
              "--script", "ssh-hostkey", "--script-args", "user=admin,pass=hunter2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    (argv,) = fake_nmap.calls()
    assert "user=admin,pass=hunter2" in argv  # Nmap itself gets the value
    assert "hunter2" in (run / "xml" / "scan-01.xml").read_text()  # raw XML: what Nmap wrote
    for path in (run / "run.json", run / "report.json", run / "report.md", history):
        data = path.read_bytes()
        assert b"hunter2" not in data, path
    assert "--script-args '***'" in json.loads((run / "report.json").read_text())["scan"]["profile"]
    # a report rebuilt from the raw XML alone (no run.json) masks it as well
    (run / "run.json").unlink()
    out = fake_nmap.bin_dir.parent / "again.json"
    r = _flan(fake_nmap, "report", "--no-db", "-f", "json", "-o", str(out), str(run))
    assert r.returncode == 0, r.stderr
    assert b"hunter2" not in out.read_bytes()


def _unescape(text: str) -> str:
    return re.sub(r"\\u([0-9a-f]{4})", lambda m: chr(int(m.group(1), 16)), text)


TARGET_CASES = [(v, _unescape(t)) for v, t in _cases("targets.txt")]


@pytest.mark.parametrize(("verdict", "target"), TARGET_CASES, ids=[t for _, t in TARGET_CASES])
def test_hostile_targets(fake_nmap: FakeNmap, tmp_path: Path, verdict: str, target: str) -> None:
    fake_nmap.hosts("127.0.0.1")
    ips = tmp_path / "ips.txt"
    ips.write_text(f"# hostile\n{target}\n", encoding="utf-8")
    # in a file, `#` starts a comment; as an argument, `-` starts an option
    ways = ([["-iL", str(ips)]] if "#" not in target else []) + (
        [[target]] if not target.startswith("-") else []
    )
    for way in ways:
        run = tmp_path / f"run-{len(way)}"
        result = _invoke(fake_nmap, "scan", "--no-db", "-f", "json", "--output-dir", str(run),
                         *way)  # fmt: skip
        if verdict == "allow":
            assert result.exit_code == 0, result.output
            continue
        assert result.exit_code == 2, (way, result.output)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("flan: error: "), result.stderr
        assert fake_nmap.calls() == []
        assert not run.exists()


def test_internet_sized_scope_is_refused_naming_the_target(fake_nmap: FakeNmap) -> None:
    run = fake_nmap.bin_dir.parent / "run"
    r = _flan(fake_nmap, "scan", "--no-db", "--output-dir", str(run), "127.0.0.1", "127.0.0.1/0")
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "flan: error: target argument 2: '127.0.0.1/0' covers 3,741,319,168 addresses; the scope "
        "(3,741,319,168 addresses) is over --max-hosts 65,536: check the prefix (a /0 is the "
        "whole Internet), or raise --max-hosts if you mean it"
    )
    assert fake_nmap.calls() == [] and not run.exists()
    # --max-hosts raises the limit; excludes count
    r = _flan(fake_nmap, "scan", "--no-db", "--max-hosts", "3", "--workers", "1", "--output-dir",
              str(run), "127.0.0.0/30", "--exclude", "127.0.0.3")  # fmt: skip
    assert r.returncode == 0, r.stderr
    (argv,) = fake_nmap.calls()
    assert argv[-2:] == ["127.0.0.0/31", "127.0.0.2"]


def test_multicast_and_reserved_ranges_are_never_targets(fake_nmap: FakeNmap) -> None:
    # Only loopback and never-scanned blocks are named, even with a fake nmap (safety rule).
    run = fake_nmap.bin_dir.parent / "run"
    # a network made only of multicast and reserved blocks is refused, nothing is run
    r = _flan(fake_nmap, "scan", "--no-db", "--max-hosts", str(2**32), "--output-dir", str(run),
              "--workers", "1", "224.0.0.0/3")  # fmt: skip
    assert r.returncode == 2, r.stderr
    assert "multicast" in r.stderr and "reserved" in r.stderr
    assert fake_nmap.calls() == [] and not run.exists()
    # a network that also holds scannable addresses is scanned without the never-scanned part
    r = _flan(fake_nmap, "scan", "--no-db", "--output-dir", str(run), "--workers", "1",
              "::/127")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "::/128 (unspecified) addresses are not scanned" in r.stderr
    (argv,) = fake_nmap.calls()
    assert argv[-1] == "::1"  # :: left out


def test_hosts_outside_the_scope_are_named_and_left_out(fake_nmap: FakeNmap) -> None:
    fake_nmap.hosts("127.0.0.1", "127.0.0.3", "::1")  # "Nmap" reports hosts nobody listed
    run = fake_nmap.bin_dir.parent / "run"
    r = _flan(fake_nmap, "scan", "--no-db", "-f", "json", "--output-dir", str(run),
              "127.0.0.1-2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    line = ("2 host(s) in the Nmap XML are outside the scan's targets and left out of the "
            "report: 127.0.0.3, ::1")  # fmt: skip
    assert f"warning: {line}" in r.stderr
    report = json.loads((run / "report.json").read_text())
    assert {h["address"] for h in report["hosts"]} == {"127.0.0.1"}
    assert line in report["notes"] and line in report["scan"]["warnings"]
    # `flan report` of the run directory (run.json gives the scope) says it too
    out = fake_nmap.bin_dir.parent / "again.json"
    r = _flan(fake_nmap, "report", "--no-db", "-f", "json", "-o", str(out), str(run))
    assert r.returncode == 0 and f"warning: {line}" in r.stderr
    assert {h["address"] for h in json.loads(out.read_text())["hosts"]} == {"127.0.0.1"}


def test_a_worker_stopped_before_nmap_wrote_anything_has_no_xml(fake_nmap: FakeNmap) -> None:
    fake_nmap.hosts("127.0.0.1")
    fake_nmap.env["FAKE_NMAP_SLEEP"] = "120"
    run = fake_nmap.bin_dir.parent / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "flanscan", "scan", "--no-db", "-f", "json", "--output-dir",
         str(run), "127.0.0.1"],
        env=fake_nmap.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_sigint,  # as in a terminal, even when the suite runs in the background
    )  # fmt: skip
    xml = run / "xml" / "scan-01.xml"
    deadline = time.monotonic() + 60
    while not xml.exists():  # the fake created its (empty) XML and waits
        assert proc.poll() is None and time.monotonic() < deadline, "the fake nmap never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, err
    assert not xml.exists()  # no empty file left behind
    (worker,) = json.loads((run / "run.json").read_text())["workers"]
    assert worker["status"] == "interrupted" and worker["xml"] is None
    report = json.loads((run / "report.json").read_text())
    assert report["scan"]["incomplete_targets"] == ["127.0.0.1"]


def test_random_target_notation_is_read_or_refused_in_one_line() -> None:
    """Random strings over the characters of every notation (and look-alikes): each one is a
    target or a UsageError, never another exception."""
    from flanscan._targets import TargetSet, check_scope, parse_target

    pieces = [*"0123456789abcdefABCDEF.:/-*,%[] \t", "\u0661", "\uff12", "\u200b", "\u00fc",
              "::", "255", "256", "/0", "/128", "ffff", "0x", "#"]  # fmt: skip
    rng = random.Random(13)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 14)))
        try:
            spec = parse_target(text, "arg")
            check_scope([spec], [], 1 << 20)
            TargetSet.build([spec]).nmap_targets()
        except UsageError as exc:
            assert "\n" not in str(exc)


def test_the_library_refuses_an_internet_sized_scope_too(tmp_path: Path) -> None:
    from flanscan._scan import ScanOptions, check_scan
    from flanscan._targets import parse_target

    options = ScanOptions(targets=(parse_target("::/0", "arg"),), output_dir=tmp_path / "run")
    with pytest.raises(UsageError, match="is over --max-hosts 65,536"):
        check_scan(options)
    assert not (tmp_path / "run").exists()


def test_a_run_json_of_an_older_flan_is_masked_on_reading(fake_nmap: FakeNmap) -> None:
    fake_nmap.hosts("127.0.0.1")
    run = fake_nmap.bin_dir.parent / "run"
    r = _flan(fake_nmap, "scan", "--no-db", "-f", "json", "--output-dir", str(run), "127.0.0.1",
              "--", "--script-args", "pass=hunter2")  # fmt: skip
    assert r.returncode == 0, r.stderr
    record = json.loads((run / "run.json").read_text())  # as flan wrote it before masking
    record["profile_description"] = record["profile_description"].replace("'***'", "pass=hunter2")
    record["nmap_commands"] = [c.replace("'***'", "pass=hunter2") for c in record["nmap_commands"]]
    (run / "run.json").write_text(json.dumps(record))
    out = fake_nmap.bin_dir.parent / "again.json"
    r = _flan(fake_nmap, "report", "--no-db", "-f", "json", "-o", str(out), str(run))
    assert r.returncode == 0, r.stderr
    assert "hunter2" not in out.read_text()
    assert "--script-args '***'" in json.loads(out.read_text())["scan"]["profile"]
