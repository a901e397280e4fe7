"""``onnx-opt bench``: time two models head to head (A the baseline, B the candidate) and say
whether B is faster, slower or the same, beyond a minimum gain."""

from __future__ import annotations

from pathlib import Path

import click

from optimizer.cli.console import (
    check_folders,
    check_outputs,
    literal,
    progress,
    settings,
    shown,
    stdout_console,
    verbosity_options,
    write_json,
)
from optimizer.cli.options import verify_shape_option
from optimizer.errors import UserError


@click.command("bench")
@verbosity_options
@click.argument("model_a", metavar="A", type=click.Path(path_type=Path))
@click.argument("model_b", metavar="B", type=click.Path(path_type=Path))
@click.option("--runs", type=click.IntRange(2), default=20, show_default=True,
              help="Interleaved rounds first (each model runs once a round); more follow while undecided.")
@click.option("--max-rounds", type=click.IntRange(2), default=400, show_default=True, help="Rounds at most.")
@click.option("--budget", "budget_s", type=click.FloatRange(0), default=60.0, show_default=True, metavar="S",
              help="Seconds after which no rounds are added; the verdict is then 'undecided' if still open.")
@click.option("--min-gain", type=click.FloatRange(0, 100, max_open=True), default=2.0, show_default=True,
              metavar="PCT", help="Percent a change must exceed, with 95% confidence, to count as faster/slower.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True, help="onnxruntime intra-op threads.")
@click.option("--clock", type=click.Choice(["auto", "thread-cpu", "wall"]), default="auto", show_default=True,
              help="auto: the calling thread's CPU time with one thread (robust to load), else wall-clock time.")
@click.option("--warmup", type=click.IntRange(0), help="Warm-up runs per model in each order (default 2; ascend 1).")
@click.option("--inputs", type=click.Path(path_type=Path, dir_okay=False), metavar="F.npz",
              help="Input arrays by name (default: seeded random data).")
@verify_shape_option
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="Write the result (medians, ratio, interval, verdict, samples) as JSON.")
@click.option("--backend", type=click.Choice(["auto", "onnxruntime", "ascend"]), default="auto",
              show_default=True, help="auto: two .om files on the NPU with ais_bench, else onnxruntime.")
@click.option("--device", type=click.IntRange(0), default=0, show_default=True, help="NPU device id (ascend).")
@click.option("--loop", type=click.IntRange(1), default=10, show_default=True,
              help="Inferences per ais_bench run (ascend); a run's time is their median.")
@click.option("--timeout", type=click.FloatRange(1), default=600, show_default=True, metavar="SEC",
              help="Seconds before one ais_bench run is stopped (ascend).")
@click.option("--cann-version", metavar="X.Y.Z", help="CANN version when the toolkit's cannot be read (ascend).")
def bench_command(
    model_a: Path, model_b: Path, runs: int, max_rounds: int, budget_s: float, min_gain: float, threads: int,
    clock: str, warmup: int | None, inputs: Path | None, verify_shapes: dict[str, list[int]],
    json_path: Path | None, backend: str, device: int, loop: int, timeout: float, cann_version: str | None,
) -> int:
    """Time A against B in interleaved rounds: medians, ratio B/A with its 95% interval, verdict."""
    check_folders(json_path)
    check_outputs({"--json": json_path}, inputs={"--inputs": inputs}, models={"A": model_a, "B": model_b})
    if max_rounds < runs:
        raise UserError(f"--max-rounds {max_rounds} is below --runs {runs}")
    common = {"min_gain": min_gain / 100, "rounds": runs, "max_rounds": max_rounds, "budget_s": budget_s}
    if backend == "ascend" or (backend == "auto" and model_a.suffix == model_b.suffix == ".om"):
        if inputs is not None or verify_shapes:
            raise UserError("--inputs and --verify-shape apply to the onnxruntime backend; ais_bench makes its own")
        result = _bench_npu(model_a, model_b, device, loop, timeout, cann_version, warmup, common)
        if result is None:
            return 1
        source = None
    else:
        result, source = _bench_onnxruntime(model_a, model_b, inputs, verify_shapes, threads, clock, warmup, common)
    if json_path is not None:
        write_json(json_path, {"a_model": str(model_a), "b_model": str(model_b), "inputs": source,
                               **result.to_dict()})
    if not settings().quiet:
        print_result(result, model_a, model_b)
    return 0


