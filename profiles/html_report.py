"""A self-contained HTML page for a Comparison: the table and a before/after bar chart."""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

from .atomic import write_text_atomic
from .compare import Comparison

NO_CHART = "the bar chart needs the `reports` extra: pip install 'onnx-opt[reports]'"
CHART_ROWS = 30
STYLE = (
    "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}td:first-child{text-align:left}"
    ".warn{color:#a40}"
)


def write_html(comparison: Comparison, path: str | Path) -> Path:
    """Write the comparison as one HTML file (chart embedded as a base64 PNG); returns the path."""
    c = comparison
    parts = [
        "<!DOCTYPE html>",
        f"<html><head><meta charset='utf-8'><title>Profile comparison</title><style>{STYLE}</style></head><body>",
        "<h1>Profile comparison</h1>",
        f"<p>before: {escape(c.before_source)}<br>after: {escape(c.after_source)}<br>by: {escape(c.by)}</p>",
        *(f"<p class='warn'>warning: {escape(w)}</p>" for w in c.warnings),
        (
            f"<p>total: {c.total_before_us:.3f} us &rarr; {c.total_after_us:.3f} us "
            f"({c.total_delta_us:+.3f} us)</p>"
        ),
    ]
    if c.latency:
        lat = c.latency
        noise = "unknown" if lat.noise_ms is None else f"{lat.noise_ms:.3f} ms"
        parts.append(
            f"<p>latency ({escape(lat.statistic)}): {lat.before_ms:.3f} ms &rarr; {lat.after_ms:.3f} ms "
            f"({lat.delta_ms:+.3f} ms, noise {noise})</p>"
        )
    png = _bar_chart_png(c)
    if png is None:
        parts.append(f"<p>{escape(NO_CHART)}</p>")
    else:
        parts.append(f"<img alt='before vs after' src='data:image/png;base64,{base64.b64encode(png).decode()}'>")
    parts += [_table(c), "</body></html>", ""]
    return write_text_atomic(Path(path), "\n".join(parts))


def _table(c: Comparison) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in (
        c.by, "before (us)", "after (us)", "delta (us)", "after/before", "share before", "share after"))
    body = [
        f"<tr><td>{escape(r.key)}</td><td>{r.before_us:.3f}</td><td>{r.after_us:.3f}</td>"
        f"<td>{r.delta_us:+.3f}</td><td>{'-' if r.ratio is None else f'{r.ratio:.3f}'}</td>"
        f"<td>{r.share_before:.2%}</td><td>{r.share_after:.2%}</td></tr>"
        for r in c.rows
    ]
    return "<table><tr>" + head + "</tr>\n" + "\n".join(body) + "</table>"


def _bar_chart_png(c: Comparison) -> bytes | None:
    """Horizontal bars, before vs after, for the largest rows; None without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    rows = c.rows[:CHART_ROWS][::-1]
    fig = Figure(figsize=(9, 1 + 0.35 * max(len(rows), 1)))
    FigureCanvasAgg(fig)  # the Agg backend for this figure only, no global backend switch
    ax = fig.add_subplot()
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [r.before_us for r in rows], height=0.4, label="before")
    ax.barh([i - 0.2 for i in y], [r.after_us for r in rows], height=0.4, label="after")
    ax.set_yticks(list(y), [r.key for r in rows])
    ax.set_xlabel("time (us)")
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
