"""``onnx-opt hotspots``: where the time goes, and the passes aimed at it."""

from __future__ import annotations

from pathlib import Path

import click

from optimizer.cli.console import (
    check_folders,
    check_outputs,
    literal,
    settings,
    stdout_console,
    verbosity_options,
    write_json,
)
from optimizer.cli.options import input_shape_option
from optimizer.cli.passes_cmd import warn_about_plugins


@click.command("hotspots")
@verbosity_options
@click.argument("profile_path", metavar="PROFILE", type=click.Path(path_type=Path))
@click.option(
    "--model",
    type=click.Path(path_type=Path),
    metavar="MODEL.onnx",
    help="Dry-run the passes on this model to say which would change it.",
)
@click.option(
    "--target",
    metavar="T",
    help="Target for the dry run (ascend310 lets transpose-whitelist run); default: inferred from the "
    "profile (onnxruntime for an onnxruntime profile).",
)
@input_shape_option
@click.option("--top", type=click.IntRange(1), default=10, show_default=True, help="How many op types and nodes.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Write the hotspots and suggestions as JSON.",
)
def hotspots_command(
    profile_path: Path,
    model: Path | None,
    target: str | None,
    input_shapes: dict[str, list[int]],
    top: int,
    json_path: Path | None,
) -> int:
    """The op types and nodes carrying most of the time in PROFILE, with the passes aimed at them."""
    from optimizer.suggest import hotspot_report

    check_folders(json_path)
    check_outputs({"--json": json_path}, inputs={"PROFILE": profile_path}, models={"--model": model})
    if model is not None:
        warn_about_plugins()
    report = hotspot_report(profile_path, model_path=model, target=target, top=top, input_shapes=input_shapes)
    if json_path is not None:
        write_json(json_path, report.to_dict())
    if not settings().quiet:
        print_hotspots(report, with_model=model is not None)
    return 0


def print_hotspots(report, *, with_model: bool) -> None:
    """The op-type table with the passes aimed at each, the hottest nodes, refusals and layout cost.

    Names come from the profile and the model: each is shown literally (:func:`shown`)."""
    from rich.table import Table

    console = stdout_console()
    if report.target is not None:
        console.print(f"target {report.target.name}: {shown(report.target.how)}")
    table = Table(title=f"hotspots of {shown(report.source)}", title_justify="left")
    for column in ("op type", "onnx op", "share", "total us", "passes", "would change" if with_model else ""):
        if column:
            table.add_column(column, justify="right" if column in ("share", "total us") else "left")
    for s in report.suggestions:
        onnx_op = s.onnx_op_type or ("layout cost" if s.category == "layout" else "?")
        row = [shown(s.op_type or "N/A"), shown(onnx_op), f"{s.share:.1%}", f"{s.total_us:.1f}",
               ", ".join(s.passes) or "-"]
        if with_model:
            row.append(", ".join(s.matching or []) or "-")
        table.add_row(*row)
    console.print(table)
    nodes = Table(title="hottest nodes", title_justify="left")
    for column in ("node", "op type", "runs", "share", "total us"):
        nodes.add_column(column, justify="right" if column in ("runs", "share", "total us") else "left")
    for node in report.nodes:
        nodes.add_row(shown(node.name), shown(node.op_type or "N/A"), str(node.count), f"{node.share:.1%}",
                      f"{node.total_us:.1f}")
    if report.nodes:
        console.print(nodes)
    for s in report.suggestions:
        for name, reason in s.refusals.items():
            console.print(f"  {name} left {shown(s.op_type)}: {shown(reason)}")
    layout = [s for s in report.suggestions if s.category == "layout"]
    if layout:
        console.print(
            f"layout conversions ({shown(', '.join(s.op_type for s in layout))}) take "
            f"{sum(s.share for s in layout):.1%}: no pass removes them; they come from format changes"
        )


def shown(text) -> str:
    """A name from a profile or a model, for rich: control characters visible, markup escaped."""
    from rich.markup import escape

    return escape(literal(str(text)))
