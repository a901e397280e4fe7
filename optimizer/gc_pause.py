"""Pausing Python's cyclic garbage collector while whole graphs are built and rewritten."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Run the block with the cyclic collector off (as it was, afterwards).

    Graphs are millions of small objects in reference cycles (a node and its values): the
    collector's full passes over them while a model is loaded, converted or cloned made those
    steps superlinear (benchmarks/bench_scaling.py). Reference counting still frees what is
    dropped; cycles left behind are collected once the block ends.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()
