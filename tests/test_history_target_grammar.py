"""History scopes read targets with flan's one target grammar: a pattern `flan scan` refuses
is never taken to cover addresses (it is compared as a name, so the diff says "cannot be
compared" instead of "fixed")."""

from __future__ import annotations

import pytest

from flanscan._errors import UsageError
from flanscan._history._rows import RunScope
from flanscan._history._scope import host_reason_not_checked
from flanscan._targets import parse_target


@pytest.mark.parametrize("pattern", ["198.18.0.1-300", "198.18.0.0/33", "198.18.0.*.1"])
def test_refused_patterns_cover_nothing(pattern: str) -> None:
    with pytest.raises(UsageError):
        parse_target(pattern, "test")
    reason = host_reason_not_checked(RunScope(targets=(pattern,)), "198.18.0.200", ())
    assert reason is not None and "cannot be compared" in reason


def test_accepted_patterns_cover_what_flan_scans() -> None:
    scope = RunScope(targets=("198.18.0.0/30",), excluded=("198.18.0.2",))
    assert host_reason_not_checked(scope, "198.18.0.1", ()) is None
    assert host_reason_not_checked(scope, "198.18.0.2", ()) == "excluded from the new run"
    assert host_reason_not_checked(scope, "198.18.0.9", ()) == "outside the new run's targets"
