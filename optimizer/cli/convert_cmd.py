"""``onnx-opt convert``: optionally optimise, then convert an ONNX model to .om with ATC."""

from __future__ import annotations

from pathlib import Path

import click

from optimizer.cli.console import literal, note, progress, settings, verbosity_options
from optimizer.cli.options import pipeline_options
from optimizer.cli.passes_cmd import warn_about_plugins
from optimizer.cli.toolchain_options import cann_version_option, model_options, report_failure, timeout_option

PIPELINE_PARAMETERS = ("target", "passes", "opset", "pass_settings")


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
@click.option(
    "--allow-approximate",
    is_flag=True,
    help="Let opt-in passes named in --passes run (e.g. the ATC fix topk-int32); see 'optimize --help'.",
)
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
    pass_settings: dict[str, dict[str, str]],
    allow_approximate: bool,
    whitelist: bool,
    opp: Path | None,
    timeout: float,
    cann_version: str | None,
) -> int:
    """Convert MODEL to SOC's .om with ATC (optimised first when --target, --passes, --opset or --set is given).

    Arguments after '--' go to atc unchanged and replace any flag of the same name.
    """
    from optimizer.toolchain.atc import format_failure
    from optimizer.toolchain.jobs import ConvertJob, convert

    source = click.get_current_context().get_parameter_source
    job = ConvertJob(
        model=model, soc=soc, output=output, input_shapes=input_shapes, input_format=input_format,
        out_nodes=out_nodes, extra=list(extra_args), timeout=timeout, cann_version=cann_version,
        precision_mode=precision_mode, target=target, passes=passes, opset=opset, pass_options=pass_settings,
        whitelist=whitelist, opp=opp, allow_approximate=allow_approximate,
        optimise=any(source(name) != click.core.ParameterSource.DEFAULT for name in PIPELINE_PARAMETERS),
    )
    verbose = settings().verbose > 0
    if job.optimise or whitelist:
        warn_about_plugins()
    with progress() as say:
        done = convert(job, progress=say, verbose=verbose)
    if done.optimised is not None and not settings().quiet:
        from optimizer.cli.optimize_cmd import print_summary

        print_summary(done.optimised)
    for line in done.notes:
        note(literal(line))
    if done.error is not None:
        return report_failure(f"onnx-opt: {done.error}")
    result = done.atc
    if result is None:
        return 1
    if not result.ok:
        return report_failure(format_failure(result, model=str(model), soc=soc, verbose=verbose))
    note(f"wrote {result.om} (ATC output in {result.log})")
    if result.warnings:
        codes = sorted({w.code for w in result.warnings})
        note(f"ATC warned {len(result.warnings)} time(s) ({', '.join(codes)}): they do not stop the model from running")
        if settings().verbose:
            for warning in result.warnings:
                note(literal(f"  {warning.code}: {warning.message}"))
    return 0
