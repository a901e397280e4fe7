"""``onnx-opt tune``: tune a model with AOE (subgraph or operator tuning) or the legacy auto_tune."""

from __future__ import annotations

from pathlib import Path

import click

from optimizer.cli.console import (
    check_folders,
    check_outputs,
    literal,
    note,
    progress,
    settings,
    verbosity_options,
    write_json,
)
from optimizer.cli.toolchain_options import cann_version_option, model_options, report_failure, timeout_option

AUTO_TUNE_MODES = ("RL", "GA")


def _parse_modes(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    modes = [mode.strip().upper() for mode in value.split(",") if mode.strip()]
    if not modes or any(mode not in AUTO_TUNE_MODES for mode in modes):
        raise click.BadParameter("give RL, GA or RL,GA")
    return ",".join(dict.fromkeys(modes))


@click.command("tune")
@verbosity_options
@click.argument("model", type=click.Path(path_type=Path))
@model_options
@click.option(
    "--tool",
    type=click.Choice(["aoe", "auto_tune"]),
    default="aoe",
    show_default=True,
    help="AOE, or ATC's --auto_tune_mode (CANN before 6.0.1 only).",
)
@click.option(
    "--job-type", type=click.IntRange(1, 2), metavar="1|2", help="AOE: 1 subgraph tuning, 2 operator tuning (1 then 2)."
)
@click.option("--mode", callback=_parse_modes, metavar="RL,GA", help="auto_tune: RL (vector ops), GA (cube ops).")
@click.option(
    "--ops-from",
    type=click.Path(path_type=Path),
    metavar="PROFILE",
    help="AOE: tune only the hottest ops of this profile (msprof folder or op_summary / op_statistic CSV).",
)
@click.option(
    "--top", type=click.IntRange(1), default=10, show_default=True, metavar="N", help="How many ops --ops-from takes."
)
@click.option(
    "--tune-bank",
    type=click.Path(path_type=Path, file_okay=False),
    metavar="DIR",
    help="Keep what tuning learns here (TUNE_BANK_PATH, set for the tool only); created when missing.",
)
@click.option(
    "--report", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE.json", help="Write the JSON report here."
)
@timeout_option(6 * 3600)
@cann_version_option
def tune_command(
    model: Path,
    soc: str,
    output: Path | None,
    input_shapes: dict[str, list[int]],
    input_format: str | None,
    out_nodes: str | None,
    extra_args: tuple[str, ...],
    tool: str,
    job_type: int | None,
    mode: str | None,
    ops_from: Path | None,
    top: int,
    tune_bank: Path | None,
    report: Path | None,
    timeout: float,
    cann_version: str | None,
) -> int:
    """Tune MODEL for SOC with AOE (--job-type 1|2) or auto_tune, and write the tuned .om.

    Arguments after '--' go to the tool unchanged and replace any flag of the same name.
    """
    from optimizer.errors import UserError
    from optimizer.toolchain.jobs import TuneJob, tune

    check_folders(report)
    check_outputs(
        {"--report": report}, inputs={"--ops-from": ops_from, "--tune-bank": tune_bank}, models={"MODEL": model}
    )
    if tool == "aoe":
        if mode is not None:
            raise UserError("--mode is auto_tune's (RL, GA): AOE takes --job-type 1 or 2")
        if job_type is None:
            raise UserError("--tool aoe needs --job-type: 1 subgraph tuning, 2 operator tuning (run 1, then 2)")
    elif job_type is not None or ops_from is not None:
        raise UserError("--job-type and --ops-from are AOE's: use --tool aoe")
    job = TuneJob(
        model=model, soc=soc, output=output, input_shapes=input_shapes, input_format=input_format,
        out_nodes=out_nodes, extra=list(extra_args), timeout=timeout, cann_version=cann_version, tool=tool,
        job_type=job_type, mode=mode, ops_from=ops_from, top=top, tune_bank=tune_bank,
    )
    verbose = settings().verbose > 0
    with progress() as say:
        done = tune(job, progress=say, verbose=verbose)
    for line in done.notes:
        note(literal(line))
    if done.error is not None:
        return report_failure(f"onnx-opt: {done.error}")
    result = done.result
    if report is not None:
        write_json(report, result.to_dict())
    if not result.ok:
        if tool == "aoe":
            return report_failure(f"{result.problem}; full output in {result.log}")
        from optimizer.toolchain.atc import format_failure

        return report_failure(format_failure(result, model=str(model), soc=soc, verbose=verbose))
    if tool == "auto_tune":
        note(f"wrote {result.om} tuned by auto_tune ({done.mode}; ATC output in {result.log})")
    elif not settings().quiet:
        _print_aoe(result)
    return 0


def _print_aoe(result) -> None:
    click.echo(f"tuned model: {result.om}")
    for found in result.reports:
        click.echo(
            f"{found.kind}: {found.baseline_ms} ms -> {found.result_ms} ms ({found.improvement}), "
            f"{len(found.modified)} operator(s) changed in the tune bank; {found.status or ''}".rstrip("; ")
        )
        for op in found.modified:
            click.echo(literal(f"  {op.name} ({op.op_type}): {op.before_us} us -> {op.after_us} us ({op.improvement})"))
    if result.improvement and not result.reports:
        click.echo(f"performance improved by {result.improvement}")
    click.echo(f"tune bank: {result.tune_bank}")
    click.echo(f"AOE output in {result.log}")
