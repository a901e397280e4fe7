"""``onnx-opt whitelist``: add TransposeD shapes to the OPP's white list, or revert the edit."""

from __future__ import annotations

from pathlib import Path

import click

from optimizer.cli.console import note, settings, verbosity_options
from optimizer.cli.options import input_shape_option


@click.command("whitelist")
@verbosity_options
@click.argument("model", required=False, type=click.Path(path_type=Path))
@click.option(
    "--opp",
    type=click.Path(path_type=Path),
    envvar="ASCEND_OPP_PATH",
    metavar="OPP_DIR",
    help="The toolkit's opp folder (default: $ASCEND_OPP_PATH).",
)
@input_shape_option
@click.option(
    "--shapes-from",
    type=click.Path(path_type=Path),
    metavar="PROFILE",
    help="Take the shapes from the TransposeD rows of an msprof op_summary instead.",
)
@click.option("--dry-run", is_flag=True, help="Print the unified diff; write nothing.")
@click.option("--revert", is_flag=True, help="Restore the original file from onnx-opt's backup.")
def whitelist_command(
    model: Path | None,
    opp: Path | None,
    input_shapes: dict[str, list[int]],
    shapes_from: Path | None,
    dry_run: bool,
    revert: bool,
) -> int:
    """Add the input shapes of MODEL's TransposeD candidates to the OPP's Transpose white list."""
    from optimizer import whitelist
    from optimizer.errors import UserError
    from optimizer.whitelist_shapes import shapes_from_model, shapes_from_profile

    if opp is None:
        raise UserError("no OPP folder: give --opp OPP_DIR or set ASCEND_OPP_PATH")
    if revert:
        if dry_run:
            raise UserError("--revert and --dry-run do not go together")
        note(f"restored {whitelist.revert(opp)} from its backup")
        return 0
    if model is None and shapes_from is None:
        raise UserError("give a MODEL, --shapes-from PROFILE, or --revert")
    whitelist.transpose_file(opp)
    shapes = shapes_from_model(model, input_shapes) if model is not None else []
    if shapes_from is not None:
        shapes += [shape for shape in shapes_from_profile(shapes_from) if shape not in shapes]
    if not shapes:
        note("no TransposeD shapes found: nothing to add")
        return 0
    edit = whitelist.add_shapes(opp, shapes, dry_run=dry_run)
    if edit.diff and (dry_run or settings().verbose):
        click.echo(edit.diff, nl=False)
    if edit.present:
        note(f"already listed: {', '.join(map(str, edit.present))}")
    if not edit.added:
        note(f"{edit.path}: nothing to add")
    elif dry_run:
        note(f"dry run: would add {', '.join(map(str, edit.added))} to {edit.path}")
    else:
        note(
            f"added {', '.join(map(str, edit.added))} to {edit.path} (original kept as {edit.backup}); "
            "re-run ATC to use them, 'onnx-opt whitelist --revert' to undo"
        )
    return 0
