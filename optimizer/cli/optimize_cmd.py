"""``onnx-opt optimize``: run passes over a model, verify, write the result and a report."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from optimizer.cli.console import (
    check_folders,
    check_outputs,
    literal,
    note,
    progress,
    settings,
    shown,
    stdout_console,
    verbosity_options,
    write_json,
)
from optimizer.cli.options import input_shape_option, pipeline_options, verify_shape_option
from optimizer.cli.passes_cmd import warn_about_plugins
from optimizer.gc_pause import paused_gc


@click.command("optimize")
@verbosity_options
@click.argument("model", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), help="Where to write the optimised model.")
@pipeline_options
@click.option(
    "--plan",
    "plan_path",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="PLAN.json",
    help="Replay a plan written by 'onnx-opt plan': its passes, opset, target, options and pass options.",
)
@input_shape_option(fixes=True)
@verify_shape_option
@click.option("--no-verify", is_flag=True, help="Skip the onnxruntime check of the outputs.")
@click.option(
    "--allow-approximate",
    is_flag=True,
    help="Let opt-in passes named in --passes run (approximate ones, fixes that leave a non-standard "
    "model); verification reports their difference and keeps them.",
)
@click.option(
    "--inputs",
    type=click.Path(path_type=Path),
    metavar="FILE.npz",
    help="Verify on these inputs (arrays by input name).",
)
@click.option(
    "--rtol", type=click.FloatRange(0), help="Relative tolerance for float outputs (default by dtype; fp32 1e-4)."
)
@click.option(
    "--atol", type=click.FloatRange(0), help="Absolute tolerance for float outputs (default by dtype; fp32 1e-5)."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random verification inputs.")
@click.option("--dry-run", is_flag=True, help="Report what each pass would change; write no model.")
@click.option(
    "--explain",
    metavar="PASS",
    help="After the table, say for each candidate node of PASS (in the pipeline) whether it matched, and why not.",
)
@click.option(
    "--report", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE.json", help="Write the JSON report here."
)
@click.option("--in-place", is_flag=True, help="Overwrite the input model (atomically).")
@click.option("--strict", is_flag=True, help="Exit 1 when a pass fails or is dropped for breaking numerics.")
@click.option("--fixed-point", is_flag=True, help="Repeat the pipeline until nothing changes.")
@click.option(
    "--max-rounds", type=click.IntRange(1, 100), default=10, show_default=True, help="Cap on fixed-point rounds."
)
def optimize_command(
    model: Path,
    output: Path | None,
    target: str,
    passes: list[str] | None,
    opset: int | None,
    pass_settings: dict[str, dict[str, str]],
    input_shapes: dict[str, list[int]],
    verify_shapes: dict[str, list[int]],
    no_verify: bool,
    inputs: Path | None,
    rtol: float | None,
    atol: float | None,
    seed: int,
    dry_run: bool,
    explain: str | None,
    report: Path | None,
    in_place: bool,
    strict: bool,
    fixed_point: bool,
    max_rounds: int,
    plan_path: Path | None,
    allow_approximate: bool,
) -> int:
    """Optimise MODEL with the target's pipeline (or --passes), verify it and write it to -o."""
    # The collector is off from the imports (a million objects, collected for nothing) until the
    # summary is out, and after it when the process ends with the command.
    with paused_gc(for_the_command=True):
        from optimizer.optimize import OptimizeOptions, optimize

        check_folders(report)
        models = {"the input model": model, "-o": output}
        check_outputs({"--report": report}, inputs={"--plan": plan_path, "--inputs": inputs}, models=models)
        options = OptimizeOptions(
            input=model,
            output=output,
            passes=passes,
            target=target,
            opset=opset,
            input_shapes=input_shapes,
            verify_shapes=verify_shapes,
            verify=not no_verify,
            allow_approximate=allow_approximate,
            inputs=inputs,
            rtol=rtol,
            atol=atol,
            seed=seed,
            dry_run=dry_run,
            explain=explain,
            in_place=in_place,
            fixed_point=fixed_point,
            max_rounds=max_rounds,
            pass_options=pass_settings,
        )
        if plan_path is not None:
            options = _replay(plan_path, model, options)
        warn_about_plugins()
        with progress() as say:
            result = optimize(options, say)
        if report is not None:
            write_json(report, result.to_dict())
        if not settings().quiet:
            print_summary(result, options.explain)
    failed = result.verification is not None and not result.verification.ok and not result.expected_differences
    if strict and result.problems() and not failed:
        for record in result.problems():
            click.echo(literal(f"onnx-opt: --strict: pass {record.name} {record.status}: {record.reason}"), err=True)
        return 1
    return 1 if failed else 0


def _replay(plan_path: Path, model: Path, options):
    """The options of a plan; giving --passes, --opset, --target or --set with it is a usage error."""
    from click.core import ParameterSource

    from optimizer.loop.plan import options_from_plan

    ctx = click.get_current_context()
    flags = {"passes": "--passes", "opset": "--opset", "target": "--target", "pass_settings": "--set"}
    given = [flag for name, flag in flags.items() if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT]
    if given:
        raise click.UsageError(
            f"--plan sets the passes, the opset, the target and the pass options: drop {', '.join(given)}"
        )
    return options_from_plan(plan_path, model, options)


