"""Ctrl-C during a scan sets a flag the engine's loop reads, instead of a KeyboardInterrupt that
could land anywhere (between starting an Nmap and recording it, or inside a fork hook that
swallows it)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from flanscan._scan.stopping import stop_signals


@pytest.fixture
def sigint_default() -> Iterator[None]:
    """SIGINT as in a terminal's foreground process (a background test run inherits it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_during_the_scan_is_a_flag_and_the_handler_is_restored(
    sigint_default: None,
) -> None:
    with stop_signals() as stop:
        assert not stop.requested
        os.kill(os.getpid(), signal.SIGINT)  # handled before the next bytecode: no exception
        assert stop.requested
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):  # outside the scan, Ctrl-C is Ctrl-C again
        os.kill(os.getpid(), signal.SIGINT)


def test_sigterm_is_caught_only_when_the_caller_treats_it_as_ctrl_c(sigint_default: None) -> None:
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    with stop_signals():
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # a library user's default

    def as_interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, as_interrupt)  # what `flan scan` installs
    try:
        with stop_signals() as stop:
            os.kill(os.getpid(), signal.SIGTERM)
            assert stop.requested
        assert signal.getsignal(signal.SIGTERM) is as_interrupt
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_an_ignored_sigint_stays_ignored() -> None:
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # e.g. `flan scan ... &` from sh
    try:
        with stop_signals() as stop:
            assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
            assert not stop.requested
    finally:
        signal.signal(signal.SIGINT, previous)
