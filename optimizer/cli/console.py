"""Output helpers shared by the verbs: settings, progress display, tables, JSON files."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from optimizer.errors import UserError


@dataclass
class Settings:
    """Global options: verbosity (0 normal, 1+ more) and quiet. (``--debug`` is read by ``run``.)"""

    verbose: int = 0
    quiet: bool = False


def verbosity_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``-v``, ``-q`` and ``--debug``, accepted before or after the verb."""

    def update(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        root = ctx.find_root()
        if root.obj is None:
            root.obj = Settings()
        if param.name == "verbose" and value:
            root.obj.verbose += value
        elif param.name == "quiet" and value:
            root.obj.quiet, root.obj.verbose = True, 0

    for decl, kwargs in (
        (("-v", "--verbose"), {"count": True, "help": "Say more: changed nodes, refusals, commands run."}),
        (("-q", "--quiet"), {"is_flag": True, "help": "Print nothing but errors."}),
        (("--debug",), {"is_flag": True, "help": "Show tracebacks of errors."}),
    ):
        func = click.option(*decl, expose_value=False, callback=update, **kwargs)(func)
    return func


def settings() -> Settings:
    """The global options of the running command."""
    ctx = click.get_current_context()
    return ctx.find_root().obj or Settings()


@contextmanager
def progress() -> Iterator[Callable[[str], None]]:
    """A spinner on stderr showing the current step, when stderr is a terminal and not quiet."""
    if settings().quiet or not sys.stderr.isatty():
        yield lambda message: None
        return
    from rich.console import Console

    with Console(stderr=True).status("starting") as status:
        yield lambda message: status.update(message)


def stdout_console():
    """A rich console on stdout (wide enough for tables when piped)."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 120, soft_wrap=True, highlight=False)


def note(message: str) -> None:
    """A line on stderr unless quiet."""
    if not settings().quiet:
        click.echo(message, err=True)


def check_folders(*paths: Path | None) -> None:
    """Refuse, before any work, output files that cannot be written: a missing or read-only
    folder, a directory, a socket or a block device (a character device or a FIFO, such as
    ``/dev/null``, is written through)."""
    from profiles.atomic import write_problem  # here: the profiles package loads numpy

    for path in paths:
        if path is not None and (problem := write_problem(path)):
            raise UserError(f"{path}: {problem}")


def check_outputs(
    outputs: Mapping[str, Path | None],
    *,
    inputs: Mapping[str, Path | None] | None = None,
    models: Mapping[str, Path | None] | None = None,
) -> None:
    """Refuse, before any work, files a verb writes that cannot be written or would destroy another
    file of the run (see :func:`optimizer.modelio.check_outputs`)."""
    from optimizer.modelio import check_outputs as check

    check(outputs, inputs=inputs, models=models)


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (see :mod:`profiles.atomic`)."""
    from profiles.atomic import write_json_atomic

    check_folders(path)
    write_json_atomic(path, data)


def literal(text: str | bytes) -> str:
    """``text`` (a name from a model, a profile or a tool) as a terminal shows it literally.

    Control characters (the ESC of colour and cursor sequences, newlines, tabs, bidi overrides)
    become visible escapes such as ``\\x1b``, and bytes that are not UTF-8 become ``\\xff``; nothing
    else changes. Rich still reads ``[...]`` as markup: give it ``rich.markup.escape(literal(text))``.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "backslashreplace")
    try:  # str from os.fsdecode / surrogateescape holds undecodable bytes as lone surrogates
        raw = str(text).encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        raw = str(text).encode("utf-8", "backslashreplace")
    shown = raw.decode("utf-8", "backslashreplace")
    controls = [*range(0x20), *range(0x7F, 0xA0), 0x200E, 0x200F, 0x2028, 0x2029, *range(0x202A, 0x202F),
                *range(0x2066, 0x206A)]
    return shown.translate({code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in controls})


def shown(text: object) -> str:
    """``text`` for a rich console: :func:`literal`, with rich's markup brackets escaped."""
    from rich.markup import escape

    return escape(literal(str(text)))
