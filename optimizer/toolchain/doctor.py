"""What of the Ascend toolchain is installed, what is missing and what to do: ``onnx-opt doctor``."""

from __future__ import annotations

import platform
from dataclasses import dataclass, field

from optimizer.toolchain import msprof
from optimizer.toolchain.environment import HINTS, discover
from optimizer.toolchain.inference import MISSING, benchmark_tool, has_ais_bench
from optimizer.toolchain.versions import AUTO_TUNE_REMOVED


@dataclass
class Diagnosis:
    """One (name, finding) row per part of the toolchain, and what to do about the missing ones."""

    rows: list[tuple[str, str]] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)


def diagnose(cann_version: str | None = None) -> Diagnosis:
    """The toolkit, its version, set_env.sh and each tool onnx-opt drives, as :func:`discover` finds them.

    Never raises for something missing or broken (a set_env.sh that fails is a row and a to-do).
    """
    toolchain = discover(cann_version, strict=False)
    found = Diagnosis()
    rows, todo = found.rows, found.todo
    if toolchain.home is not None:
        rows.append(("toolkit", f"{toolchain.home} (from {toolchain.home_source})"))
    else:
        rows.append(("toolkit", f"not found ({toolchain.describe_tried()})"))
        todo.append("install the CANN toolkit and set ASCEND_TOOLKIT_HOME to it (or put its tools on PATH)")
    if toolchain.version is not None:
        rows.append(("CANN version", f"{toolchain.version} (from {toolchain.version_source})"))
    else:
        rows.append(("CANN version", "unknown"))
        todo.append("give --cann-version V: it decides how msprof exports and whether auto_tune exists")
    if toolchain.set_env is None:
        rows.append(("set_env.sh", "not found"))
    elif toolchain.set_env_error is not None:
        rows.append(("set_env.sh", f"{toolchain.set_env} (cannot be sourced: the tools would not run)"))
        todo.append(toolchain.set_env_error)
    else:
        rows.append(("set_env.sh", f"{toolchain.set_env} (its variables are given to the tools)"))
    legacy = msprof.is_legacy(toolchain)
    for name in ("atc", "aoe", "msprof", *(("msprof.py",) if legacy else ())):
        path = toolchain.find(name)
        rows.append((name, str(path) if path else "missing"))
        if path is None:
            todo.append(f"{name}: {HINTS[name]}")
    ais_bench = has_ais_bench(toolchain)
    benchmark = benchmark_tool(toolchain)
    rows.append(("ais_bench", f"{toolchain.python()} -m ais_bench" if ais_bench else "missing"))
    rows.append(("benchmark", str(benchmark) if benchmark else "missing (only used without ais_bench)"))
    if not ais_bench and benchmark is None:
        todo.append(MISSING.format(arch=platform.machine()))
    export = "msprof.py import / export summary" if legacy else "msprof --export=on"
    rows.append(("msprof export", export if toolchain.version else f"{export} (the CANN version is unknown)"))
    removed = toolchain.version_at_least(AUTO_TUNE_REMOVED)
    if removed is None:
        auto_tune = "depends on the CANN version (removed in 6.0.1)"
    else:
        auto_tune = "removed in CANN 6.0.1: use 'onnx-opt tune --tool aoe'" if removed else "ATC --auto_tune_mode"
    rows.append(("auto_tune", auto_tune))
    return found
