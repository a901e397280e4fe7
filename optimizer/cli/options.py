"""Option groups shared by several verbs (Polygraphy style): shapes, pipeline, target."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from optimizer.targets import DEFAULT_TARGET


def _parse_shapes(ctx: click.Context, param: click.Parameter, value: str | None) -> dict[str, list[int]]:
    from optimizer.errors import UserError
    from optimizer.shapes import parse_input_shapes

    try:
        return parse_input_shapes(value)
    except UserError as exc:
        raise click.BadParameter(str(exc).removeprefix("--input-shape: ")) from None


def _parse_passes(ctx: click.Context, param: click.Parameter, value: str | None) -> list[str] | None:
    from optimizer.errors import UserError
    from optimizer.targets import parse_passes

    try:
        return parse_passes(value)
    except UserError as exc:
        raise click.BadParameter(str(exc)) from None


def _parse_settings(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> dict[str, dict[str, str]]:
    from optimizer.errors import UserError
    from optimizer.pass_options import parse_settings

    try:
        return parse_settings(value)
    except UserError as exc:
        raise click.BadParameter(str(exc).removeprefix("--set ")) from None


def input_shape_option(func: Callable[..., Any] | None = None, *, fixes: bool = False) -> Any:
    """``--input-shape`` in ATC's syntax; with ``fixes`` it is also ``--fix-input-shape`` and its
    help says the output keeps the shapes."""
    text = "Input shapes in ATC's syntax: 'image:1,3,224,224;mask:1,1,224,224'."
    names = ["--input-shape"]
    if fixes:
        names.append("--fix-input-shape")
        text = (
            "Fix input shapes, in ATC's syntax ('image:1,3,224,224;mask:1,1,224,224'): written into the "
            "output, as ATC fixes them. For verification alone use --verify-shape."
        )
    option = click.option(*names, "input_shapes", callback=_parse_shapes, metavar="S", help=text)
    return option if func is None else option(func)


def verify_shape_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--verify-shape``: shapes for verification only (the output keeps its dynamic dims)."""
    return click.option(
        "--verify-shape",
        "verify_shapes",
        callback=_parse_shapes,
        metavar="S",
        help="Input shapes for verification only, same syntax; the output keeps its dynamic dims "
        "(default: derived from the model).",
    )(func)


def set_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--set PASS.OPTION=VALUE`` (repeatable), parsed as ``pass_settings``: {pass: {option: value}}."""
    return click.option(
        "--set",
        "pass_settings",
        multiple=True,
        callback=_parse_settings,
        metavar="PASS.OPTION=VALUE",
        help="Set an option of a pass, e.g. simplify.onnxsim=false (repeatable; 'onnx-opt passes -v' lists them).",
    )(func)


def pipeline_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--target``, ``--passes``, ``--opset`` and ``--set``."""
    func = set_option(func)
    func = click.option(
        "--opset",
        type=int,
        metavar="N",
        help="Convert to this ONNX opset: an upgrade runs before the passes, a downgrade after them.",
    )(func)
    func = click.option(
        "--passes",
        callback=_parse_passes,
        metavar="a,b",
        help="Run these passes instead of the target's pipeline ('none' runs no pass); +name,-name add "
        "passes to the end of the target's pipeline / remove them from it.",
    )(func)
    return click.option(
        "--target",
        default=DEFAULT_TARGET,
        show_default=True,
        metavar="T",
        help="Target whose default pipeline and facts apply: a name (see 'onnx-opt passes') or a FILE.json.",
    )(func)
