"""``onnx-opt plan``: choose passes from a recorded profile without running anything, and write the plan."""

from __future__ import annotations

from pathlib import Path

import click

from optimizer.cli.console import check_folders, check_outputs, settings, shown, stdout_console, verbosity_options
from optimizer.cli.options import input_shape_option, set_option
from optimizer.cli.passes_cmd import warn_about_plugins


@click.command("plan")
@verbosity_options
@click.argument("profile_path", metavar="PROFILE", type=click.Path(path_type=Path))
@click.option(
    "--model", type=click.Path(path_type=Path), metavar="MODEL.onnx", required=True, help="The profiled model."
)
@click.option(
    "--target",
    metavar="T",
    help="Target of the plan (default: inferred from the profile; onnxruntime for an onnxruntime profile).",
)
@input_shape_option
@set_option
@click.option("--top", type=click.IntRange(1), default=10, show_default=True, help="How many op types count as hot.")
@click.option(
    "-o", "--output", type=click.Path(path_type=Path, dir_okay=False), metavar="PLAN.json", help="Write the plan here."
)
def plan_command(
    profile_path: Path,
    model: Path,
    target: str | None,
    input_shapes: dict[str, list[int]],
    pass_settings: dict[str, dict[str, str]],
    top: int,
    output: Path | None,
) -> int:
    """The passes worth running on MODEL given PROFILE, with the hot time each addresses; -o writes the
    plan that 'onnx-opt optimize MODEL --plan PLAN.json' replays."""
    from optimizer.loop.plan import make_plan, write_plan
    from optimizer.pass_options import check_settings
    from profiles.read import read_profile

    check_folders(output)
    check_outputs({"-o": output}, inputs={"PROFILE": profile_path}, models={"--model": model})
    warn_about_plugins()
    check_settings(pass_settings)
    plan = make_plan(
        read_profile(profile_path), model, target, input_shapes=input_shapes, top=top, pass_options=pass_settings
    )
    if output is not None:
        write_plan(plan, output)
    if settings().quiet:
        return 0
    print_plan(plan, output)
    return 0


def print_plan(plan, output: Path | None) -> None:
    """The candidates as a table, then the target, the rejected passes and what to run next."""
    from rich.table import Table

    console = stdout_console()
    table = Table(title=shown(f"plan for {plan.model_path} from {plan.profile}"), title_justify="left")
    for column in ("pass", "hot op types", "hot share", "nodes", "opset change", "reason"):
        table.add_column(column, justify="right" if column == "hot share" else "left", overflow="fold")
    for c in plan.candidates:
        nodes = ", ".join(c["nodes"][:3]) + (f" (+{len(c['nodes']) - 3})" if len(c["nodes"]) > 3 else "")
        opset = f"--opset {c['opset']}" if c["opset"] is not None else "-"
        table.add_row(
            shown(c["pass_name"]), shown(", ".join(c["op_types"])), f"{c['hot_share']:.1%}", shown(nodes), opset,
            shown(c["reason"]),
        )
    console.print(shown(f"target {plan.target}: {plan.target_chosen}"))
    if plan.candidates:
        console.print(table)
    else:
        console.print("no pass changes a node of a hot op type: the plan runs no pass")
    for shape in plan.whitelist_shapes:
        console.print(f"white-list shape: {shape}")
    given = [f"--set {name}.{key}={value}"
             for name, values in plan.pass_options.items() for key, value in values.items()]
    if given:
        console.print(shown(f"pass options: {' '.join(given)}"))
    if settings().verbose or not plan.candidates:
        for item in plan.rejected:
            console.print(f"  not proposed: {item['pass']}: {shown(item['reason'])}")
    else:
        console.print(f"  not proposed: {', '.join(item['pass'] for item in plan.rejected) or '-'} (-v says why)")
    if output is None:
        console.print("plan not written (give -o PLAN.json)")
    else:
        console.print(f"wrote {output}; replay: onnx-opt optimize {plan.model_path} --plan {output} -o OUT.onnx")
