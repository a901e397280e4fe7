"""``onnx-opt auto``: profile, choose passes from the hot ops, keep only what is measurably faster."""

from __future__ import annotations

from pathlib import Path

import click

from optimizer.cli.console import progress, settings, shown, stdout_console, verbosity_options
from optimizer.cli.options import input_shape_option, set_option, verify_shape_option
from optimizer.cli.passes_cmd import warn_about_plugins
from optimizer.cli.toolchain_options import cann_version_option, report_failure
from optimizer.errors import UserError

ASCEND_PARAMETERS = ("soc", "device", "loop", "tune", "tune_bank", "opp", "input_format", "out_nodes", "extra_args",
                     "timeout", "tune_timeout", "cann_version")


@click.command("auto")
@verbosity_options
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Where to write the result.")
@click.option("--target", metavar="T", help="Target (default: inferred from the profile: onnxruntime here).")
@click.option("--backend", type=click.Choice(["onnxruntime", "ascend"]), default="onnxruntime", show_default=True,
              help="Where candidates are timed: onnxruntime here, or converted with ATC and run on the NPU "
              "with ais_bench.")
@input_shape_option(fixes=True)
@verify_shape_option
@set_option
@click.option("--inputs", type=click.Path(path_type=Path, dir_okay=False), metavar="F.npz",
              help="Input arrays by name, for verification and timing (default: seeded random data).")
@click.option("--min-gain", type=click.FloatRange(0, 100, max_open=True), default=2.0, show_default=True,
              metavar="PCT", help="Percent a pass must gain, with 95% confidence, to be kept.")
