"""Pausing Python's cyclic garbage collector around bulk work on acyclic objects.

Matching, recording a fleet's run and diffing two of them each allocate millions of small
objects that never form cycles; with a large report or database in memory, every full
collection walks all of them and costs more than the work itself.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    """Disable the cyclic collector for the block (re-enabled after it if it was on)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