def print_summary(result, explain: str | None = None) -> None:
    """The per-pass table, ``explain``'s verdicts, the verification verdict, and what was written."""
    from rich.table import Table

    console = stdout_console()
    verbose = settings().verbose
    table = Table(title=shown(f"onnx-opt optimize: {result.input} (target {result.target})"), title_justify="left")
    for column, justify in [
        ("pass", "left"),
        ("status", "left"),
        ("matches", "right"),
        ("changes", "right"),
        ("nodes", "right"),
        ("ms", "right"),
        ("detail", "left"),
    ]:
        table.add_column(column, justify=justify, overflow="fold")
    for record in result.records:
        detail = record.reason or "; ".join(record.notes)
        if record.findings and not detail:
            key, value = next(iter(record.findings.items()))
            detail = f"{key}: {value}"
        if record.skips and not detail:
            detail = f"left {len(record.skips)}: {record.skips[0]['reason']}"
        table.add_row(
            shown(record.name),
            record.status,
            str(record.matches),
            str(record.changes),
            f"{record.nodes_before}->{record.nodes_after}",
            f"{record.seconds * 1000:.1f}",
            shown(detail),
        )
    console.print(table)
    for record in result.records:
        if record.changed_nodes and (verbose or result.dry_run):
            verb = "would change" if result.dry_run else "changed"
            console.print(shown(f"  {record.name} {verb}: {', '.join(record.changed_nodes)}"))
        if verbose:
            for skip in record.skips:
                console.print(shown(f"  {record.name} left {skip['node']}: {skip['reason']}"))
            for key, value in record.findings.items():
                console.print(shown(f"  {record.name} found {key}: {value}"))
    if explain is not None:
        print_explained(console, next(record for record in result.records if record.name == explain))
    if result.verification is not None:
        print_verification(console, result.verification)
        if result.expected_differences:
            console.print(shown(f"the differences are expected: {', '.join(result.expected_differences)} "
                                "kept by --allow-approximate; every other pass was checked against its input"))
    for line in result.notes:
        note(literal(f"note: {line}"))
    if result.written:
        nodes = f"{result.nodes_before} -> {result.nodes_after} nodes"
        console.print(shown(f"wrote {', '.join(result.written)}  (opset {result.opset_after}, {nodes})"))
    elif result.dry_run:
        console.print("dry run: nothing written")


def print_explained(console, record) -> None:
    """``--explain``: the pass's verdict on each candidate node, where it lies, and why."""
    from optimizer.passapi import Verdict

    verdicts = record.explained
    if verdicts is None:
        console.print(shown(f"explain {record.name}: {record.status}, no candidate looked at: {record.reason}"))
        return
    counts = Counter(verdict["outcome"] for verdict in verdicts)
    tally = ", ".join(f"{counts[o]} {o}" for o in (Verdict.MATCHED, Verdict.REFUSED, Verdict.NO_MATCH) if counts[o])
    plural = "" if len(verdicts) == 1 else "s"
    console.print(shown(f"explain {record.name}: {len(verdicts)} candidate{plural}" + (f" ({tally})" if tally else "")))
    for verdict in verdicts:
        node, scope = verdict["node"] and repr(verdict["node"]), verdict["scope"] and f"in {verdict['scope']}"
        what = " ".join(part for part in (verdict["op_type"], node, scope) if part)
        reason = f": {verdict['reason']}" if verdict["reason"] else ""
        console.print(shown(f"  {what or 'the model'}: {verdict['outcome']}{reason}"))


def print_verification(console, checked) -> None:
    """One row per output (per input set when there were several), then the If sides checked."""
    from rich.table import Table

    verdict = "passed" if checked.ok else "FAILED"
    title = f"verification with onnxruntime ({checked.source}; shapes: {checked.shapes}): {verdict}"
    table = Table(title=shown(title), title_justify="left")
    several = len(checked.inputs) > 1
    columns = ["output", *(["inputs"] if several else []), "dtype", "shape", "max abs diff", "max rel diff"]
    for column in (*columns, "cosine", "verdict"):
        table.add_column(column)
    for check in checked.outputs:
        where = [_shapes_text(checked.inputs[check.run])] if several else []
        table.add_row(
            shown(check.name),
            *where,
            check.dtype,
            "x".join(map(str, check.shape)) or "scalar",
            f"{check.max_abs_diff:.3g}",
            f"{check.max_rel_diff:.3g}",
            f"{check.cosine:.6f}",
            "ok" if check.ok else shown(f"FAIL {check.problem or f'(rtol {check.rtol:g}, atol {check.atol:g})'}"),
        )
    console.print(table)
    if checked.branches is not None:
        print_branches(console, checked.branches)


def print_branches(console, branches) -> None:
    """A count of the If sides checked; a line for each If not fully matched (every If with -v)."""

    sides = [side for check in branches.checks for side in check.sides]
    counts = {status: sum(side.status == status for side in sides) for status in ("matched", "differs")}
    skipped = len(sides) - counts["matched"] - counts["differs"]
    console.print(
        f"If branches: {len(branches.checks)} Ifs, {counts['matched']} sides matched, "
        f"{counts['differs']} differ, {skipped} not exercised"
    )
    for check in branches.checks:
        if settings().verbose or any(side.status != "matched" for side in check.sides):
            console.print(f"  {shown(check.summary())}")


def _shapes_text(shapes: dict[str, list[int]]) -> str:
    return "; ".join(f"{name}:{','.join(map(str, dims))}" for name, dims in shapes.items())
