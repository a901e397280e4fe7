"""``onnx-opt doctor``: what of the Ascend toolchain is installed, what is missing, what to do."""

from __future__ import annotations

import click

from optimizer.cli.console import literal, verbosity_options
from optimizer.cli.toolchain_options import cann_version_option


@click.command("doctor")
@verbosity_options
@cann_version_option
def doctor_command(cann_version: str | None) -> int:
    """Show the CANN toolkit, its version and tools as onnx-opt finds them; always exits 0."""
    from optimizer.toolchain.doctor import diagnose

    found = diagnose(cann_version)
    width = max(len(name) for name, _ in found.rows)
    for name, value in found.rows:
        click.echo(f"{name:<{width}}  {literal(value)}")
    click.echo()
    if found.todo:
        click.echo("to do:")
        for line in found.todo:
            click.echo(f"  - {literal(line)}")
    else:
        click.echo("everything onnx-opt drives is here")
    return 0
