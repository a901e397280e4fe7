"""Writing a Profile as msprof `mindstudio_profiler_output` CSVs (op_summary and op_statistic).

Layout of msprof's C++ assembler (ASCEND_FACTS 1.2/1.3): shapes quoted the way msprof quotes them
(the cell text is "2,5" with its quotes, so the file shows three quotes on each side), `N/A` where
a value is unknown, the start time followed by a TAB as msprof writes
high-precision times. Numbers use the shortest text that reads back to the same float, so the
output is deterministic and a write-then-read round trip keeps every number.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from .atomic import write_text_atomic
from .errors import ProfileError
from .model import OpRecord, Profile

NA = "N/A"
OP_SUMMARY_HEADER = [
    "Device_id", "Model ID", "Task ID", "Stream ID", "Op Name", "OP Type", "OP State", "Task Type",
    "Task Start Time(us)", "Task Duration(us)", "Task Wait Time(us)", "Block Dim", "Mix Block Dim",
    "HF32 Eligible", "Input Shapes", "Input Data Types", "Input Formats", "Output Shapes",
    "Output Data Types", "Output Formats", "Context ID",
]
OP_STATISTIC_HEADER = [
    "Device_id", "OP Type", "Core Type", "Count", "Total Time(us)", "Min Time(us)", "Avg Time(us)",
    "Max Time(us)", "Ratio(%)",
]
FROM_EXTRA = {  # columns copied from OpRecord.extra, with the names other eras gave them
    "Device_id": ("Device_id",),
    "Task ID": ("Task ID",),
    "Stream ID": ("Stream ID",),
    "OP State": ("OP State",),
    "Mix Block Dim": ("Mix Block Dim", "Mix Block Num"),
    "HF32 Eligible": ("HF32 Eligible",),
    "Context ID": ("Context ID",),
}


def write_msprof_csvs(profile: Profile, out_dir: str | Path, timestamp: str) -> list[Path]:
    """Write `op_summary_<timestamp>.csv` (when there are ops) and `op_statistic_<timestamp>.csv`."""
    out = Path(out_dir)
    if not profile.ops and not profile.stats:
        raise ProfileError(f"{profile.source}: nothing to write, the profile has no ops and no statistics")
    written = []
    if profile.ops:
        rows = [_op_row(op) for op in profile.ops]
        written.append(write_text_atomic(out / f"op_summary_{timestamp}.csv", _csv(OP_SUMMARY_HEADER, rows)))
    device = profile.ops[0].extra.get("Device_id", NA) if profile.ops else NA
    stats = sorted(profile.stats, key=lambda s: (-s.total_us, s.op_type or "", s.core_type or ""))
    rows = [
        [device, s.op_type or NA, s.core_type or NA, str(s.count), _num(s.total_us), _num(s.min_us),
         _num(s.avg_us), _num(s.max_us), _num(s.share * 100.0)]
        for s in stats
    ]
    written.append(write_text_atomic(out / f"op_statistic_{timestamp}.csv", _csv(OP_STATISTIC_HEADER, rows)))
    return written


def format_shapes(shapes: list[list[int]] | None) -> str:
    """[[2, 5], []] -> the text "2,5;" including its quotes, which csv doubles as msprof's files show.

    N/A when unknown or when there is no tensor (msprof cannot tell none from one scalar).
    """
    if not shapes:
        return NA
    return '"' + ";".join(",".join(str(d) for d in s) for s in shapes) + '"'


def _op_row(op: OpRecord) -> list[str]:
    def extra(column: str) -> str:
        return next((op.extra[a] for a in FROM_EXTRA[column] if op.extra.get(a)), NA)

    return [
        extra("Device_id"), _opt(op.model_id), extra("Task ID"), extra("Stream ID"), op.name,
        op.op_type or NA, extra("OP State"), op.core_type or NA,
        NA if op.start_us is None else _num(op.start_us) + "\t",
        _num(op.duration_us), NA if op.wait_us is None else _num(op.wait_us), _opt(op.block_dim),
        extra("Mix Block Dim"), extra("HF32 Eligible"),
        format_shapes(op.input_shapes), _names(op.input_dtypes), _names(op.input_formats),
        format_shapes(op.output_shapes), _names(op.output_dtypes), _names(op.output_formats),
        extra("Context ID"),
    ]


def _num(x: float) -> str:
    return np.format_float_positional(float(x), trim="-")


def _opt(x: int | None) -> str:
    return NA if x is None else str(x)


def _names(items: list[str]) -> str:
    return ";".join(items) if items else NA


def _csv(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()
