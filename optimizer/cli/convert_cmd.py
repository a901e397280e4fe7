"""``onnx-opt convert``: optionally optimise, then convert an ONNX model to .om with ATC."""

from __future__ import annotations

from pathlib import Path

import click

from optimizer.cli.console import note, progress, settings, verbosity_options
from optimizer.cli.options import pipeline_options
from optimizer.cli.toolchain_options import (
    atc_input_shape,
    cann_version_option,
    model_options,
    om_name,
    report_failure,
    timeout_option,
)

PIPELINE_PARAMETERS = ("target", "passes", "opset")


@click.command("convert")
@verbosity_options
@click.argument("model", type=click.Path(path_type=Path))
@model_options
@click.option(
    "--precision-mode",
    metavar="M",
    help="ATC's --precision_mode: force_fp16 (ATC's default), allow_mix_precision, must_keep_origin_dtype, ...",
)
@pipeline_options
@click.option("--whitelist", is_flag=True, help="Add the model's TransposeD shapes to the OPP white list first.")
@click.option(
    "--opp",
    type=click.Path(path_type=Path),
    metavar="OPP_DIR",
    help="The toolkit's opp folder for --whitelist (default: ASCEND_OPP_PATH, as set_env.sh sets it).",
)
@timeout_option(3600)
@cann_version_option
def convert_command(
    model: Path,
    soc: str,
    output: Path | None,
    input_shapes: dict[str, list[int]],
    input_format: str | None,
    out_nodes: str | None,
    extra_args: tuple[str, ...],
    precision_mode: str | None,
    target: str,
    passes: list[str] | None,
    opset: int | None,
    whitelist: bool,
    opp: Path | None,
    timeout: float,
    cann_version: str | None,
) -> int:
    """Convert MODEL to SOC's .om with ATC (optimised first when --target, --passes or --opset is given).

    Arguments after '--' go to atc unchanged and replace any flag of the same name.
    """
    from optimizer.errors import UserError
    from optimizer.toolchain.atc import AtcOptions, format_failure, run_atc
    from optimizer.toolchain.environment import discover
    from optimizer.toolchain.process import ToolError

    if not model.is_file():
        raise UserError(f"{model}: no such file")
    toolchain = discover(cann_version)
    toolchain.tool("atc")
    output = om_name(output, model)
    if not output.parent.is_dir():
        raise UserError(f"-o {output}: folder {output.parent} does not exist")
    source = model
    ctx = click.get_current_context()
    if any(ctx.get_parameter_source(name) != click.core.ParameterSource.DEFAULT for name in PIPELINE_PARAMETERS):
        source = _optimise(model, output, target, passes, opset, input_shapes)
        if source is None:
            return 1
    if whitelist:
        _whitelist(source, opp or _env_path(toolchain.env.get("ASCEND_OPP_PATH")), input_shapes)
    options = AtcOptions(
        model=source.resolve(),
        output=output.resolve(),
        soc=soc,
        input_shape=atc_input_shape(source, input_shapes, extra_args),
        input_format=input_format,
        out_nodes=out_nodes,
        precision_mode=precision_mode,
        extra=list(extra_args),
    )
    try:
        with progress() as say:
            result = run_atc(toolchain, options, timeout=timeout, progress=say, verbose=settings().verbose > 0)
    except ToolError as exc:
        return report_failure(f"onnx-opt: {exc}")
    if not result.ok:
        return report_failure(format_failure(result, model=str(model), soc=soc, verbose=settings().verbose > 0))
    note(f"wrote {result.om} (ATC output in {result.log})")
    if result.warnings:
        codes = sorted({w.code for w in result.warnings})
        note(f"ATC warned {len(result.warnings)} time(s) ({', '.join(codes)}): they do not stop the model from running")
        if settings().verbose:
            for warning in result.warnings:
                note(f"  {warning.code}: {warning.message}")
    return 0


def _optimise(model: Path, output: Path, target: str, passes, opset, input_shapes) -> Path | None:
    """Run the optimize job to NAME.opt.onnx; None (after saying why) when nothing was written."""
    from optimizer.cli.optimize_cmd import print_summary
    from optimizer.optimize import OptimizeOptions, optimize

    destination = output.with_name(output.name + ".opt.onnx")
    options = OptimizeOptions(
        input=model, output=destination, passes=passes, target=target, opset=opset, input_shapes=input_shapes
    )
    with progress() as say:
        result = optimize(options, say)
    if not settings().quiet:
        print_summary(result)
    if not result.written:
        note("the optimised model was not written: nothing was converted")
        return None
    return destination


def _whitelist(model: Path, opp: Path | None, input_shapes: dict[str, list[int]]) -> None:
    """Add the model's TransposeD shapes to the OPP's white list (backed up, revertible)."""
    from optimizer import whitelist
    from optimizer.errors import UserError
    from optimizer.whitelist_shapes import shapes_from_model

    if opp is None:
        raise UserError("--whitelist needs the OPP folder: give --opp OPP_DIR or set ASCEND_OPP_PATH")
    whitelist.transpose_file(opp)
    shapes = shapes_from_model(model, input_shapes)
    if not shapes:
        note("no TransposeD shapes in the model: the white list is unchanged")
        return
    edit = whitelist.add_shapes(opp, shapes)
    if edit.added:
        note(f"added {', '.join(map(str, edit.added))} to {edit.path} ('onnx-opt whitelist --revert' undoes it)")
    else:
        note(f"{edit.path} already lists {', '.join(map(str, edit.present))}")


def _env_path(value: str | None) -> Path | None:
    return Path(value) if value else None
