"""Nothing lost (issue 13, item 4): `flan db import/update --db X` replace only a vulnerability
database; a local upload destination keeps what the run did not write; a history failure after
a scan still writes every report and done.json and exits 4; a corrupt database is called
corrupt. Everything through the real CLI, scanning only 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from flanscan._history import open_history

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO.parent / "shared" / "nmap-xml-samples"
FLAN = [sys.executable, "-m", "flanscan"]
QUICK = ["127.0.0.1", "--no-db", "--format", "json", "--", "-p", "1-5"]


def _flan(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLAN, *args], cwd=cwd, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=300)  # fmt: skip


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def _corrupt_sqlite(path: Path) -> None:
    """A SQLite file whose pages after the header are overwritten: damaged, not foreign."""
    open_history(path).close()
    data = bytearray(path.read_bytes())
    data[100:] = b"\xa5" * (len(data) - 100)
    path.write_bytes(bytes(data))
    for extra in ("-wal", "-shm"):
        Path(f"{path}{extra}").unlink(missing_ok=True)


@pytest.mark.parametrize("kind", ["history", "text", "corrupt"])
@pytest.mark.parametrize("command", ["import", "update"])
def test_db_import_and_update_refuse_what_is_not_a_vulnerability_database(
    kind: str, command: str, nvd_sample: Path, tmp_path: Path
) -> None:
    target = tmp_path / "x.sqlite3"
    if kind == "history":
        open_history(target).close()
    elif kind == "text":
        target.write_text("my notes\n")
    else:
        _corrupt_sqlite(target)
    before = target.read_bytes()
    args = ["db", command, "--db", str(target)]
    if command == "import":
        args.append(str(nvd_sample))
    else:  # never reached: the refusal comes before any download
        args += ["--only", "kev"]
    result = _flan(args, tmp_path, FLAN_KEV_URL="http://127.0.0.1:9/")
    assert result.returncode == 2, result.stderr
    line = _one_line_error(result)
    assert str(target) in line and "left untouched" in line
    assert target.read_bytes() == before
    if kind == "history":
        assert "history database" in line
        open_history(target, create=False).close()  # still a working history


def test_db_import_replaces_its_own_database(nvd_sample: Path, tmp_path: Path) -> None:
    db = tmp_path / "v.sqlite3"
    assert _flan(["db", "import", "--db", str(db), str(nvd_sample)], tmp_path).returncode == 0
    again = _flan(["db", "import", "--db", str(db), "--fresh", str(nvd_sample)], tmp_path)
    assert again.returncode == 0, again.stderr


def test_corrupt_vulnerability_database_is_called_corrupt(tmp_path: Path) -> None:
    db = tmp_path / "v.sqlite3"
    _corrupt_sqlite(db)
    result = _flan(["report", str(SAMPLES / "1_hosts.xml"), "--db", str(db), "-o",
                    str(tmp_path / "out")], tmp_path)  # fmt: skip
    assert result.returncode == 2
    assert "is corrupt" in _one_line_error(result)


def test_local_output_keeps_files_this_run_did_not_write(tmp_path: Path) -> None:
    store = tmp_path / "store"
    (store / "sub").mkdir(parents=True)
    (store / "keep.txt").write_text("mine\n")
    (store / "sub" / "keep2.txt").write_text("mine too\n")
    work = tmp_path / "work"
    work.mkdir()
    result = _flan(["scan", "--output", str(store), "--output-dir", ".", *QUICK], work)
    assert result.returncode == 0, result.stderr
    assert (store / "keep.txt").read_text() == "mine\n"
    assert (store / "sub" / "keep2.txt").read_text() == "mine too\n"
    uploaded = list(store.rglob("report.json"))
    assert len(uploaded) == 1  # the run itself was copied there
    manifest = json.loads((uploaded[0].parent / "uploads.json").read_text())
    assert not any("keep" in k for k in manifest["keys"])


def test_history_failure_after_a_scan_keeps_reports_and_done_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    runs.mkdir()
    # The default store (FLAN_HISTORY, not --history): not prechecked.
    _corrupt_sqlite(runs / "history.sqlite3")
    monkeypatch.setenv("FLAN_HISTORY", str(runs / "history.sqlite3"))
    store = tmp_path / "store"
    result = _flan(["scan", "--output", str(store), "--output-dir", str(runs / "r1"),
                    "--run-id", "r1", *QUICK], tmp_path)  # fmt: skip
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr
    failure = [line for line in result.stderr.splitlines() if "history not recorded" in line]
    assert len(failure) == 1 and "corrupt" in failure[0], result.stderr
    for where in (runs / "r1", store / "r1"):
        assert json.loads((where / "report.json").read_text())["scan"]
        assert json.loads((where / "done.json").read_text())["status"] == "complete"


@pytest.mark.parametrize("kind", ["vulndb", "foreign"])
def test_history_refuses_a_sqlite_file_that_is_not_a_history(
    kind: str, nvd_sample: Path, tmp_path: Path
) -> None:
    target = tmp_path / "x.sqlite3"
    if kind == "vulndb":
        assert (
            _flan(["db", "import", "--db", str(target), str(nvd_sample)], tmp_path).returncode == 0
        )
    else:
        import sqlite3

        with sqlite3.connect(target) as conn:
            conn.execute("CREATE TABLE notes (text TEXT)")
    before = target.read_bytes()
    scan = ["scan", "127.0.0.1", "--no-db", "--history", str(target), "--", "-p", "1"]
    for args in (["history", "--history", str(target)], scan):
        result = _flan(args, tmp_path)
        assert result.returncode == 2, result.stderr
        line = _one_line_error(result)
        assert "not a flan history" in line and "left untouched" in line
    assert target.read_bytes() == before
    assert not (tmp_path / "flan-results").exists()
