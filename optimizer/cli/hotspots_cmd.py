"""``onnx-opt hotspots``: where the time goes, and the passes aimed at it."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click

from optimizer.cli.console import check_folders, settings, stdout_console, verbosity_options, write_json
from optimizer.cli.options import input_shape_option


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
    from optimizer.loop.candidates import choose_target
    from optimizer.suggest import suggest_passes
    from profiles.hotspots import hotspots
    from profiles.read import read_profile

    check_folders(json_path)
    profile = read_profile(profile_path)
    hot = hotspots(profile, top)
    choice = choose_target(profile, target) if model is not None else None
    suggestions = suggest_passes(
        profile, model_path=model, target=choice.name if choice else "onnxruntime", top=top, input_shapes=input_shapes
    )
    if json_path is not None:
        write_json(
            json_path,
            {
                "source": profile.source,
                "target": None if choice is None else {"name": choice.name, "chosen": choice.how},
                "total_us": hot.total_us,
                "op_types": [asdict(s) for s in suggestions],
                "nodes": [asdict(n) for n in hot.nodes],
            },
        )
    if settings().quiet:
        return 0
    from rich.table import Table

    console = stdout_console()
    if choice is not None:
        console.print(f"target {choice.name}: {choice.how}")
    table = Table(title=f"hotspots of {profile.source}", title_justify="left")
    for column in ("op type", "onnx op", "share", "total us", "passes", "would change" if model else ""):
        if column:
            table.add_column(column, justify="right" if column in ("share", "total us") else "left")
    for s in suggestions:
        onnx_op = s.onnx_op_type or ("layout cost" if s.category == "layout" else "?")
        row = [s.op_type or "N/A", onnx_op, f"{s.share:.1%}", f"{s.total_us:.1f}", ", ".join(s.passes) or "-"]
        if model is not None:
            row.append(", ".join(s.matching or []) or "-")
        table.add_row(*row)
    console.print(table)
    nodes = Table(title="hottest nodes", title_justify="left")
    for column in ("node", "op type", "runs", "share", "total us"):
        nodes.add_column(column, justify="right" if column in ("runs", "share", "total us") else "left")
    for node in hot.nodes:
        nodes.add_row(node.name, node.op_type or "N/A", str(node.count), f"{node.share:.1%}", f"{node.total_us:.1f}")
    if hot.nodes:
        console.print(nodes)
    for s in suggestions:
        for name, reason in s.refusals.items():
            console.print(f"  {name} left {s.op_type}: {reason}")
    layout = [s for s in suggestions if s.category == "layout"]
    if layout:
        console.print(
            f"layout conversions ({', '.join(s.op_type for s in layout)}) take "
            f"{sum(s.share for s in layout):.1%}: no pass removes them; they come from format changes"
        )
    return 0
