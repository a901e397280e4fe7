"""msprof: collect a profile of an application, export its summary the way the installed CANN
wants, and find the op_summary / op_statistic CSVs in any of its layouts (ASCEND_FACTS 1.1).

Export before CANN 6.0: ``python3 <toolkit>/tools/profiler/profiler_tool/analysis/msprof/msprof.py
import -dir X`` then ``export summary -dir X`` (5.0.x: one more ``toolkit/`` in the path).
From 6.0 on: ``msprof --export=on --output=X``.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

from optimizer.toolchain.environment import Toolchain
from optimizer.toolchain.process import ToolError, run_tool
from optimizer.toolchain.versions import MSPROF_EXPORT_LINE, release_line
from profiles.readers.msprof_dir import PROF_DIR  # the one msprof folder-name pattern, shared with the reader

COLLECT_SWITCHES = ("--task-time=on", "--aicpu=on", "--runtime-api=on")
LEGACY_SWITCHES = ("--model-execution=on",)  # CANN 5.x needs it for the model's op_summary
_CSV_PREFIXES = ("op_summary", "op_statistic")


def is_legacy(toolchain: Toolchain) -> bool:
    """Whether this CANN exports with the msprof.py entry (a known version before 6.0)."""
    return toolchain.version is not None and release_line(toolchain.version) < MSPROF_EXPORT_LINE


def collect_args(msprof: Path, output: Path, application: list[str], *, legacy: bool) -> list[str]:
    """msprof's collection command: the application is one argument, quoted as msprof splits it."""
    switches = COLLECT_SWITCHES + (LEGACY_SWITCHES if legacy else ())
    return [str(msprof), f"--output={output}", f"--application={shlex.join(application)}", *switches]


def export_commands(toolchain: Toolchain, job: Path) -> list[list[str]]:
    """The commands that turn a collected job folder into summary CSVs, for this CANN."""
    if is_legacy(toolchain):
        script = [toolchain.python(), str(toolchain.tool("msprof.py"))]
        return [[*script, "import", "-dir", str(job)], [*script, "export", "summary", "-dir", str(job)]]
    return [[str(toolchain.tool("msprof")), "--export=on", f"--output={job}"]]


def find_job(output: Path) -> Path:
    """The newest job folder msprof wrote in ``output``: ``PROF_*`` (by its timestamp) or ``JOB*``."""
    profs = [d for d in output.iterdir() if d.is_dir() and PROF_DIR.match(d.name)]
    if profs:
        return max(profs, key=lambda d: (int(PROF_DIR.match(d.name).group(1)), d.name))
    jobs = [d for d in output.glob("JOB*") if d.is_dir()]
    if jobs:
        return max(jobs, key=lambda d: (d.stat().st_mtime_ns, d.name))
    raise ToolError(f"msprof wrote no PROF_* or JOB* folder in {output}")


def summary_dir(job: Path, device: int) -> Path | None:
    """The folder of the exported CSVs: mindstudio_profiler_output (6.3+), device_N/summary, or summary (JOB)."""
    candidates = [
        job / "mindstudio_profiler_output",
        job / f"device_{device}" / "summary",
        job / "summary",
        *sorted(job.glob("device_*/summary")),
    ]
    return next((folder for folder in candidates if folder.is_dir() and summary_files(folder)), None)


def summary_files(folder: Path) -> list[Path]:
    """The op_summary / op_statistic CSVs directly in ``folder``."""
    return sorted(p for p in folder.iterdir() if p.suffix == ".csv" and p.name.startswith(_CSV_PREFIXES))


def collect(
    toolchain: Toolchain,
    application: list[str],
    output: Path,
    *,
    cwd: Path,
    log: Path,
    timeout: float,
    progress: Callable[[str], None] | None = None,
    verbose: bool = False,
) -> Path:
    """Run ``application`` under msprof into ``output``; return the job folder it wrote."""
    output.mkdir(parents=True, exist_ok=True)
    argv = collect_args(toolchain.tool("msprof"), output, application, legacy=is_legacy(toolchain))
    done = run_tool(argv, env=toolchain.env, timeout=timeout, log=log, cwd=cwd, progress=progress, verbose=verbose)
    if done.returncode != 0:
        raise ToolError(f"msprof failed with exit status {done.returncode} while profiling; output in {log}")
    return find_job(output)


def export(
    toolchain: Toolchain,
    job: Path,
    *,
    device: int,
    logs: Path,
    timeout: float,
    progress: Callable[[str], None] | None = None,
    verbose: bool = False,
) -> Path:
    """Export ``job``'s summary (logs in ``logs``/msprof_export_N.log); return the folder of its CSVs."""
    for number, argv in enumerate(export_commands(toolchain, job), 1):
        log = logs / f"msprof_export_{number}.log"
        done = run_tool(argv, env=toolchain.env, timeout=timeout, log=log, progress=progress, verbose=verbose)
        if done.returncode != 0:
            raise ToolError(
                f"msprof export failed with exit status {done.returncode}; output in {log} "
                f"(CANN {toolchain.version or 'version unknown'}: give --cann-version if that is wrong)"
            )
    folder = summary_dir(job, device)
    if folder is None:
        raise ToolError(f"msprof export wrote no op_summary / op_statistic CSV under {job}")
    return folder


def copy_summaries(folder: Path, out_dir: Path) -> list[Path]:
    """Copy msprof's op_summary / op_statistic CSVs (names kept) into ``out_dir``."""
    return [Path(shutil.copy2(path, out_dir / path.name)) for path in summary_files(folder)]
