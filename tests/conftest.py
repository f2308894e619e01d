"""Shared fixtures: paths to the read-only sample data, and the network-namespace lab."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))  # the lab package lives at the repository root

# the lab fixture, the matcher tests' `records`/`lookup` fixtures over the NVD sample, and the
# fake `nmap` of the scope tests
pytest_plugins = ["testlab.pytest_plugin", "test_match_support", "_fake_nmap"]


@pytest.fixture(autouse=True)
def _own_user_dirs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test has its own XDG data and config directories (the default history, the user's
    flan.toml), inherited by the flan processes it starts; none of the machine's FLAN_HISTORY.
    World-writable: lab tests run flan as an unprivileged user."""
    base = Path(tempfile.mkdtemp(prefix="flan-test-home-"))
    for name in ("data", "config"):
        (base / name).mkdir(mode=0o777)
        (base / name).chmod(0o777)
    base.chmod(0o755)
    monkeypatch.setenv("XDG_DATA_HOME", str(base / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "config"))
    monkeypatch.delenv("FLAN_HISTORY", raising=False)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def nmap_samples() -> Path:
    """Real Nmap XML from several Nmap versions (read-only, never copied into the project)."""
    path = SHARED / "nmap-xml-samples"
    if not path.is_dir():
        pytest.skip(f"sample directory {path} is missing")
    return path


@pytest.fixture(scope="session")
def nvd_sample() -> Path:
    """Directory holding the real NVD CVE 2.0 sample and the CISA KEV catalogue."""
    path = SHARED / "nvd-sample"
    if not path.is_dir():
        pytest.skip(f"sample directory {path} is missing")
    return path
