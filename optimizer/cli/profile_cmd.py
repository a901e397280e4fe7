"""``onnx-opt profile``: profile a model on onnxruntime (or an .om on the NPU) into a folder."""

from __future__ import annotations

from pathlib import Path

import click

from optimizer.cli.console import literal, note, progress, settings, stdout_console, verbosity_options
from optimizer.cli.options import input_shape_option


@click.command("profile")
@verbosity_options
@click.argument("model", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "out_dir",
    required=True,
    type=click.Path(path_type=Path),
    metavar="DIR",
    help="Folder for op_summary_*.csv, op_statistic_*.csv and latency_*.json.",
)
@click.option(
    "--backend",
    type=click.Choice(["auto", "onnxruntime", "ascend"]),
    default="auto",
    show_default=True,
    help="auto: .om files on the NPU (ais_bench under msprof), anything else on onnxruntime.",
)
@input_shape_option
@click.option("--runs", type=click.IntRange(1), default=20, show_default=True, help="Measured runs.")
@click.option("--warmup", type=click.IntRange(0), default=5, show_default=True, help="Unmeasured runs first.")
@click.option("--threads", type=click.IntRange(1), help="onnxruntime intra-op threads (default: its own).")
@click.option("--device", type=click.IntRange(0), default=0, show_default=True, help="NPU device id (ascend).")
@click.option(
    "--timeout",
    type=click.FloatRange(1),
    default=3600,
    show_default=True,
    help="Seconds before the NPU run is stopped (ascend).",
)
@click.option("--cann-version", metavar="X.Y.Z", help="CANN version when the toolkit's cannot be read (ascend).")
def profile_command(
    model: Path,
    out_dir: Path,
    backend: str,
    input_shapes: dict[str, list[int]],
    runs: int,
    warmup: int,
    threads: int | None,
    device: int,
    timeout: float,
    cann_version: str | None,
) -> int:
    """Profile MODEL and write msprof-style CSVs and latency samples into DIR."""
    if backend == "ascend" or (backend == "auto" and model.suffix == ".om"):
        return _profile_npu(model, out_dir, runs, device, timeout, cann_version)
    from optimizer.ort_profile import profile_onnx

    with progress() as say:
        result = profile_onnx(
            model, out_dir, input_shapes=input_shapes, runs=runs, warmup=warmup, threads=threads, progress=say
        )
    if not settings().quiet:
        print_profile(result.profile, top=10)
        counts = result.attribution
        note(
            f"{counts['mapped']} rows mapped to ONNX nodes, {counts['inserted']} inserted layout ops, "
            f"{counts['unmapped']} unmapped (onnxruntime renames the nodes it fuses)"
        )
        note("wrote " + ", ".join(str(path) for path in result.files))
    return 0


def _profile_npu(model: Path, out_dir: Path, runs: int, device: int, timeout: float, cann_version: str | None) -> int:
    from optimizer.toolchain.environment import discover
    from optimizer.toolchain.npu_profile import profile_om
    from optimizer.toolchain.process import ToolError
    from profiles.read import read_profile

    toolchain = discover(cann_version=cann_version)
    try:
        with progress() as say:
            result = profile_om(model, out_dir, device=device, runs=runs, timeout=timeout, toolchain=toolchain,
                                progress=say, verbose=bool(settings().verbose))
    except ToolError as exc:  # msprof or the inference tool ran and failed, or timed out
        click.echo(f"onnx-opt: {exc}", err=True)
        return 1
    if not settings().quiet:
        print_profile(read_profile(out_dir), top=10)
        note("wrote " + ", ".join(str(path) for path in result.files))
    return 0


def print_profile(profile, top: int) -> None:
    """The top op types by time, and the latency summary (names from the profile shown literally)."""
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(literal(f"profile of {profile.source} ({profile.kind})")), title_justify="left")
    for column in ("op type", "core", "count", "total us", "avg us", "share"):
        table.add_column(column, justify="left" if column in ("op type", "core") else "right")
    for stat in profile.stats[:top]:
        table.add_row(
            escape(literal(stat.op_type or "N/A")),
            escape(literal(stat.core_type or "")),
            str(stat.count),
            f"{stat.total_us:.1f}",
            f"{stat.avg_us:.1f}",
            f"{stat.share:.1%}",
        )
    console = stdout_console()
    console.print(table)
    latency = profile.latency
    if latency is not None and latency.center_ms is not None:
        spread = f" ± {latency.spread_ms:.3f}" if latency.spread_ms is not None else ""
        runs = f" over {len(latency.samples_ms)} runs" if latency.samples_ms else ""
        console.print(f"latency: median {latency.center_ms:.3f} ms{spread}{runs}")
