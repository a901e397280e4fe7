"""``onnx-opt new-pass``: write a working pass with its test and docs, as a plugin or in a checkout."""

from __future__ import annotations

from pathlib import Path

import click

from optimizer.cli.console import settings, shown, stdout_console, verbosity_options


@click.command("new-pass")
@verbosity_options
@click.argument("name")
@click.option(
    "--plugin",
    type=click.Path(path_type=Path, file_okay=False),
    metavar="DIR",
    help="Write an installable plugin package into DIR (new or empty); default: into this onnx-opt checkout.",
)
@click.option(
    "--style",
    type=click.Choice(["node", "rule"]),
    default="node",
    show_default=True,
    help="node: a NodePass (rewrite one node at a time); rule: an onnxscript pattern / check / rewrite rule.",
)
def new_pass_command(name: str, plugin: Path | None, style: str) -> int:
    """Write pass NAME (a working Transpose -> Transpose fold to make your own), its test and docs."""
    from optimizer.scaffold import plan_scaffold, write_scaffold

    scaffold = plan_scaffold(name, style, plugin, Path.cwd())
    write_scaffold(scaffold)
    if settings().quiet:
        return 0
    console = stdout_console()
    for path in scaffold.files:
        console.print(shown(f"wrote {path}"))
    console.print("next:")
    for step in scaffold.next_steps:
        console.print(shown(f"  {step}"))
    return 0