def _bench_onnxruntime(a: Path, b: Path, inputs: Path | None, verify_shapes: dict[str, list[int]], threads: int,
                       clock: str, warmup: int | None, common: dict):
    from optimizer.loop.timing import time_ab
    from optimizer.modelio import load_model
    from optimizer.verifier import choose_feeds

    model_a, model_b = load_model(a), load_model(b)
    feeds = choose_feeds(model_a, inputs, verify_shapes, seed=0)
    check_same_inputs(model_b, feeds.sets[0], b, a)
    with progress() as say:
        result = time_ab(a, b, feeds.sets[0], threads=threads, clock=clock, progress=say,
                         **({} if warmup is None else {"warmup": warmup}), **common)
    return result, feeds.source


def _bench_npu(a: Path, b: Path, device: int, loop: int, timeout: float, cann_version: str | None,
               warmup: int | None, common: dict):
    import tempfile

    from optimizer.loop.timing import AisBenchRunners, time_ab
    from optimizer.toolchain.environment import discover
    from optimizer.toolchain.process import ToolError

    toolchain = discover(cann_version=cann_version)
    try:
        with tempfile.TemporaryDirectory(prefix="onnx-opt-bench-") as work, progress() as say:
            factory = AisBenchRunners(toolchain, Path(work), device=device, loop=loop, timeout=timeout,
                                      verbose=bool(settings().verbose))
            return time_ab(a, b, None, runner_factory=factory, warmup=1 if warmup is None else warmup,
                           progress=say, **common)
    except ToolError as exc:  # the inference tool ran and failed, or timed out
        click.echo(literal(f"onnx-opt: {exc}"), err=True)
        return None


def check_same_inputs(model, feeds: dict, path: Path, other: Path) -> None:
    """Refuse a model B that does not take A's inputs: same names, element types, ranks and static dims."""
    from optimizer.verify import declared_inputs

    specs = {spec.name: spec for spec in declared_inputs(model)}
    if set(specs) != set(feeds):
        raise UserError(f"{path} and {other} take different inputs: {', '.join(sorted(specs)) or 'none'} "
                        f"against {', '.join(sorted(feeds)) or 'none'}")
    for name, array in feeds.items():
        spec = specs[name]
        if array.dtype != spec.dtype:
            raise UserError(f"{path}: input '{name}' is {spec.dtype}; {other} takes {array.dtype}")
        if spec.shape is not None and (
            len(spec.shape) != array.ndim
            or any(isinstance(want, int) and want != got for want, got in zip(spec.shape, array.shape, strict=True))
        ):
            dims = ",".join("?" if not isinstance(d, int) else str(d) for d in spec.shape)
            raise UserError(f"{path}: input '{name}' has shape [{dims}]; {other} runs with {list(array.shape)}")


def print_result(result, a: Path, b: Path) -> None:
    """The table of medians, ratio, interval, verdict, clock and rounds, then the verdict in words."""
    from rich.table import Table

    table = Table(title=shown(f"A = {a}, B = {b}"), title_justify="left")
    for column in ("A median ms", "B median ms", "ratio B/A", "95% CI", "verdict", "clock", "rounds"):
        table.add_column(column, justify="left" if column in ("verdict", "clock") else "right")
    table.add_row(
        f"{result.a_median_ms:.3f}", f"{result.b_median_ms:.3f}", f"{result.ratio:.3f}",
        f"{result.ci[0]:.3f}-{result.ci[1]:.3f}", result.verdict, result.clock, str(result.rounds),
    )
    console = stdout_console()
    console.print(table)
    console.print(shown(result.reason))
