"""Where things live: one default history whatever the working directory, a FLAN_* variable
for every option, flan.toml (user and project level) and shell completion, through the real
CLI. Precedence: command line > environment > project flan.toml > user flan.toml > default."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO.parent / "shared" / "nmap-xml-samples" / "1_hosts.xml"
FLAN = [sys.executable, "-m", "flanscan"]


def _flan(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLAN, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})  # fmt: skip


def _user_config(text: str) -> Path:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "flanscan" / "flan.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.skipif(shutil.which("nmap") is None, reason="nmap is not installed")
def test_history_is_the_same_from_any_directory(tmp_path: Path) -> None:
    dirs = [tmp_path / name for name in ("a", "b", "elsewhere")]
    for d in dirs:
        d.mkdir()
    for i, cwd in enumerate(dirs[:2]):
        r = _flan("scan", "127.0.0.1", "--no-db", "--ports", "1", "-f", "json",
                  "--output-dir", str(tmp_path / f"out{i}" / "run"), cwd=cwd)  # fmt: skip
        assert r.returncode == 0, r.stderr
    r = _flan("history", "--format", "json", cwd=dirs[2])
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)) == 2
    default = Path(os.environ["XDG_DATA_HOME"]) / "flanscan" / "history.sqlite3"
    assert default.is_file() and not list(tmp_path.rglob("history.sqlite3"))
    # FLAN_HISTORY moves it for every command.
    other = tmp_path / "team.sqlite3"
    r = _flan("history", cwd=dirs[2], FLAN_HISTORY=str(other))
    assert r.returncode == 2 and f"no history at {other}" in r.stderr


def test_every_option_has_a_flan_variable_shown_in_help(tmp_path: Path) -> None:
    r = _flan("report", str(SAMPLE), "-o", str(tmp_path / "env"), cwd=tmp_path,
              FLAN_REPORT_FORMAT="csv")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert [p.name for p in (tmp_path / "env").iterdir()] == ["report.csv"]
    r = _flan("report", str(SAMPLE), "-o", str(tmp_path / "cli"), "-f", "md", cwd=tmp_path,
              FLAN_REPORT_FORMAT="csv")  # fmt: skip
    assert [p.name for p in (tmp_path / "cli").iterdir()] == ["report.md"]  # CLI wins
    for command in ("scan", "report", "merge"):
        text = _flan(command, "--help", cwd=tmp_path, COLUMNS="200").stdout
        for option in ("--db", "--fail-on", "--max-db-age", "--format"):
            name = f"FLAN_{command.upper()}_{option[2:].replace('-', '_').upper()}"
            assert name in text, (command, name)


def test_config_files_user_then_project_then_environment(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    db = tmp_path / "db" / "v.sqlite3"
    subprocess.run([*FLAN, "db", "import", "--db", str(db),
                    str(REPO.parent / "shared" / "nvd-sample" / "nvdcve-2.0-sample.json")],
                   check=True, capture_output=True)  # fmt: skip
    user = _user_config('db = "vulndb.sqlite3"\n[report]\nformat = ["md"]\nmax-db-age = 365\n')
    (user.parent / "vulndb.sqlite3").symlink_to(db)  # relative to the file, not the cwd
    project = tmp_path / "project"
    project.mkdir()
    r = _flan("report", str(SAMPLE), "-o", str(tmp_path / "u"), cwd=project)
    assert r.returncode == 0, r.stderr
    assert [p.name for p in (tmp_path / "u").iterdir()] == ["report.md"]
    (project / "flan.toml").write_text('[report]\nformat = ["json"]\n')
    r = _flan("report", str(SAMPLE), "-o", str(tmp_path / "p"), cwd=project)
    assert r.returncode == 0, r.stderr
    vulndb = json.loads((tmp_path / "p" / "report.json").read_text())["vulnerability_database"]
    assert vulndb["path"] == str(user.parent / "vulndb.sqlite3")  # the user file's db
    assert vulndb["max_age_days"] == 365 and not vulndb["stale"]
    r = _flan("report", str(SAMPLE), "-o", str(tmp_path / "e"), cwd=project,
              FLAN_REPORT_FORMAT="csv")  # fmt: skip
    assert [p.name for p in (tmp_path / "e").iterdir()] == ["report.csv"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[report]\nformatz = 1\n", "[report] formatz: flan report has no option --formatz"),
        ("[scna]\nports = 1\n", "[scna]: not a command whose options it sets"),
        ("[report\n", "not valid TOML"),
    ],
)
def test_a_bad_config_file_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "flan.toml").write_text(text)
    r = _flan("report", str(SAMPLE), "-o", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.strip() == f"flan: error: {tmp_path / 'flan.toml'}: {expected}" or (
        r.stderr.startswith(f"flan: error: {tmp_path / 'flan.toml'}: not valid TOML")
        and r.stderr.count("\n") == 1
    ), r.stderr
    assert not (tmp_path / "out").exists()


def test_shell_completion_is_clicks(tmp_path: Path) -> None:
    script = _flan(cwd=tmp_path, _FLAN_COMPLETE="bash_source").stdout
    assert "_flan_completion()" in script and "complete -o nosort -F _flan_completion flan" in (
        script
    )
    words = _flan(cwd=tmp_path, _FLAN_COMPLETE="bash_complete", COMP_WORDS="flan sc",
                  COMP_CWORD="1").stdout  # fmt: skip
    assert words.split() == ["plain,scan"]
    words = _flan(cwd=tmp_path, _FLAN_COMPLETE="bash_complete", COMP_WORDS="flan scan --max-d",
                  COMP_CWORD="2").stdout  # fmt: skip
    assert words.split() == ["plain,--max-db-age"]


def test_a_config_directory_flan_may_not_enter_is_no_config(tmp_path: Path) -> None:
    if shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to run flan as another user")
    locked = Path(os.environ["XDG_CONFIG_HOME"]) / "flanscan"
    locked.mkdir()
    (locked / "flan.toml").write_text("[report]\nformatz = 1\n")
    locked.chmod(0o700)  # root's, as /root/.config is for a container's unprivileged user
    r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *FLAN,
                        "report", "--help"], capture_output=True, text=True, timeout=60,
                       cwd="/")  # fmt: skip
    assert r.returncode == 0, r.stderr
