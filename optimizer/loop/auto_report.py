"""``auto.html``: the decisions of an ``auto`` run in words, each A/B's two latency distributions,
and the time per op type before and after."""

from __future__ import annotations

from html import escape
from pathlib import Path

from profiles.atomic import write_text_atomic
from profiles.compare import compare_profiles
from profiles.html_report import NO_CHART, STYLE, bar_chart_png, box_plot_png, image_tag, table_html


def write_html(result, path: Path) -> Path:
    """Write the page for an :class:`optimizer.loop.auto.AutoResult`."""
    parts = [
        "<!DOCTYPE html>",
        f"<html><head><meta charset='utf-8'><title>onnx-opt auto</title><style>{STYLE}</style></head><body>",
        "<h1>onnx-opt auto</h1>",
        f"<p>input: {escape(result.input)}<br>output: {escape(result.output)}<br>"
        f"target: {escape(result.target)} ({escape(result.target_chosen)})</p>",
        f"<p><b>kept: {escape(', '.join(result.kept) or 'nothing')}</b></p>",
    ]
    if result.final is not None:
        parts.append(f"<p class='{escape(result.final.verdict)}'>result against the input: "
                     f"{escape(result.final.reason)}</p>")
    parts += [f"<p class='warn'>{escape(line)}</p>" for line in result.notes]
    parts.append(_steps_table(result.steps))
    missing = False
    timed = [(step.pass_name, step.timing) for step in result.steps if step.timing is not None]
    if result.final is not None:
        timed.append(("result against the input", result.final))
    for title, timing in timed:
        png = box_plot_png(timing.a_samples_ms, timing.b_samples_ms, (timing.a, timing.b),
                           f"{title}: {timing.verdict}, ratio {timing.ratio:.3f}")
        missing = missing or png is None
        if png is not None:
            parts.append(image_tag(title, png))
    if result.profile_before is not None and result.profile_after is not None:
        comparison = compare_profiles(result.profile_before, result.profile_after)
        parts.append("<h2>time per op type, input and output</h2>")
        png = bar_chart_png(comparison)
        missing = missing or png is None
        if png is not None:
            parts.append(image_tag("time per op type", png))
        parts.append(table_html(comparison))
    if missing:
        parts.append(f"<p>{escape(NO_CHART)}</p>")
    parts += ["</body></html>", ""]
    return write_text_atomic(path, "\n".join(parts))


def _steps_table(steps) -> str:
    head = "".join(f"<th>{h}</th>" for h in ("pass", "hot share", "opset", "kept", "verdict", "ratio", "95% CI",
                                              "reason"))
    rows = []
    for step in steps:
        ratio = "-" if step.ratio is None else f"{step.ratio:.3f}"
        ci = "-" if step.ci is None else f"{step.ci[0]:.3f}-{step.ci[1]:.3f}"
        rows.append(
            f"<tr><td>{escape(step.pass_name)}</td><td>{step.hot_share:.1%}</td><td>{step.opset or '-'}</td>"
            f"<td>{'yes' if step.kept else 'no'}</td><td>{escape(step.verdict or '-')}</td><td>{ratio}</td>"
            f"<td>{ci}</td><td style='text-align:left'>{escape(step.reason)}</td></tr>"
        )
    return "<table><tr>" + head + "</tr>\n" + "\n".join(rows) + "</table>"
