"""``onnx-opt auto``: profile, choose passes from the hot ops, keep only what is measurably faster."""

from __future__ import annotations

from pathlib import Path

import click

from optimizer.cli.console import progress, settings, stdout_console, verbosity_options
from optimizer.cli.options import input_shape_option, verify_shape_option


@click.command("auto")
@verbosity_options
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False), required=True,
              help="Where to write the result.")
@click.option("--target", metavar="T", help="Target (default: inferred from the profile: onnxruntime here).")
@click.option("--backend", type=click.Choice(["onnxruntime"]), default="onnxruntime", show_default=True,
              help="Where candidates are timed.")
@input_shape_option(fixes=True)
@verify_shape_option
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
def auto_command(
    model: Path, output: Path, target: str | None, backend: str, input_shapes: dict[str, list[int]],
    verify_shapes: dict[str, list[int]], inputs: Path | None, min_gain: float, budget_s: float, threads: int,
    report: Path | None, seed: int,
) -> int:
    """Profile MODEL, try the passes aimed at its hot ops one by one, keep each only when an
    interleaved A/B says it is faster, and write the result to -o."""
    from optimizer.loop.auto import AutoOptions, run_auto

    options = AutoOptions(
        input=model, output=output, target=target, input_shapes=input_shapes, verify_shapes=verify_shapes,
        inputs=inputs, min_gain=min_gain / 100, budget_s=budget_s, threads=threads, seed=seed, report=report,
    )
    with progress() as say:
        result = run_auto(options, say)
    if not settings().quiet:
        print_result(result, report)
    return 0


def print_result(result, report: Path | None) -> None:
    """A row per candidate (kept or not, why, ratio and interval), the final verdict, what was written."""
    from rich.markup import escape
    from rich.table import Table

    console = stdout_console()
    console.print(f"target {result.target}: {escape(result.target_chosen)}")
    table = Table(title=escape(f"onnx-opt auto: {result.input}"), title_justify="left")
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
            escape(step.reason),
        )
    if result.steps:
        console.print(table)
    if settings().verbose:
        for item in result.rejected:
            console.print(f"  not a candidate: {item['pass']}: {escape(item['reason'])}")
    if result.final is not None:
        console.print(f"result against the input: {escape(result.final.reason)}")
    for line in result.notes:
        console.print(f"note: {escape(line)}")
    console.print(f"kept: {', '.join(result.kept) or 'nothing'}; wrote {', '.join(result.written)}")
    if report is not None:
        console.print(f"report: {report / 'auto.html'}, {report / 'auto.json'}, {report / 'plan.json'}")
