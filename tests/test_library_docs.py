"""The library snippets in docs/library.md run against the public face (`import flanscan`):
a report from a real Nmap XML sample, the vulnerability database built from the NVD sample, and
a scan of 127.0.0.1."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import flanscan
from flanscan._vulndb import import_paths

REPO = Path(__file__).resolve().parent.parent
SNIPPETS = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "library.md").read_text(), re.S)


@pytest.fixture(scope="module")
def db_path(nvd_sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("libdb") / "vulndb.sqlite3"
    import_paths(path, [nvd_sample / "nvdcve-2.0-sample.json.gz"])
    return path


def test_there_are_snippets() -> None:
    assert len(SNIPPETS) == 3


@pytest.mark.parametrize("code", SNIPPETS, ids=[f"snippet-{i}" for i in range(len(SNIPPETS))])
def test_snippet_runs(code: str, db_path: Path, nmap_samples: Path, tmp_path: Path) -> None:
    names = {"xml_file": nmap_samples / "2_hosts_version.xml", "db_path": db_path,
             "run_dir": tmp_path / "run"}  # fmt: skip
    exec(compile(code, "docs/library.md", "exec"), names)  # our own documentation


def test_public_names_resolve_and_stay_lazy() -> None:
    for name in flanscan.__all__:
        assert getattr(flanscan, name) is not None, name
    with pytest.raises(AttributeError):
        flanscan.not_a_name  # noqa: B018
    # importing the package loads none of the stages
    code = (
        "import sys, flanscan; print(sorted(m for m in sys.modules if m.startswith('flanscan.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
