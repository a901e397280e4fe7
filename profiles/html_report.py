"""A self-contained HTML page for a Comparison: the verdict and the ratio in words, how times
were normalised, what is new or gone, both latency distributions (box plot), the before/after
time bars and the table (each row marked new, gone or matched)."""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

from .atomic import write_text_atomic
from .compare import Comparison

NO_CHART = "the charts need the `reports` extra: pip install 'onnx-opt[reports]'"
CHART_ROWS = 30
STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}td:first-child{text-align:left}"
    ".warn{color:#a40}.faster{color:#070}.slower{color:#a00}"
)


def write_html(comparison: Comparison, path: str | Path) -> Path:
    """Write the comparison as one HTML file (charts embedded as base64 PNGs); returns the path."""
    c = comparison
    parts = [
        "<!DOCTYPE html>",
        f"<html><head><meta charset='utf-8'><title>Profile comparison</title><style>{STYLE}</style></head><body>",
        "<h1>Profile comparison</h1>",
        f"<p>before: {escape(c.before_source)}<br>after: {escape(c.after_source)}<br>by: {escape(c.by)}</p>",
        *(f"<p class='warn'>warning: {escape(w)}</p>" for w in c.warnings),
        verdict_html(c),
        f"<p>{escape(c.normalisation)}</p>" if c.normalisation else "",
        (
            f"<p>total: {c.total_before_us:.3f} us &rarr; {c.total_after_us:.3f} us "
            f"({c.total_delta_us:+.3f} us{_ratio_text(c.total_ratio)})</p>"
        ),
    ]
    if c.latency:
        lat = c.latency
        ci = "" if lat.ci is None else f", 95% CI {lat.ci[0]:.3f}-{lat.ci[1]:.3f}"
        parts.append(
            f"<p>latency ({escape(lat.statistic)}): {lat.before_ms:.3f} ms &rarr; {lat.after_ms:.3f} ms "
            f"({lat.delta_ms:+.3f} ms{_ratio_text(lat.ratio)}{ci})</p>"
        )
        parts.append(f"<p class='{escape(lat.verdict or 'none')}'><b>{escape(lat.reason)}</b></p>")
    parts += changes_html(c)
    samples = c.latency is not None and c.latency.before_samples_ms and c.latency.after_samples_ms
    charts = [("latency distributions", _box_plot_png(c))] if samples else []
    charts.append(("before vs after", bar_chart_png(c)))
    if any(png is None for _, png in charts):
        parts.append(f"<p>{escape(NO_CHART)}</p>")
    else:
        parts += [image_tag(alt, png) for alt, png in charts]
    parts += [table_html(c), "</body></html>", ""]
    return write_text_atomic(Path(path), "\n".join(p for p in parts if p))


def verdict_html(c: Comparison) -> str:
    """The verdict in one line: the latency verdict when there is one, else why there is none."""
    lat = c.latency
    if lat is not None and lat.verdict is not None:
        decided = "" if lat.decided else " (undecided: more runs would tell)"
        return (f"<p class='{escape(lat.verdict)}'><b>verdict: after is {escape(lat.verdict)}{decided}, "
                f"latency ratio {lat.ratio:.3f}</b></p>")
    why = lat.reason if lat is not None else "no latency in the profiles"
    return f"<p class='none'><b>verdict: none ({escape(why)}); kernel time ratio{_ratio_text(c.total_ratio)}</b></p>"


def changes_html(c: Comparison) -> list[str]:
    """Paragraphs naming the keys that are new after, gone after, and matched through a pass report."""
    parts = []
    for label, keys in (("new after", c.appeared), ("gone after", c.disappeared)):
        if keys:
            parts.append(f"<p>{label} ({len(keys)}): {escape(', '.join(keys))}</p>")
    for r in c.rows:
        if r.status == "matched":
            parts.append(f"<p>matched by {escape(r.matched_by or '')}: {escape(' + '.join(r.before_keys))} "
                         f"&rarr; {escape(' + '.join(r.after_keys))}</p>")
    return parts


def _ratio_text(ratio: float | None) -> str:
    return "" if ratio is None else f", ratio after/before {ratio:.3f}"


def image_tag(alt: str, png: bytes) -> str:
    """An ``<img>`` holding ``png`` inline."""
    return f"<img alt='{escape(alt)}' src='data:image/png;base64,{base64.b64encode(png).decode()}'><br>"


def table_html(c: Comparison) -> str:
    """The comparison's rows as an HTML table."""
    head = "".join(f"<th>{escape(h)}</th>" for h in (
        c.by, "before (us)", "after (us)", "delta (us)", "after/before", "share before", "share after", "status"))
    body = [
        f"<tr><td>{escape(r.key)}</td><td>{r.before_us:.3f}</td><td>{r.after_us:.3f}</td>"
        f"<td>{r.delta_us:+.3f}</td><td>{'-' if r.ratio is None else f'{r.ratio:.3f}'}</td>"
        f"<td>{r.share_before:.2%}</td><td>{r.share_after:.2%}</td><td>{escape(_status(r))}</td></tr>"
        for r in c.rows
    ]
    return "<table><tr>" + head + "</tr>\n" + "\n".join(body) + "</table>"


def _status(r) -> str:
    if r.status == "matched":
        return f"matched ({r.matched_by}: {len(r.before_keys)} -> {len(r.after_keys)})"
    return r.status


def _figure(width: float, height: float):
    """A Figure on the Agg backend (this figure only, no global switch); None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _box_plot_png(c: Comparison) -> bytes | None:
    """Box plots of the before and after latency samples of a comparison."""
    if c.latency is None:
        return None
    lat = c.latency
    title = f"latency, {lat.verdict}: ratio {lat.ratio:.3f}"
    return box_plot_png(lat.before_samples_ms, lat.after_samples_ms, ("before", "after"), title)


def box_plot_png(a_ms: list[float], b_ms: list[float], labels: tuple[str, str], title: str) -> bytes | None:
    """Box plots of two latency distributions (every sample drawn over its box); None without matplotlib."""
    fig = _figure(5, 4)
    if fig is None:
        return None
    ax = fig.add_subplot()
    data = [a_ms, b_ms]
    ax.boxplot(data, widths=0.5)
    for i, samples in enumerate(data, 1):
        ax.plot([i] * len(samples), samples, "_", alpha=0.5)
    ax.set_xticks([1, 2], [f"{label} ({len(samples)} runs)" for label, samples in zip(labels, data, strict=True)])
    ax.set_ylabel("latency (ms)")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def bar_chart_png(c: Comparison) -> bytes | None:
    """Horizontal bars, before vs after, for the largest rows; None without matplotlib."""
    rows = c.rows[:CHART_ROWS][::-1]
    fig = _figure(9, 1 + 0.35 * max(len(rows), 1))
    if fig is None:
        return None
    ax = fig.add_subplot()
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [r.before_us for r in rows], height=0.4, label="before")
    ax.barh([i - 0.2 for i in y], [r.after_us for r in rows], height=0.4, label="after")
    ax.set_yticks(list(y), [r.key for r in rows])
    ax.set_xlabel("time (us)")
    ax.set_title(f"time per {'op type' if c.by == 'op-type' else 'node'}", fontsize=9)
    ax.legend()
    return _png(fig)