@click.option("--budget", "budget_s", type=click.FloatRange(1), default=120.0, show_default=True, metavar="S",
              help="Seconds of A/B timing in all, shared by the candidates.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="onnxruntime intra-op threads.")
@click.option("--report", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="Write auto.json, auto.html, plan.json and both profiles here.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random inputs and the bootstrap.")
@click.option("--runs", type=click.IntRange(2), default=20, show_default=True,
              help="Interleaved rounds of each A/B first; more follow while undecided.")
@click.option("--soc", metavar="SOC", help="ascend: ATC's --soc_version (default: the target's, e.g. Ascend310).")
@click.option("--device", type=click.IntRange(0), default=0, show_default=True, help="ascend: NPU device id.")
@click.option("--loop", type=click.IntRange(1), default=10, show_default=True,
              help="ascend: inferences per ais_bench run; a run's time is their median.")
@click.option("--tune", type=click.Choice(["aoe"]),
              help="ascend: last, AOE operator tuning of the kept model's hot ops, kept only when faster.")
@click.option("--tune-bank", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="ascend: AOE's tune bank (TUNE_BANK_PATH, for AOE only); created when missing.")
@click.option("--opp", type=click.Path(path_type=Path), metavar="OPP_DIR",
              help="ascend: the OPP whose TransposeD white list is tried (default: ASCEND_OPP_PATH of set_env.sh).")
@click.option("--input-format", metavar="F", help="ascend: ATC's --input_format (NCHW, ND, NCDHW).")
@click.option("--out-nodes", metavar="N", help="ascend: ATC's --out_nodes, e.g. 'Resize_317:0'.")
@click.option("--timeout", type=click.FloatRange(1), default=3600, show_default=True, metavar="SEC",
              help="ascend: seconds before one ATC or msprof run is stopped (an ais_bench run: at most 600).")
@click.option("--tune-timeout", type=click.FloatRange(1), default=6 * 3600, show_default=True, metavar="SEC",
              help="ascend: seconds before AOE is stopped.")
@cann_version_option
@click.argument("extra_args", nargs=-1, type=click.UNPROCESSED, metavar="[-- EXTRA_ATC_ARGS]")
def auto_command(
    model: Path, output: Path, target: str | None, backend: str, input_shapes: dict[str, list[int]],
    verify_shapes: dict[str, list[int]], pass_settings: dict[str, dict[str, str]], inputs: Path | None,
    min_gain: float, budget_s: float, threads: int,
    report: Path | None, seed: int, runs: int, soc: str | None, device: int, loop: int, tune: str | None,
    tune_bank: Path | None, opp: Path | None, input_format: str | None, out_nodes: str | None, timeout: float,
    tune_timeout: float, cann_version: str | None, extra_args: tuple[str, ...],
) -> int:
    """Profile MODEL, try the passes aimed at its hot ops one by one, keep each only when an
    interleaved A/B says it is faster, and write the result to -o.

    With --backend ascend every candidate is converted with ATC and timed on the NPU, the OPP's
    TransposeD white list is a candidate too (undone byte for byte unless faster), and the kept
    .om is written beside -o. Arguments after '--' go to every ATC run unchanged.
    """
    from optimizer.loop.auto import AutoOptions, run_auto
    from optimizer.pass_options import check_settings
    from optimizer.toolchain.process import ToolError

    if backend != "ascend":
        source = click.get_current_context().get_parameter_source
        given = [name for name in ASCEND_PARAMETERS if source(name) != click.core.ParameterSource.DEFAULT]
        if given:
            flag = "-- EXTRA_ATC_ARGS" if given[0] == "extra_args" else "--" + given[0].replace("_", "-")
            raise UserError(f"{flag} applies to --backend ascend")
    options = AutoOptions(
        input=model, output=output, target=target, input_shapes=input_shapes, verify_shapes=verify_shapes,
        inputs=inputs, min_gain=min_gain / 100, budget_s=budget_s, threads=threads, seed=seed, report=report,
        rounds=runs, backend=backend, soc=soc, device=device, loop=loop, cann_version=cann_version, opp=opp,
        input_format=input_format, out_nodes=out_nodes, atc_args=list(extra_args), timeout_s=timeout, tune=tune,
        tune_bank=tune_bank, tune_timeout_s=tune_timeout, verbose=settings().verbose > 0,
        pass_options=pass_settings,
    )
    warn_about_plugins()
    check_settings(pass_settings)
    try:
        with progress() as say:
            if backend == "ascend":
                from optimizer.loop.auto_ascend import run_auto_ascend

                result = run_auto_ascend(options, say)
            else:
                result = run_auto(options, say)
    except ToolError as exc:  # a tool ran and failed outside a step (ATC on the input, msprof), or timed out
        return report_failure(f"onnx-opt: {exc}")
    if not settings().quiet:
        print_result(result, report)
    return 0


def print_result(result, report: Path | None) -> None:
    """A row per candidate (kept or not, why, ratio and interval), the final verdict, what was written."""
    from rich.table import Table

    console = stdout_console()
    console.print(f"target {result.target}: {shown(result.target_chosen)}")
    table = Table(title=shown(f"onnx-opt auto: {result.input}"), title_justify="left")
    for column in ("pass", "hot share", "opset", "kept", "verdict", "ratio", "95% CI", "reason"):
        table.add_column(column, overflow="fold")
    for step in result.steps:
        table.add_row(
            step.pass_name,
            f"{step.hot_share:.1%}",
            str(step.opset or "-"),
            "kept" if step.kept else "rejected",
            step.verdict or "-",
            "-" if step.ratio is None else f"{step.ratio:.3f}",
            "-" if step.ci is None else f"{step.ci[0]:.3f}-{step.ci[1]:.3f}",
            shown(step.reason),
        )
    if result.steps:
        console.print(table)
    if settings().verbose:
        for item in result.rejected:
            console.print(f"  not a candidate: {item['pass']}: {shown(item['reason'])}")
    if result.final is not None:
        console.print(f"result against the input: {shown(result.final.reason)}")
    for line in result.notes:
        console.print(f"note: {shown(line)}")
    for edit in result.opp_edits:
        console.print(f"OPP: kept {', '.join(map(str, edit['added']))} in {shown(edit['path'])} "
                      "('onnx-opt whitelist --revert' undoes it)")
    console.print(f"kept: {', '.join(result.kept) or 'nothing'}; wrote {', '.join(result.written)}")
    if report is not None:
        console.print(f"report: {report / 'auto.html'}, {report / 'auto.json'}, {report / 'plan.json'}")
