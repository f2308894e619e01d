"""Exit statuses: one enum, one precedence, and the --help text generated from it."""

from __future__ import annotations

from flanscan._errors import DeliveryError, FlanError, ScanIncomplete, UsageError
from flanscan._status import ExitStatus, RunOutcome, exit_codes_help, worst


def test_precedence_incomplete_over_delivery_over_findings() -> None:
    assert worst() == ExitStatus.OK
    assert worst(ExitStatus.FINDINGS, ExitStatus.DELIVERY) == ExitStatus.DELIVERY
    assert worst(ExitStatus.DELIVERY, ExitStatus.SCAN_INCOMPLETE) == ExitStatus.SCAN_INCOMPLETE
    assert worst(ExitStatus.SCAN_INCOMPLETE, ExitStatus.FINDINGS) == ExitStatus.SCAN_INCOMPLETE
    outcome = RunOutcome()
    outcome.earn(ExitStatus.SCAN_INCOMPLETE, "scan interrupted")
    outcome.earn(ExitStatus.DELIVERY, "upload failed")
    outcome.earn(ExitStatus.FINDINGS)
    assert outcome.exit_code == 3 and outcome.errors == ["scan interrupted", "upload failed"]


def test_errors_carry_the_same_statuses() -> None:
    assert FlanError.exit_code == UsageError.exit_code == ExitStatus.USAGE == 2
    assert ScanIncomplete.exit_code == 3 and DeliveryError.exit_code == 4


def test_help_lists_every_status() -> None:
    text = exit_codes_help()
    for status in ExitStatus:
        assert f"  {int(status)}  {status.meaning}\n" in text
