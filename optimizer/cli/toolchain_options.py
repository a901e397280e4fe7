"""Options shared by the verbs that drive the Ascend toolchain (doctor, convert, tune)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from optimizer.cli.options import input_shape_option


def cann_version_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--cann-version``: used when the toolkit's version cannot be read, and over it."""
    return click.option(
        "--cann-version",
        metavar="V",
        help="CANN version (e.g. 5.0.2, 6.3.RC1, 8.0.0) when the toolkit's install info cannot be read.",
    )(func)


def timeout_option(seconds: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--timeout SEC`` with the verb's default."""
    return click.option(
        "--timeout",
        type=click.FloatRange(1),
        default=seconds,
        show_default=True,
        metavar="SEC",
        help="Stop the tool (its whole process group) after this many seconds.",
    )


def model_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--soc``, ``-o NAME``, ``--input-shape``, ``--input-format``, ``--out-nodes`` and ``-- EXTRA``."""
    func = click.argument("extra_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- EXTRA_TOOL_ARGS]")(func)
    func = click.option("--out-nodes", metavar="N", help="The tool's --out_nodes, e.g. 'Resize_317:0'.")(func)
    func = click.option("--input-format", metavar="F", help="The tool's --input_format: NCHW, ND or NCDHW.")(func)
    func = input_shape_option(func)
    func = click.option(
        "-o",
        "--output",
        type=click.Path(path_type=Path),
        metavar="NAME",
        help="Name of the .om to write, without '.om' (default: beside the model).",
    )(func)
    return click.option(
        "--soc",
        required=True,
        metavar="SOC",
        help="The chip, e.g. Ascend310, Ascend310P3 ('npu-smi info' shows it): ATC's --soc_version; "
        "for AOE it names the default tune bank.",
    )(func)


def report_failure(text: str) -> int:
    """Print a tool's failure block on stderr (each line shown literally: it quotes the model's
    names); the exit status of a tool that ran and failed."""
    from optimizer.cli.console import literal

    for line in text.splitlines():
        click.echo(literal(line), err=True)
    return 1
