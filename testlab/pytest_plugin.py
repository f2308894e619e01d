"""Pytest plugin: the session-scoped ``lab`` fixture (see docs/test-lab.md).

Tests that use ``lab`` are marked ``lab`` automatically (``pytest -m "not lab"`` skips them).
Without root, ``ip netns``, nmap or a daemon binary the fixture skips with the reason.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from testlab._lab import Lab, requirement_problems


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "lab" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.lab)


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """The lab, built once per test session and removed at its end."""
    problems = requirement_problems()
    if problems:
        reason = "test lab unavailable: " + "; ".join(problems)
        print(f"\n{reason}", file=sys.__stderr__, flush=True)
        pytest.skip(reason)
    the_lab = Lab()
    the_lab.up()
    try:
        yield the_lab
    finally:
        the_lab.down()
