"""Shared fixtures: paths to the read-only sample data, and the network-namespace lab."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))  # the lab package lives at the repository root

# the lab fixture, the matcher tests' `records`/`lookup` fixtures over the NVD sample, and the
# fake `nmap` of the scope tests
pytest_plugins = ["testlab.pytest_plugin", "test_match_support", "_fake_nmap"]


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
