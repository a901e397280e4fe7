"""``onnx-opt compare``: time per op type (or node) before and after, with the latency change and its
verdict (ratio of medians, bootstrap interval, against a minimum gain)."""

from __future__ import annotations

from pathlib import Path

import click

from optimizer.cli.console import check_folders, note, settings, stdout_console, verbosity_options, write_json


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
def compare_command(
    before: Path, after: Path, by: str, top: int | None, min_gain: float, json_path: Path | None,
    html_path: Path | None,
) -> int:
    """Compare two profiles (msprof folders or CSVs, ais_bench / benchmark results, onnxruntime profiles)."""
    from profiles.compare import compare_profiles
    from profiles.html_report import write_html
    from profiles.read import read_profile

    check_folders(json_path, html_path)
    comparison = compare_profiles(read_profile(before), read_profile(after), by=by, top=top, min_gain=min_gain / 100)
    for warning in comparison.warnings:
        note(f"warning: {warning}")
    if json_path is not None:
        write_json(json_path, comparison.to_dict())
    if html_path is not None:
        write_html(comparison, html_path)
    if not settings().quiet:
        print_comparison(comparison)
    return 0


def print_comparison(comparison) -> None:
    """The table, what appeared or disappeared, totals and latency."""
    from rich.table import Table

    key = "op type" if comparison.by == "op-type" else "node"
    table = Table(title=f"{comparison.before_source} -> {comparison.after_source}", title_justify="left")
    for column in (key, "before us", "after us", "delta us", "ratio", "share before", "share after"):
        table.add_column(column, justify="left" if column == key else "right", overflow="fold")
    for row in comparison.rows:
        ratio = f"{row.ratio:.3f}" if row.ratio is not None else "new"
        table.add_row(
            row.key,
            f"{row.before_us:.1f}",
            f"{row.after_us:.1f}",
            f"{row.delta_us:+.1f}",
            ratio,
            f"{row.share_before:.1%}",
            f"{row.share_after:.1%}",
        )
    console = stdout_console()
    console.print(table)
    total_ratio = comparison.total_after_us / comparison.total_before_us if comparison.total_before_us else None
    console.print(
        f"total: {comparison.total_before_us:.1f} us -> {comparison.total_after_us:.1f} us "
        f"({comparison.total_delta_us:+.1f} us" + (f", x{total_ratio:.3f})" if total_ratio else ")")
    )
    if comparison.disappeared:
        console.print(f"gone after: {', '.join(comparison.disappeared)}")
    if comparison.appeared:
        console.print(f"new after: {', '.join(comparison.appeared)}")
    latency = comparison.latency
    if latency is not None:
        ratio = f", x{latency.ratio:.3f}" if latency.ratio is not None else ""
        console.print(
            f"latency ({latency.statistic}): {latency.before_ms:.3f} ms -> {latency.after_ms:.3f} ms "
            f"({latency.delta_ms:+.3f} ms{ratio}): {latency.verdict or 'no verdict'}"
        )
        console.print(latency.reason)
