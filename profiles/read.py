"""`read_profile`: one entry point that recognises a profile by its layout and content."""

from __future__ import annotations

import json
from pathlib import Path

from . import latency_json
from .errors import ProfileError
from .model import Profile
from .readers import ais_bench, benchmark, msprof_dir, op_statistic, op_summary, ort_trace
from .readers.table import first_row, model_name, open_table, require_rows
from .readers.text import load_text, read_head

EXPECTED = (
    "expected an msprof directory, an op_summary / op_statistic / kernel_details CSV, an "
    "onnxruntime profile JSON, an ais_bench summary (JSON or log) or a benchmark perf txt"
)


def read_profile(path: str | Path) -> Profile:
    """Read any supported profile file or msprof output directory; ProfileError otherwise.

    CSV files are streamed (never held whole in memory); JSON and text logs are read whole.
    """
    path = Path(path)
    if path.is_dir():
        return msprof_dir.read_dir(path)
    if not path.exists():
        raise ProfileError(f"{path}: no such file or directory; {EXPECTED}")
    head = read_head(path)
    text = None
    if head.lstrip()[:1] in ("{", "["):
        text = load_text(path)
        try:
            return _read_json(path, json.loads(text))
        except json.JSONDecodeError:
            pass  # benchmark and ais logs start with "[INFO]" / "[e2e]"
    header = first_row(head)
    if op_summary.matches(header) or op_statistic.matches(header):
        return _read_csv(path)
    text = text if text is not None else load_text(path)
    if ais_bench.matches_log(text):
        return ais_bench.read_log(path, text)
    if benchmark.matches(text):
        return benchmark.read(path, text)
    raise ProfileError(f"{path}: not a profile; {EXPECTED}")


def _read_json(path: Path, data: object) -> Profile:
    if ort_trace.matches(data):
        return ort_trace.read(path, data)
    if ais_bench.matches_json(data):
        return ais_bench.read_json(path, data)
    if latency_json.matches(data):
        latency = latency_json.latency_from_json(path, data)
        return Profile(source=str(path), kind="latency", latency=latency, model_name=data.get("model_name"))
    raise ProfileError(
        f"{path}: JSON is not a profile; expected an onnxruntime profile (trace events), an ais_bench "
        "summary (NPU_compute_time) or an onnx-opt latency file"
    )


def _read_csv(path: Path) -> Profile:
    table = open_table(path)
    if op_summary.matches(table.header):
        kind, ops, stats = "op_summary", op_summary.read_ops(table), []
    else:
        kind, ops, stats = "op_statistic", [], op_statistic.read_stats(table)
    require_rows(table, ops or stats)
    return Profile(source=str(path), kind=kind, ops=ops, stats=stats, model_name=model_name(table),
                   meta={"skipped_rows": table.skipped, "columns": table.header})
