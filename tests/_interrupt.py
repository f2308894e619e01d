"""Start a flan that a test's SIGINT reaches, whatever signal disposition the test run inherited."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """A `preexec_fn`: SIGINT back to its default disposition in the child.

    A shell starts a background job (`pytest ... &`, as CI scripts and busy machines run the
    suite) with SIGINT ignored, every child inherits that, and Python keeps an ignored SIGINT
    ignored: the test's Ctrl-C would never reach flan, which would scan to the end or wait
    for its Nmap. A user's Ctrl-C reaches a foreground flan whose SIGINT is at its default.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
