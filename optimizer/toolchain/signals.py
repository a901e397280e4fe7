"""SIGTERM and SIGHUP handled like Ctrl-C.

While :func:`terminating_signals` is active, either signal raises :class:`Terminated` in the main
thread, so every ``finally`` block and context manager on the way out runs (a staging folder is
removed, an OPP edit undone) and :func:`optimizer.toolchain.process.run_tool` ends the running
tool's whole process group (the tools run in their own session, so a signal sent to onnx-opt, or
the hang-up of its terminal, never reaches them by itself).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(BaseException):
    """onnx-opt was asked to stop by ``signum``; it exits with status 128 + ``signum``.

    Not an ``Exception`` (``except Exception`` lets it through, as it does KeyboardInterrupt) and not
    a KeyboardInterrupt (click would turn that into its Abort and print a blank line first).
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        """The signal's name: SIGTERM, SIGHUP."""
        return signal.Signals(self.signum).name

    @property
    def exit_status(self) -> int:
        """128 + the signal number, as a shell reports a process ended by it."""
        return 128 + self.signum


@contextmanager
def terminating_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Terminated` inside the block; the previous handlers come back after.

    Only the first signal raises: one that follows while the first one's cleanup runs is ignored, so
    the cleanup ends the tools and removes what was half-written. Outside the main thread (where no
    handler can be installed) the block runs unchanged.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame) -> None:
        if not received:
            received.append(signum)
            raise Terminated(signum)

    previous = {sig: signal.signal(sig, handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, signal.SIG_DFL if old is None else old)
