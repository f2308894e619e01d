"""A minimal progress interface so the library reports progress without knowing about terminals."""

from __future__ import annotations

from typing import Protocol


class ProgressTask(Protocol):
    def advance(self, amount: int) -> None: ...

    def set_total(self, total: int | None) -> None: ...

    def finish(self) -> None: ...


class Progress(Protocol):
    """Implemented by the CLI (rich progress bar); `NULL_PROGRESS` ignores everything."""

    def task(self, description: str, total: int | None = None) -> ProgressTask: ...

    def note(self, message: str) -> None: ...


class _NullTask:
    def advance(self, amount: int) -> None:
        pass

    def set_total(self, total: int | None) -> None:
        pass

    def finish(self) -> None:
        pass


class NullProgress:
    """Progress that reports nothing (library default, tests)."""

    def task(self, description: str, total: int | None = None) -> ProgressTask:
        return _NullTask()

    def note(self, message: str) -> None:
        pass


NULL_PROGRESS: Progress = NullProgress()
