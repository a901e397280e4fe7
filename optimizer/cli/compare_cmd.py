"""``onnx-opt compare``: time per inference per op type (or node) before and after, with the latency
change and its verdict (ratio of medians, bootstrap interval, against a minimum gain).

Names from the profiles (op types, node names, model names, paths) are printed literally: rich
markup is escaped and control characters are shown as escapes (console.literal).
"""

from __future__ import annotations

from pathlib import Path

import click

from optimizer.cli.console import (
    check_folders,
    check_outputs,
    literal,
    note,
    settings,
    stdout_console,
    verbosity_options,
    write_json,
)
from optimizer.errors import UserError


@click.command("compare")
@verbosity_options
@click.argument("before", type=click.Path(path_type=Path))
@click.argument("after", type=click.Path(path_type=Path))
@click.option(
    "--by",
    type=click.Choice(["op-type", "node"]),
    default="op-type",
    show_default=True,
    help="Group time by op type or by node name.",
)
@click.option("--top", type=click.IntRange(1), help="Show only the N largest rows.")
@click.option("--min-gain", type=click.FloatRange(0, 100, max_open=True), default=2.0, show_default=True,
              metavar="PCT", help="Percent a latency change must exceed, with 95% confidence, to count.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Write the comparison as JSON.",
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="FILE",
    help="Write an HTML report: latency distributions, time bars, verdict (charts need the 'reports' extra).",
)
@click.option(
    "--report",
    "report_path",
    type=click.Path(path_type=Path, dir_okay=False),
    metavar="REPORT.json",
    help="The `optimize --report` JSON of the run between BEFORE and AFTER: with --by node, nodes a pass "
    "replaced or renamed are matched to their originals.",
)
@click.option("--force", is_flag=True, help="Compare even profiles that look like different models (warn instead).")
def compare_command(
    before: Path, after: Path, by: str, top: int | None, min_gain: float, json_path: Path | None,
    html_path: Path | None, report_path: Path | None, force: bool,
) -> int:
    """Compare two profiles (msprof folders or CSVs, ais_bench / benchmark results, onnxruntime profiles).

    Times are per inference: each side is divided by its number of runs (recorded, counted from
    an iteration column or the latency samples, or inferred from repeated rows); the output says
    which. Profiles that look like different models are refused unless --force.
    """
    from profiles.compare import DifferentModelsError, compare_profiles
    from profiles.html_report import write_html
    from profiles.read import read_profile
    from profiles.renames import read_pass_report

    if report_path is not None and by != "node":
        raise UserError("--report matches renamed nodes: use it with --by node")
    check_folders(json_path, html_path)
    check_outputs({"--json": json_path, "--html": html_path},
                  inputs={"BEFORE": before, "AFTER": after, "--report": report_path})
    renames = read_pass_report(report_path) if report_path is not None else None
    try:
        comparison = compare_profiles(read_profile(before), read_profile(after), by=by, top=top,
                                      min_gain=min_gain / 100, renames=renames, force=force)
    except DifferentModelsError as exc:
        raise UserError(f"{exc}; give --force to compare them anyway") from None
    for warning in comparison.warnings:
        note(f"warning: {literal(warning)}")
    if json_path is not None:
        write_json(json_path, comparison.to_dict())
    if html_path is not None:
        write_html(comparison, html_path)
    if not settings().quiet:
        print_comparison(comparison)
    return 0


def print_comparison(comparison) -> None:
    """The table, what appeared, disappeared or was matched, totals with their normalisation, and latency."""
    from rich.table import Table

    key = "op type" if comparison.by == "op-type" else "node"
    table = Table(title=f"{_shown(comparison.before_source)} -> {_shown(comparison.after_source)}",
                  title_justify="left")
    for column in (key, "before us", "after us", "delta us", "ratio", "share before", "share after"):
        table.add_column(column, justify="left" if column == key else "right", overflow="fold")
    for row in comparison.rows:
        ratio = f"{row.ratio:.3f}" if row.ratio is not None else "new"
        name = _shown(row.key) + (f" (matched: {len(row.before_keys)} -> {len(row.after_keys)})"
                                  if row.status == "matched" else "")
        table.add_row(
            name,
            f"{row.before_us:.1f}",
            f"{row.after_us:.1f}",
            f"{row.delta_us:+.1f}",
            ratio,
            f"{row.share_before:.1%}",
            f"{row.share_after:.1%}",
        )
    console = stdout_console()
    console.print(table)
    if comparison.normalisation:
        console.print(_shown(comparison.normalisation))
    total_ratio = comparison.total_ratio
    console.print(
        f"total: {comparison.total_before_us:.1f} us -> {comparison.total_after_us:.1f} us "
        f"({comparison.total_delta_us:+.1f} us" + (f", x{total_ratio:.3f})" if total_ratio else ")")
    )
    if comparison.disappeared:
        console.print(f"gone after: {', '.join(map(_shown, comparison.disappeared))}")
    if comparison.appeared:
        console.print(f"new after: {', '.join(map(_shown, comparison.appeared))}")
    for row in comparison.rows:
        if row.status == "matched":
            console.print(f"matched by {_shown(row.matched_by or '')}: {' + '.join(map(_shown, row.before_keys))} "
                          f"-> {' + '.join(map(_shown, row.after_keys))}")
    latency = comparison.latency
    if latency is not None:
        ratio = f", x{latency.ratio:.3f}" if latency.ratio is not None else ""
        console.print(
            f"latency ({latency.statistic}): {latency.before_ms:.3f} ms -> {latency.after_ms:.3f} ms "
            f"({latency.delta_ms:+.3f} ms{ratio}): {latency.verdict or 'no verdict'}"
        )
        console.print(_shown(latency.reason))


def _shown(text: str) -> str:
    """A name from a profile as rich prints it literally: controls made visible, markup escaped."""
    from rich.markup import escape

    return escape(literal(text))
