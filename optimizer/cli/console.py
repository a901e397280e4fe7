"""Output helpers shared by the verbs: settings, progress display, tables, JSON files."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
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
    """Refuse, before any work, output files whose folder does not exist."""
    for path in paths:
        if path is not None and not path.parent.is_dir():
            raise UserError(f"{path}: folder {path.parent} does not exist")


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically (temporary file beside it, then rename)."""
    text = json.dumps(data, indent=2, sort_keys=False) + "\n"
    check_folders(path)
    folder = path.parent
    with tempfile.NamedTemporaryFile("w", dir=folder, prefix=f".{path.name}.", delete=False) as handle:
        handle.write(text)
    os.replace(handle.name, path)
