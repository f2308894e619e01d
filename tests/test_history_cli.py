"""`flan history`, `flan history import` and `flan diff` through the real command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from flanscan._cli import cli
from flanscan._parse import NmapXmlFile


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def _open_ports(path: Path) -> set[tuple[str, int, str]]:
    return {
        (h.address, s.port, s.protocol)
        for h in NmapXmlFile(path).hosts()
        for s in h.services
        if s.state == "open"
    }


def test_history_without_store_is_a_clear_error(tmp_path: Path) -> None:
    code, _out, err = run("history", "--history", str(tmp_path / "none.sqlite3"))
    assert code == 2 and "no history at" in err and "Traceback" not in err
    assert not (tmp_path / "none.sqlite3").exists()


def test_import_list_and_diff(tmp_path: Path, nmap_samples: Path) -> None:
    store = str(tmp_path / "h.sqlite3")
    old, new = nmap_samples / "2_hosts.xml", nmap_samples / "2_hosts_achange.xml"
    code, out, err = run("history", "import", str(old), str(new), "--no-db", "--history", store)
    assert code == 0, err
    assert out.count("recorded as run") == 2
    code, out, _ = run("history", "import", str(old), "--no-db", "--history", store)
    assert code == 0 and "already recorded as run" in out

    code, out, _ = run("history", "--history", store, "--format", "json")
    runs = json.loads(out)
    assert len(runs) == 2 and all(r["source"] == "import" for r in runs)
    new_id, old_id = runs[0]["id"], runs[1]["id"]  # newest first
    code, out, _ = run("history", "--history", store)
    assert out.splitlines()[0].split()[:2] == ["RUN", "STARTED"] and new_id in out

    code, out, _ = run("diff", old_id, new_id, "--history", store, "--format", "json")
    assert code == 0
    changes = json.loads(out)
    got = {(i["kind"], i["location"]["address"], i["location"]["port"]) for i in changes["items"]}
    before, after = _open_ports(old), _open_ports(new)
    expected = {("new-port", a, p) for a, p, _ in after - before}
    expected |= {("closed-port", a, p) for a, p, _ in before - after}
    assert got == expected and expected

    # The same diff straight from the XML files, without the store.
    code, out2, _ = run("diff", str(old), str(new), "--no-db", "--format", "json")
    assert code == 0 and json.loads(out2)["items"] == changes["items"]
    code, text, _ = run("diff", str(old), str(new), "--no-db")
    assert text.startswith("Changes since 2013-02-24") and "closed port" in text


def test_diff_of_a_run_id_that_is_also_a_directory_here(
    tmp_path: Path, nmap_samples: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Result directories are named by run id: inside flan-results/ a bare name can be both.
    store = str(tmp_path / "h.sqlite3")
    old, new = nmap_samples / "2_hosts.xml", nmap_samples / "2_hosts_achange.xml"
    code, _out, err = run("history", "import", str(old), str(new), "--no-db", "--history", store)
    assert code == 0, err
    _code, out, _ = run("history", "--history", store, "--format", "json")
    new_id, old_id = (r["id"] for r in json.loads(out))
    _code, recorded, _ = run("diff", old_id, new_id, "--history", store, "--format", "json")
    expected = json.loads(recorded)["items"]
    assert expected  # the two sample runs differ
    here = tmp_path / "results"
    (here / old_id).mkdir(parents=True)
    (here / old_id / "scan.xml").write_bytes(new.read_bytes())  # not what run old_id found
    monkeypatch.chdir(here)
    code, by_id, err = run("diff", old_id, new_id, "--history", store, "--format", "json")
    assert code == 0, err
    assert json.loads(by_id)["items"] == expected  # the recorded run, not the directory
    # Written as a path, the directory is read: its XML is the new run's, so nothing changed.
    code, by_dir, err = run(
        "diff", f"./{old_id}", new_id, "--history", store, "--no-db", "--format", "json"
    )
    assert code == 0, err
    assert json.loads(by_dir)["items"] == []


def test_diff_unknown_run(tmp_path: Path, nmap_samples: Path) -> None:
    store = str(tmp_path / "h.sqlite3")
    run("history", "import", str(nmap_samples / "2_hosts.xml"), "--no-db", "--history", store)
    code, _out, err = run("diff", "nope", str(nmap_samples / "2_hosts.xml"), "--no-db",
                          "--history", store)  # fmt: skip
    assert code == 2 and "no run 'nope'" in err


def test_import_as_one_run(tmp_path: Path, nmap_samples: Path) -> None:
    store = str(tmp_path / "h.sqlite3")
    a, b = nmap_samples / "1_hosts.xml", nmap_samples / "2_tcp_hosts.xml"
    code, out, _ = run("history", "import", "--as-one-run", str(a), str(b), "--no-db",
                       "--history", store)  # fmt: skip
    assert code == 0 and out.count("recorded as run") == 1
    runs = json.loads(run("history", "--history", store, "--format", "json")[1])
    hosts = {addr for addr, _p, _pr in _open_ports(a) | _open_ports(b)}
    assert len(runs) == 1 and runs[0]["hosts"] >= len(hosts)


@pytest.mark.parametrize("command", [["history"], ["history", "import"], ["diff"]])
def test_commands_documented(command: list[str]) -> None:
    code, out, _ = run(*command, "--help")
    assert code == 0 and "--history" in out


def test_every_option_is_documented() -> None:
    """docs/history.md names every option of `flan history`, `history import` and `diff`."""
    import click

    from flanscan._cli.history import diff, history

    docs = (Path(__file__).resolve().parent.parent / "docs" / "history.md").read_text()
    commands: list[click.Command] = [history, diff, *history.commands.values()]
    for command in commands:
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--") and opt != "--help":
                    assert opt in docs, f"{command.name} {opt} missing from docs/history.md"
