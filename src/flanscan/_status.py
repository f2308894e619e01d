"""Exit statuses: one enum, what each means, and which wins when a run earns several.

The library never exits: errors carry a status (`FlanError.exit_code`), finished runs return a
`RunOutcome` whose `status` is decided here; only the CLI turns either into `sys.exit`.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

    from flanscan._model import Report


class ExitStatus(IntEnum):
    """flan's exit codes (documented in the README and `flan --help`)."""

    OK = 0
    FINDINGS = 1  # --fail-on threshold reached (scan completed)
    USAGE = 2  # bad input, missing tool, unusable environment
    SCAN_INCOMPLETE = 3  # a worker failed, was interrupted, or a target was not checked
    DELIVERY = 4  # results saved, but an alert, an upload or the history record failed
    INTERNAL = 70  # a bug in flan (EX_SOFTWARE): never 1, which means findings

    @property
    def meaning(self) -> str:
        return _MEANING[self]


_MEANING = {
    ExitStatus.OK: "done",
    ExitStatus.FINDINGS: "done, and findings reached the --fail-on threshold",
    ExitStatus.USAGE: "usage or environment error (bad input, nmap missing, ...)",
    ExitStatus.SCAN_INCOMPLETE: (
        "scan incomplete (a worker failed or was interrupted, or a target was not checked: "
        "its name did not resolve or Nmap skipped it; raw XML kept)"
    ),
    ExitStatus.DELIVERY: "results saved, but an alert, an upload or the history record failed",
    ExitStatus.INTERNAL: "internal error: a bug in flan, not your input (please report it)",
}

# When a run earns several statuses, the later one here wins: results not checked matter more
# than results not delivered, which matter more than findings over the --fail-on threshold.
PRECEDENCE = (
    ExitStatus.OK,
    ExitStatus.FINDINGS,
    ExitStatus.DELIVERY,
    ExitStatus.SCAN_INCOMPLETE,
    ExitStatus.USAGE,
    ExitStatus.INTERNAL,
)


def worst(*statuses: ExitStatus) -> ExitStatus:
    """The status that wins among `statuses` (OK for none)."""
    return max(statuses, key=PRECEDENCE.index, default=ExitStatus.OK)


def exit_codes_help() -> str:
    """The "Exit codes:" block of `--help` texts (click keeps a `\\b` paragraph as written)."""
    lines = [f"  {int(s)}  {s.meaning}" for s in ExitStatus]
    return "\b\nExit codes:\n" + "\n".join(lines) + "\n"


class RunOutcome:
    """What a scan, merge or report run produced: report files, the status it earned, lines for
    the user (`messages`), and the errors that decided a non-zero status (`errors`)."""

    # A plain class, not a dataclass: `flan --help` imports this module (exit codes), and
    # dataclasses + pathlib would add ~5 ms to it.
    def __init__(
        self,
        report_paths: list[Path] | None = None,
        status: ExitStatus = ExitStatus.OK,
        messages: list[str] | None = None,
        errors: list[str] | None = None,
        run_id: str | None = None,  # the history's id of the recorded run
        report: Report | None = None,  # the report as written (for the terminal summary)
        report_on_stdout: bool = False,  # the report itself went to stdout (`-o -`)
    ) -> None:
        self.report_paths = report_paths if report_paths is not None else []
        self.status = status
        self.messages = messages if messages is not None else []
        self.errors = errors if errors is not None else []
        self.run_id = run_id
        self.report = report
        self.report_on_stdout = report_on_stdout

    def __repr__(self) -> str:
        return (
            f"RunOutcome(status={self.status!r}, report_paths={self.report_paths!r}, "
            f"messages={self.messages!r}, errors={self.errors!r}, run_id={self.run_id!r})"
        )

    def earn(self, status: ExitStatus, error: str | None = None) -> None:
        """Add a status (the one that wins by PRECEDENCE stays) and the error behind it."""
        self.status = worst(self.status, status)
        if error is not None:
            self.errors.append(error)

    @property
    def exit_code(self) -> int:
        return int(self.status)
