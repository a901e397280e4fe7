"""``onnx-opt passes``: every registered pass, built-in or plugin, its options, and every target."""

from __future__ import annotations

import json

import click

from optimizer.cli.console import note, settings, shown, stdout_console, verbosity_options


def warn_about_plugins() -> None:
    """One warning line per plugin that failed to load and per target ignored; every verb that runs
    passes calls it."""
    from optimizer.registry import load_warnings
    from optimizer.targets import target_warnings

    for warning in load_warnings() + target_warnings():
        note(f"onnx-opt: warning: {warning}")


@click.command("passes")
@verbosity_options
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def passes_command(as_json: bool) -> int:
    """List the registered passes (built-ins and plugins), their options (-v), and every target's
    pipeline and where it comes from."""
    from optimizer.registry import all_passes

    groups = ("rewrite", "analysis", "fix", "approximate")
    rows = sorted((describe(cls) for cls in all_passes().values()), key=lambda r: (groups.index(r["group"]), r["name"]))
    warn_about_plugins()
    targets = _targets()
    if as_json:
        data = {
            "passes": rows,
            "targets": {
                t.name: {"description": t.description, "pipeline": list(t.pipeline), "why": t.why, "source": t.source}
                for t in targets
            },
        }
        click.echo(json.dumps(data, indent=2))
        return 0
    from rich.table import Table

    table = Table(title="passes", title_justify="left")
    for column in ("group", "name", "summary", "addresses", "requires", "from"):
        table.add_column(column, overflow="fold")
    for row in rows:
        cells = (row["group"], row["name"], row["summary"], ", ".join(row["addresses"]), row["requires"], row["module"])
        table.add_row(*(shown(text) for text in cells))
    console = stdout_console()
    console.print(table)
    options = [(row["name"], option) for row in rows for option in row["options"]]
    if settings().verbose and options:
        console.print("options (--set PASS.OPTION=VALUE):")
        for name, option in options:
            default = json.dumps(option["default"])
            console.print(shown(f"  {name}.{option['name']} ({option['type']}, default {default}): {option['help']}"))
    for target in targets:
        console.print(shown(f"target {target.name}: {' -> '.join(target.pipeline)}  ({target.source})"))
        if settings().verbose:
            for name, why in target.why.items():
                console.print(shown(f"  {name}: {why}"))
    return 0


def _targets() -> list:
    """Every target that loads; a warning line for each that does not."""
    from optimizer.errors import UserError
    from optimizer.targets import load_target, target_names

    targets = []
    for name in target_names():
        try:
            targets.append(load_target(name))
        except UserError as exc:
            note(f"onnx-opt: warning: target {name} is not usable: {exc}")
    return targets


def describe(cls: type) -> dict:
    """A pass's declaration as plain data."""
    from optimizer.pass_options import describe_options
    from optimizer.registry import opt_in_reason, pass_group

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
        "options": describe_options(cls),
        "group": pass_group(cls),
        "exact": not cls.approximate,
        "opt_in": opt_in_reason(cls),
    }
