"""Offline inference of an .om: ais_bench (``python3 -m ais_bench``), or the old ``benchmark.<arch>``
tool when that is what is installed; where each leaves its throughput and latency."""

from __future__ import annotations

import platform
import shutil
from dataclasses import dataclass
from pathlib import Path

from optimizer.errors import UserError
from optimizer.toolchain.environment import Toolchain
from optimizer.toolchain.process import ToolError, run_tool

AIS_BENCH = "ais_bench"
BENCHMARK = "benchmark"
PROBE_TIMEOUT = 60.0
_HAS_AIS_BENCH = "import importlib.util, sys; sys.exit(importlib.util.find_spec('ais_bench') is None)"
MISSING = (
    "no inference tool: install ais_bench (the aclruntime and ais_bench wheels of Ascend/tools, "
    "ais-bench_workload/tool/ais_bench) for python3, or put the old benchmark.{arch} tool on PATH"
)


@dataclass
class InferenceRun:
    """The command of one inference tool, the folder it runs in (its results go there), and its name."""

    tool: str
    argv: list[str]
    cwd: Path
    device: int


def has_ais_bench(toolchain: Toolchain) -> bool:
    """Whether the toolchain's python3 can import ais_bench."""
    done = run_tool([toolchain.python(), "-c", _HAS_AIS_BENCH], env=toolchain.env, timeout=PROBE_TIMEOUT)
    return done.returncode == 0


def benchmark_tool(toolchain: Toolchain) -> Path | None:
    """The old benchmark tool on PATH (``benchmark.x86_64`` / ``benchmark.aarch64``, or ``benchmark``)."""
    for name in (f"benchmark.{platform.machine()}", "benchmark"):
        if found := shutil.which(name, path=toolchain.user_path):
            return Path(found)
    return None


def inference_run(
    toolchain: Toolchain, om: Path, work: Path, *, device: int, runs: int, batch_size: int
) -> InferenceRun:
    """The pure-inference command for ``om`` (ais_bench first), to run in ``work``, where its results go."""
    if has_ais_bench(toolchain):
        argv = [toolchain.python(), "-m", AIS_BENCH, "--model", str(om), "--device", str(device),
                "--loop", str(runs), "--output", str(work)]
        return InferenceRun(AIS_BENCH, argv, work, device)
    benchmark = benchmark_tool(toolchain)
    if benchmark is None:
        raise UserError(MISSING.format(arch=platform.machine()))
    argv = [str(benchmark), f"-round={runs}", f"-om_path={om}", f"-device_id={device}", f"-batch_size={batch_size}"]
    return InferenceRun(BENCHMARK, argv, work, device)


def read_result(run: InferenceRun) -> tuple[Path, float | None, float | None]:
    """The result file of a finished run, its throughput (items/s) and mean latency (ms).

    ais_bench: ``<output>/<time>_summary.json`` (ais_infer before 2022-11: ``<output>/<dir>/sumary.json``);
    benchmark: ``result/PureInfer_perf_of_<name>_in_device_<N>.txt``.
    """
    from profiles.read import read_profile

    if run.tool == AIS_BENCH:
        found = sorted(run.cwd.glob("*_summary.json")) or sorted(run.cwd.glob("*/sumary.json"))
    else:
        found = sorted(run.cwd.glob(f"result/PureInfer_perf_of_*_in_device_{run.device}.txt"))
    if not found:
        raise ToolError(f"{run.tool} left no result file in {run.cwd}")
    latency = read_profile(found[-1]).latency
    if latency is None:
        return found[-1], None, None
    return found[-1], latency.throughput, latency.mean_ms
