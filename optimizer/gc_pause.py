"""Pausing Python's cyclic garbage collector while whole graphs are built and rewritten."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

# Whether this process ends when its command does: set by the console entry point.
_ENDS_WITH_COMMAND = False


def end_with_command() -> None:
    """Say that the process ends when the command it runs ends (the console entry point)."""
    global _ENDS_WITH_COMMAND
    _ENDS_WITH_COMMAND = True


@contextlib.contextmanager
def paused_gc(*, for_the_command: bool = False) -> Iterator[None]:
    """Run the block with the cyclic collector off (as it was, afterwards).

    Graphs are millions of small objects in reference cycles (a node and its values): the
    collector's full passes over them while a model is loaded, converted or cloned made those
    steps superlinear (benchmarks/bench_scaling.py). Reference counting still frees what is
    dropped; cycles left behind are collected once the block ends.

    ``for_the_command``: the block is a whole command. When the process ends with it
    (:func:`end_with_command`), the collector stays off: turned on again, it would pass at
    once over everything the command made (0.1 s and more), only for the process to end.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused and not (for_the_command and _ENDS_WITH_COMMAND):
            gc.enable()
