"""Run one tool: an argument list (never a shell), its own process group, a timeout, output
streamed line by line to a log file and a progress callback, the whole group ended on
timeout, Ctrl-C, SIGTERM or SIGHUP (see :mod:`optimizer.toolchain.signals`) so that no orphan
is left; the exception that stopped it names the group (:func:`stopped_tools`)."""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from optimizer.errors import UserError

KEEP_LINES = 20000  # lines of output kept in memory for parsing; the log file has them all
GRACE_SECONDS = 3.0  # between SIGTERM and SIGKILL


class ToolError(Exception):
    """A tool ran and failed; the message is one line naming the tool and its log."""


class ToolTimeoutError(ToolError):
    """A tool did not finish within its timeout; its process group was ended."""


@dataclass
class Completed:
    """A finished tool run."""

    argv: list[str]
    returncode: int
    output: str
    log: Path | None


def command_line(argv: list[str], extra_env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    """The shell line that reruns ``argv`` by hand (folder and the variables we set included)."""
    prefix = f"cd {shlex.quote(str(cwd))} && " if cwd is not None else ""
    assignments = "".join(f"{name}={shlex.quote(value)} " for name, value in (extra_env or {}).items())
    return prefix + assignments + shlex.join(argv)


def run_tool(
    argv: list[str],
    *,
    env: dict[str, str],
    timeout: float,
    log: Path | None = None,
    cwd: Path | None = None,
    extra_env: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
    verbose: bool = False,
    grace: float = GRACE_SECONDS,
) -> Completed:
    """Run ``argv`` to completion and return its exit status and output (stdout and stderr merged).

    ``env`` is the child's whole environment and ``extra_env`` is laid over it (for the child only).
    Raises :class:`ToolTimeoutError` after ``timeout`` seconds, and re-raises whatever else stopped the
    wait (KeyboardInterrupt, :class:`~optimizer.toolchain.signals.Terminated`), in every case after
    ending the tool's whole process group; :func:`stopped_tools` of that exception names the group.
    """
    argv = [str(arg) for arg in argv]
    name = tool_name(argv)
    if verbose:
        print(f"$ {command_line(argv, extra_env, cwd)}", file=sys.stderr, flush=True)
    started = time.monotonic()
    lines: deque[str] = deque(maxlen=KEEP_LINES)
    reader: threading.Thread | None = None
    handle = log.open("w", encoding="utf-8") if log is not None else None
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**env, **(extra_env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        if handle is not None:
            handle.close()
        raise UserError(f"cannot run {argv[0]}: {exc.strerror or exc}") from None
    try:  # from here on, whatever stops the wait ends the group
        reader = threading.Thread(target=_pump, args=(proc, lines, handle, progress), daemon=True)
        reader.start()
        proc.wait(timeout=timeout)
        reader.join(max(0.0, timeout - (time.monotonic() - started)))
        if reader.is_alive():  # a child still holds the output open past the deadline
            raise subprocess.TimeoutExpired(argv, timeout)
    except subprocess.TimeoutExpired:
        _end(proc, reader, grace)
        where = f"; output in {log}" if log is not None else ""
        raise ToolTimeoutError(
            f"{name} did not finish within {timeout:g} s and was stopped{where} "
            "(raise --timeout if it needs longer)"
        ) from None
    except BaseException as exc:
        _end(proc, reader, grace)
        exc.onnx_opt_stopped = [*getattr(exc, "onnx_opt_stopped", []), f"{name} (process group {proc.pid})"]
        raise
    return Completed(argv, proc.returncode, "\n".join(lines), log)


def tool_name(argv: list[str]) -> str:
    """The tool's name for messages: ``atc`` for ``/x/atc``, ``ais_bench`` for ``python3 -m ais_bench``."""
    if len(argv) > 2 and argv[1] == "-m":
        return argv[2]
    return Path(argv[0]).name


def stopped_tools(exc: BaseException | None) -> list[str]:
    """The tools :func:`run_tool` ended while ``exc`` (or what caused it) went through it, e.g.
    ``["atc (process group 4242)"]``."""
    found: list[str] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        found += getattr(exc, "onnx_opt_stopped", [])
        exc = exc.__cause__ or exc.__context__
    return found


def run_writing_tool(
    argv: list[str], output: Path, stamps: Callable[[], dict[Path, int]], **options
) -> tuple[Completed, list[Path]]:
    """:func:`run_tool` in the folder of ``output`` (which must exist), with ``options``; returns
    the run and the files ``stamps`` (path -> mtime of what the tool may write) finds new or
    changed since it started. When the tool is stopped (timeout, Ctrl-C, SIGTERM) those files are
    removed: what it had begun to write is not a result."""
    folder = output.parent
    if not folder.is_dir():
        raise UserError(f"-o {output}: folder {folder} does not exist")
    before = stamps()

    def written() -> list[Path]:
        return [path for path, stamp in stamps().items() if before.get(path) != stamp]

    try:
        done = run_tool(argv, cwd=folder, **options)
    except BaseException:
        for path in written():
            path.unlink(missing_ok=True)
        raise
    return done, written()


def stop_group(proc: subprocess.Popen, grace: float = GRACE_SECONDS) -> None:
    """End ``proc``'s whole process group: SIGTERM, then SIGKILL after ``grace`` seconds."""
    _signal_group(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    _signal_group(proc.pid, signal.SIGKILL)  # children that outlived or ignored SIGTERM
    proc.wait()


def _end(proc: subprocess.Popen, reader: threading.Thread | None, grace: float) -> None:
    stop_group(proc, grace)
    if reader is None:
        proc.stdout.close()
    elif reader.is_alive():
        reader.join(grace)  # bounded: a process that left the group may still hold the output open


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _pump(proc: subprocess.Popen, lines: deque[str], handle, progress: Callable[[str], None] | None) -> None:
    """Read the tool's output to its end: keep the lines, write them to the log, report progress."""
    name = tool_name(proc.args)
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            lines.append(line)
            if handle is not None:
                handle.write(line + "\n")
                handle.flush()
            if progress is not None and line.strip():
                progress(f"{name}: {line.strip()[:100]}")
    finally:
        proc.stdout.close()
        if handle is not None:
            handle.close()
