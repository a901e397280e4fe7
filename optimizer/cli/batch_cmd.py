"""``onnx-opt batch``: optimise and verify every model of a folder or a manifest, resumably."""

from __future__ import annotations

import os
from pathlib import Path

import click

from optimizer.cli.console import literal, settings, shown, stdout_console, verbosity_options, write_json
from optimizer.cli.options import set_option
from optimizer.targets import DEFAULT_TARGET


@click.command("batch")
@verbosity_options
@click.argument("source", metavar="MANIFEST|DIR", type=click.Path(path_type=Path))
@click.option("-o", "--output", "outdir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the optimised models, batch-status.json and batch.json.")
@click.option("--target", default=DEFAULT_TARGET, show_default=True, metavar="T",
              help="Target of the models that do not name their own.")
@click.option("--passes", metavar="a,b", help="As optimize --passes, for the models that do not set their own.")
@click.option("--opset", type=int, metavar="N", help="As optimize --opset, for the models that do not set their own.")
@set_option
@click.option("--no-verify", is_flag=True, help="Skip the onnxruntime check of the outputs.")
@click.option("--soc", metavar="SOC", help="Convert each optimised model with ATC for this chip (NAME.om beside it), "
              "for the models that do not set their own.")
@click.option("--workers", type=click.IntRange(1), default=os.cpu_count() or 1, show_default="the CPU count",
              help="Models optimised at once (processes, or Ray CPUs for a local Ray).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="", default=None, metavar="[ADDRESS]",
              help="Run the models as Ray tasks: a local Ray without ADDRESS, else that cluster "
              "(pip install 'onnx-opt[ray]').")
def batch_command(source: Path, outdir: Path, target: str, passes: str | None, opset: int | None,
                  pass_settings: dict[str, dict[str, str]], no_verify: bool, soc: str | None, workers: int,
                  ray_address: str | None) -> int:
    """Optimise and verify every model of DIR (its *.onnx files) or of MANIFEST (YAML or JSON).

    A rerun does only what is not done: batch-status.json in the output folder records each model
    as done, failed (with the reason) or pending. A model that fails never stops the batch.
    """
    from optimizer.errors import UserError
    from optimizer.loop.batch import run_batch, summary_rows
    from optimizer.loop.batch_manifest import read_items
    from optimizer.loop.batch_status import DONE, BatchStatus

    if outdir.exists() and not outdir.is_dir():
        raise UserError(f"-o {outdir} is not a folder")
    defaults = {"target": target, "passes": passes, "opset": opset, "options": pass_settings,
                "verify": not no_verify, "soc": soc}
    items = read_items(source, outdir, defaults)
    outdir.mkdir(parents=True, exist_ok=True)
    status = BatchStatus.load(outdir)
    skipped = sum(status.is_done(item) for item in items)
    if skipped and not settings().quiet:
        rest = "nothing left to run" if skipped == len(items) else "running the rest"
        click.echo(f"onnx-opt batch: {skipped} of {len(items)} models already done (batch-status.json); {rest}",
                   err=True)
    count = [skipped]

    def report(item, outcome) -> None:
        count[0] += 1
        if not settings().quiet:
            detail = outcome.get("reason") or f"{outcome.get('nodes_before')} -> {outcome.get('nodes_after')} nodes"
            click.echo(literal(f"[{count[0]}/{len(items)}] {outcome['status']}: {item.key}: {detail}"), err=True)

    try:
        run_batch(items, status, workers=workers, ray_address=ray_address, on_outcome=report)
    finally:  # also on Ctrl-C: batch.json says what is done so far
        rows = summary_rows(items, status)
        write_json(outdir / "batch.json", {"models": rows})
    if not settings().quiet:
        _print_table(rows)
    return 0 if all(row.get("status") == DONE for row in rows) else 1


def _print_table(rows: list[dict]) -> None:
    """The summary: one row per model."""
    from rich.table import Table

    table = Table(title="onnx-opt batch", title_justify="left")
    for column, justify in [("model", "left"), ("status", "left"), ("nodes", "right"), ("changed by", "left"),
                            ("verified", "left"), ("s", "right"), ("reason", "left")]:
        table.add_column(column, justify=justify, overflow="fold")
    for row in rows:
        nodes = f"{row['nodes_before']}->{row['nodes_after']}" if "nodes_before" in row else ""
        changed = [name for name, outcome in row.get("passes", {}).items() if outcome["changes"] and name != "cleanup"]
        table.add_row(shown(row["model"]), row.get("status", ""), nodes, shown(", ".join(changed)),
                      row.get("verification", ""), f"{row.get('seconds', 0):.1f}", shown(row.get("reason", "")))
    stdout_console().print(table)
