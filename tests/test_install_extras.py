"""`pip install flanscan` is lean; PDF, S3, GCS and PostgreSQL are extras, and a missing one is
one line naming the `pip install` to run. The CLI runs in a subprocess whose import system
refuses the extra's module (a meta-path finder installed before flan starts), as on a machine
where it was never installed."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO.parent / "shared" / "nmap-xml-samples" / "1_hosts.xml"
HEAVY = {"weasyprint": "pdf", "boto3": "s3", "google-cloud-storage": "gcs", "psycopg": "postgres"}

RUN_WITHOUT = """
import sys
blocked = set(sys.argv[1].split(","))

class Uninstalled:
    def find_spec(self, name, path=None, target=None):
        if name in blocked or any(name.startswith(b + ".") for b in blocked):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Uninstalled())
from flanscan._cli import main
sys.argv = ["flan", *sys.argv[2:]]
main()
"""


def _flan_without(blocked: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", RUN_WITHOUT, blocked, *args],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_heavy_dependencies_are_extras_only() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = {Requirement(r).name for r in project["dependencies"]}
    assert not core & set(HEAVY)
    extras = project["optional-dependencies"]
    for name, extra in HEAVY.items():
        assert [Requirement(r).name for r in extras[extra]] == [name]
    # The installed package's metadata says the same (what pip reads).
    for spec in importlib.metadata.requires("flanscan") or []:
        req = Requirement(spec)
        if req.name in HEAVY:
            assert req.marker is not None and f'extra == "{HEAVY[req.name]}"' in str(req.marker)


@pytest.mark.parametrize(
    ("blocked", "args", "expected"),
    [
        ("weasyprint", ["report", str(SAMPLE), "-f", "pdf", "-o", "{tmp}/r.pdf"],
         "PDF reports (--format pdf) needs the optional dependency weasyprint, not installed: "
         "pip install 'flanscan[pdf]' (or 'flanscan[all]')"),
        ("boto3", ["scan", "127.0.0.1", "--no-db", "--output-dir", "{tmp}/run",
                   "--output", "s3://flan-test/runs"],
         "s3:// storage needs the optional dependency boto3, not installed: "
         "pip install 'flanscan[s3]'"),
        ("google", ["merge", "gs://flan-test/runs/r1", "-o", "{tmp}/merged"],
         "gs:// storage needs the optional dependency google-cloud-storage, not installed: "
         "pip install 'flanscan[gcs]'"),
        ("psycopg", ["history", "--history", "postgresql://flan@127.0.0.1:1/flan"],
         "a postgresql:// history needs the optional dependency psycopg, not installed: "
         "pip install 'flanscan[postgres]'"),
    ],
)  # fmt: skip
def test_a_missing_extra_is_one_line_naming_the_install(
    tmp_path: Path, blocked: str, args: list[str], expected: str
) -> None:
    r = _flan_without(blocked, *(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"flan: error: {expected}" or (
        r.stderr.strip().startswith(f"flan: error: {expected}")
        and r.stderr.strip().count("\n") == 0
    ), r.stderr
    assert list(tmp_path.iterdir()) == []  # refused before anything was written
