"""``onnx-opt doctor``: what of the Ascend toolchain is installed, what is missing, what to do."""

from __future__ import annotations

import platform

import click

from optimizer.cli.console import verbosity_options
from optimizer.cli.toolchain_options import cann_version_option


@click.command("doctor")
@verbosity_options
@cann_version_option
def doctor_command(cann_version: str | None) -> int:
    """Show the CANN toolkit, its version and tools as onnx-opt finds them; always exits 0."""
    from optimizer.toolchain import msprof
    from optimizer.toolchain.environment import HINTS, discover
    from optimizer.toolchain.inference import MISSING, benchmark_tool, has_ais_bench
    from optimizer.toolchain.versions import AUTO_TUNE_REMOVED

    toolchain = discover(cann_version)
    rows: list[tuple[str, str]] = []
    todo: list[str] = []
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
    set_env = f"{toolchain.set_env} (its variables are given to the tools)" if toolchain.set_env else "not found"
    rows.append(("set_env.sh", set_env))
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
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name:<{width}}  {value}")
    click.echo()
    if todo:
        click.echo("to do:")
        for line in todo:
            click.echo(f"  - {line}")
    else:
        click.echo("everything onnx-opt drives is here")
    return 0
