"""``onnx-opt passes``: every registered pass, built-in or plugin, and the shipped targets."""

from __future__ import annotations

import json

import click

from optimizer.cli.console import note, shown, stdout_console, verbosity_options


def warn_about_plugins() -> None:
    """One warning line per plugin that failed to load; every verb that runs passes calls it."""
    from optimizer.registry import load_warnings

    for warning in load_warnings():
        note(f"onnx-opt: warning: {warning}")


@click.command("passes")
@verbosity_options
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def passes_command(as_json: bool) -> int:
    """List the registered passes (built-ins and plugins) and the targets' pipelines."""
    from optimizer.registry import all_passes
    from optimizer.targets import load_target, target_names

    rows = [describe(cls) for cls in all_passes().values()]
    targets = [load_target(name) for name in target_names()]
    warn_about_plugins()
    if as_json:
        data = {
            "passes": rows,
            "targets": {t.name: {"description": t.description, "pipeline": list(t.pipeline)} for t in targets},
        }
        click.echo(json.dumps(data, indent=2))
        return 0
    from rich.table import Table

    table = Table(title="passes", title_justify="left")
    for column in ("name", "summary", "addresses", "requires", "from"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(shown(text) for text in (row["name"], row["summary"], ", ".join(row["addresses"]),
                                                 row["requires"], row["module"])))
    console = stdout_console()
    console.print(table)
    for target in targets:
        console.print(shown(f"target {target.name}: {' -> '.join(target.pipeline)}"))
    return 0


def describe(cls: type) -> dict:
    """A pass's declaration as plain data."""
    req = cls.requires
    parts = []
    low, high = req.opsets
    if low is not None or high is not None:
        parts.append(f"opset {low or ''}..{high or ''}")
    parts += [f"target op {op}" for op in req.target_ops] + [f"capability {c}" for c in req.capabilities]
    if req.static_shapes:
        parts.append("static shapes")
    return {
        "name": cls.name,
        "summary": cls.summary,
        "addresses": list(cls.addresses),
        "requires": ", ".join(parts) or "-",
        "after": list(cls.after),
        "module": cls.__module__,
    }
