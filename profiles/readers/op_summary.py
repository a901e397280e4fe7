"""Reader for msprof op_summary CSVs of every CANN era and torch_npu kernel_details.csv.

Column names differ by era (ASCEND_FACTS 1.2): `Op Name`/`OP Name`/`Name`, `Task Start Time(us)`/
`Start Time(us)`, `Block Dim`/`Block Num`, torch_npu's renamed columns. The unit-less
`Task Start Time` of CANN 5.x is in nanoseconds: in the msopst golden file each start is the
previous start plus 1000 x (previous duration + this wait in us).
Dtypes lose their `DT_` prefix and formats their `FORMAT_` prefix, so eras compare equal.
"""

from __future__ import annotations

from ..model import OpRecord
from . import values
from .table import Table, find_column

NAME = ("Op Name", "OP Name", "Name")
TYPE = ("OP Type", "Type")
CORE = ("Task Type", "Accelerator Core")
START_US = ("Task Start Time(us)", "Start Time(us)")
START_NS = ("Task Start Time",)
DURATION = ("Task Duration(us)", "Duration(us)")
WAIT = ("Task Wait Time(us)", "Wait Time(us)")
BLOCK = ("Block Dim", "Block Num")
MODEL_ID = ("Model ID",)
SHAPES = {"input_shapes": "Input Shapes", "output_shapes": "Output Shapes"}
LISTS = {
    "input_dtypes": ("Input Data Types", "DT_"),
    "output_dtypes": ("Output Data Types", "DT_"),
    "input_formats": ("Input Formats", "FORMAT_"),
    "output_formats": ("Output Formats", "FORMAT_"),
}


def matches(header: list[str]) -> bool:
    """True when the header has an op-name column and a duration column."""
    return find_column(header, *NAME) is not None and find_column(header, *DURATION) is not None


def read_ops(table: Table) -> list[OpRecord]:
    """Every well-formed row as an OpRecord; rows that do not parse go to `table.skipped`."""
    col = {
        key: table.column(*aliases)
        for key, aliases in {
            "name": NAME, "type": TYPE, "core": CORE, "start_us": START_US, "start_ns": START_NS,
            "duration": DURATION, "wait": WAIT, "block": BLOCK, "model_id": MODEL_ID,
        }.items()
    }
    for key, name in SHAPES.items():
        col[key] = table.column(name)
    for key, (name, _) in LISTS.items():
        col[key] = table.column(name)
    mapped = {c for c in col.values() if c}
    ops = []
    for line, row in table.rows:
        try:
            ops.append(_record(row, col, mapped))
        except ValueError:
            table.skipped.append(f"{table.path.name}:{line}")
    return ops


def _record(row: dict[str, str], col: dict[str, str | None], mapped: set[str]) -> OpRecord:
    def cell(key: str) -> str | None:
        return row[col[key]] if col[key] else None

    duration = values.number(cell("duration"))
    if duration is None:
        raise ValueError("no duration")
    start = values.number(cell("start_us"))
    if start is None and col["start_ns"]:
        ns = values.number(cell("start_ns"))
        start = None if ns is None else ns / 1000.0
    extra = {k: v.strip() for k, v in row.items() if k not in mapped}
    shapes = {}
    for key in SHAPES:
        try:
            shapes[key] = values.shapes(cell(key))
        except ValueError:  # keep an unreadable shape as text rather than lose the row's time
            shapes[key] = None
            extra[col[key]] = cell(key).strip()
    return OpRecord(
        name=(cell("name") or "").strip(),
        op_type=values.clean(cell("type")),
        duration_us=duration,
        core_type=values.core_type(cell("core")),
        start_us=start,
        wait_us=values.number(cell("wait")),
        block_dim=values.integer(cell("block")),
        model_id=values.integer(cell("model_id")),
        **shapes,
        **{key: values.names(cell(key), prefix) for key, (_, prefix) in LISTS.items()},
        extra=extra,
    )

