"""The ``onnx-opt`` command line: one module per verb; heavy modules load inside the verbs."""

from __future__ import annotations

import atexit
import contextlib
import gc
import os
import sys
import threading
import traceback

import click

from optimizer import __version__
from optimizer.cli.auto_cmd import auto_command
from optimizer.cli.batch_cmd import batch_command
from optimizer.cli.bench_cmd import bench_command
from optimizer.cli.compare_cmd import compare_command
from optimizer.cli.console import verbosity_options
from optimizer.cli.convert_cmd import convert_command
from optimizer.cli.doctor_cmd import doctor_command
from optimizer.cli.hotspots_cmd import hotspots_command
from optimizer.cli.new_pass_cmd import new_pass_command
from optimizer.cli.optimize_cmd import optimize_command
from optimizer.cli.passes_cmd import passes_command
from optimizer.cli.plan_cmd import plan_command
from optimizer.cli.profile_cmd import profile_command
from optimizer.cli.tune_cmd import tune_command
from optimizer.cli.whitelist_cmd import whitelist_command
from optimizer.errors import UserError, error_line
from optimizer.gc_pause import end_with_command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="onnx-opt", message="%(prog)s %(version)s")
@verbosity_options
def cli() -> None:
    """onnx-opt: optimise ONNX graphs for Huawei Ascend conversion, verified with onnxruntime."""


cli.add_command(optimize_command)
cli.add_command(passes_command)
cli.add_command(whitelist_command)
cli.add_command(doctor_command)
cli.add_command(convert_command)
cli.add_command(tune_command)
cli.add_command(profile_command)
cli.add_command(compare_command)
cli.add_command(hotspots_command)
cli.add_command(plan_command)
cli.add_command(bench_command)
cli.add_command(auto_command)
cli.add_command(new_pass_command)
cli.add_command(batch_command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI and turn every error into an exit status.

    The process ends right after, without the interpreter's teardown: the exit handlers run
    and the output streams are flushed, then the process exits, sparing the interpreter the
    freeing of every module and object one by one (0.15-0.2 s once onnxruntime, onnx-ir and
    onnxscript are loaded, for nothing); a command that paused the garbage collector leaves it
    off (:func:`optimizer.gc_pause.paused_gc`). When a thread of the command is still running, the
    interpreter ends as usual and waits for it; what the command built is then frozen out of the
    garbage collector's sight, which spares a last collection over it (a second or so on a
    graph of 100k nodes).
    """
    args = sys.argv[1:] if argv is None else argv
    end_with_command()
    status = run(args)
    gc.freeze()
    if threading.active_count() > 1:
        sys.exit(status)
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing more can be said
            stream.flush()
    os._exit(status)


def run(args: list[str]) -> int:
    """Run the CLI on ``args`` and return the exit status (0 ok, 1 internal, 2 bad input, 128 + N for signal N).

    SIGTERM and SIGHUP are handled like Ctrl-C while it runs: the running tool's process group is
    ended, the cleanup on the way out runs, and one line says what happened. Modules the verbs rarely
    use (sympy, onnx's reference operators) load on first use (``optimizer.deferred_imports``).
    """
    from optimizer.deferred_imports import defer_imports
    from optimizer.toolchain.signals import Terminated, terminating_signals

    defer_imports()
    options = args[: args.index("--")] if "--" in args else args  # what follows '--' is the tool's
    with terminating_signals():
        try:
            return _run(args, debug="--debug" in options)
        except Terminated as exc:
            return _fail(_stopped(f"terminated by {exc.name}", exc), exc.exit_status)


def _run(args: list[str], *, debug: bool) -> int:
    try:
        result = cli.main(args=args, prog_name="onnx-opt", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort as exc:  # click's form of Ctrl-C
        if isinstance(exc.__cause__, KeyboardInterrupt):
            return _fail(_stopped("interrupted", exc.__cause__), 130)
        return _fail("aborted", 130)
    except click.UsageError as exc:
        path = exc.ctx.command_path if exc.ctx else "onnx-opt"
        verb = path.removeprefix("onnx-opt").strip()
        return _fail(f"{verb + ': ' if verb else ''}{exc.format_message()} (see '{path} --help')", 2)
    except click.ClickException as exc:
        return _fail(exc.format_message(), 2)
    except KeyboardInterrupt as exc:
        return _fail(_stopped("interrupted", exc), 130)
    except Exception as exc:
        if _is_user_error(exc):
            message, status = f"error: {' '.join(str(exc).split()).removeprefix('onnx-opt: ')}", 2
        else:
            message, status = f"internal error: {type(exc).__name__}: {error_line(exc)}", 1
            if not debug:
                message += " (rerun with --debug for the traceback)"
        if debug:  # the traceback, then the same line and exit status as without --debug
            traceback.print_exc()
        return _fail(message, status)
    return result if isinstance(result, int) else 0


def _is_user_error(exc: Exception) -> bool:
    if isinstance(exc, UserError):
        return True
    from profiles.errors import ProfileError

    return isinstance(exc, ProfileError)


def _stopped(what: str, exc: BaseException) -> str:
    """``what``, and the tools whose process groups were ended on the way out."""
    from optimizer.toolchain.process import stopped_tools

    tools = stopped_tools(exc)
    return f"{what}; stopped {', '.join(tools)}" if tools else what


def _fail(message: str, status: int) -> int:
    """Print one ``onnx-opt: ...`` line on stderr (the prefix once, whatever the message) and return ``status``."""
    click.echo(f"onnx-opt: {message.removeprefix('onnx-opt: ')}", err=True)
    return status
