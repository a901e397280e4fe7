"""Profile an .om on the NPU: the inference tool runs under msprof, the summary is exported, and
msprof's op_summary / op_statistic CSVs are left in the output folder for the profiles readers.

Layout of ``out_dir`` afterwards::

    op_summary_*.csv, op_statistic_*.csv    msprof's own files, copied from its summary folder
    msprof/PROF_*/ (or JOB*/)               msprof's raw output
    inference/                              ais_bench's summary JSON (or benchmark's result/)
    msprof_collect.log, msprof_export_N.log the tools' console output
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from optimizer.errors import UserError
from optimizer.toolchain import inference, msprof
from optimizer.toolchain.environment import Toolchain

DEFAULT_RUNS = 20


@dataclass
class NpuProfile:
    """What a profiling run left: the copied CSVs, the inference summary, and its numbers."""

    out_dir: Path
    files: list[Path]
    summary: Path
    throughput: float | None  # items/s, as the inference tool reports it
    latency_ms: float | None  # mean time of one inference on the NPU
    tool: str
    raw: Path
    logs: list[Path]


def profile_om(
    om: Path,
    out_dir: Path,
    *,
    device: int = 0,
    runs: int = DEFAULT_RUNS,
    timeout: float,
    toolchain: Toolchain,
    progress: Callable[[str], None] | None = None,
    verbose: bool = False,
    batch_size: int = 1,
) -> NpuProfile:
    """Run ``om`` ``runs`` times on NPU ``device`` under msprof and leave its profile in ``out_dir``.

    ``timeout`` bounds the whole job; ``batch_size`` is passed only to the old benchmark tool
    (ais_bench reads it from the model). Raises UserError for bad input or a missing tool and
    ToolError / ToolTimeoutError when a tool ran and failed.
    """
    say = progress or (lambda message: None)
    if om.suffix != ".om" or not om.is_file():
        raise UserError(f"{om}: no such .om model")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"-o {out_dir}: exists and is not a folder")
    if out_dir.is_dir() and (stale := msprof.summary_files(out_dir)):
        raise UserError(f"{out_dir} already holds a profile ({stale[0].name}): give a new output folder")
    msprof_tool = toolchain.tool("msprof")
    if msprof.is_legacy(toolchain):
        toolchain.tool("msprof.py")  # missing: say so before anything runs
    run = inference.inference_run(
        toolchain, om.resolve(), out_dir.resolve() / "inference", device=device, runs=runs, batch_size=batch_size
    )
    deadline = time.monotonic() + timeout

    def left() -> float:
        return max(1.0, deadline - time.monotonic())

    run.cwd.mkdir(parents=True, exist_ok=True)
    say(f"profiling {om.name} with {msprof_tool.name} and {run.tool}")
    logs = [out_dir / "msprof_collect.log"]
    job = msprof.collect(
        toolchain,
        run.argv,
        out_dir.resolve() / "msprof",
        cwd=run.cwd,
        log=logs[0],
        timeout=left(),
        progress=progress,
        verbose=verbose,
    )
    say("exporting the msprof summary")
    folder = msprof.export(
        toolchain, job, device=device, logs=out_dir, timeout=left(), progress=progress, verbose=verbose
    )
    logs += sorted(out_dir.glob("msprof_export_*.log"))
    files = msprof.copy_summaries(folder, out_dir)
    summary, throughput, latency_ms = inference.read_result(run)
    return NpuProfile(out_dir, files, summary, throughput, latency_ms, run.tool, job, logs)
