"""Reader for msprof op_summary CSVs of every CANN era and torch_npu kernel_details.csv.

Column names differ by era (ASCEND_FACTS 1.2): `Op Name`/`OP Name`/`Name`, `Task Start Time(us)`/
`Start Time(us)`, `Block Dim`/`Block Num`, torch_npu's renamed columns. The unit-less
`Task Start Time` of CANN 5.x is in nanoseconds: in the msopst golden file each start is the
previous start plus 1000 x (previous duration + this wait in us).
Dtypes lose their `DT_` prefix and formats their `FORMAT_` prefix, so eras compare equal.
"""

from __future__ import annotations

from ..errors import ProfileError
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
ITERATION = ("Infer ID", "Iteration ID", "Step Id")
SHAPES = {"input_shapes": "Input Shapes", "output_shapes": "Output Shapes"}
# Unmapped columns kept in OpRecord.extra (lower-case): the task's identity, which msprof_writer writes back.
KEPT_COLUMNS = frozenset({
    "device_id", "task id", "stream id", "op state", "mix block dim", "mix block num", "hf32 eligible",
    "context id",
})
LISTS = {
    "input_dtypes": ("Input Data Types", "DT_"),
    "output_dtypes": ("Output Data Types", "DT_"),
    "input_formats": ("Input Formats", "FORMAT_"),
    "output_formats": ("Output Formats", "FORMAT_"),
}
_MISSING = object()


def matches(header: list[str]) -> bool:
    """True when the header has an op-name column and a duration column."""
    return find_column(header, *NAME) is not None and find_column(header, *DURATION) is not None


def read_ops(table: Table) -> list[OpRecord]:
    """Every well-formed row as an OpRecord, read one row at a time; unparsable rows go to `table.skipped`.

    A duration or wait cell that is text, NaN, infinite or negative raises ProfileError naming the
    file, row and column; an empty or N/A duration skips the row. Records are kept small: equal
    names, shapes and lists are one shared object, and of the columns not mapped to a field only
    KEPT_COLUMNS go into `extra` (performance counters such as aicore_time(us) are not kept).
    """
    col = {
        key: table.index(*aliases)
        for key, aliases in {
            "name": NAME, "type": TYPE, "core": CORE, "start_us": START_US, "start_ns": START_NS,
            "duration": DURATION, "wait": WAIT, "block": BLOCK, "model_id": MODEL_ID, "iteration": ITERATION,
        }.items()
    }
    for key, name in SHAPES.items():
        col[key] = table.index(name)
    for key, (name, _) in LISTS.items():
        col[key] = table.index(name)
    mapped = {i for i in col.values() if i is not None}
    kept = [(i, h) for i, h in enumerate(table.header) if i not in mapped and h.lower() in KEPT_COLUMNS]
    reader = _Reader(table, col, kept)
    ops = []
    for line, row in table.rows():
        try:
            ops.append(reader.record(line, row))
        except ProfileError:
            raise
        except ValueError:
            table.skipped.append(f"{table.path.name}:{line}")
    return ops


class _Reader:
    """Turns rows into OpRecords, sharing equal values between the records of one file."""

    def __init__(self, table: Table, col: dict[str, int | None], kept: list[tuple[int, str]]):
        self.table, self.col, self.kept = table, col, kept
        self.shared: dict = {}

    def share(self, kind: str, text: str | None, parse):
        """The one object parsed from `text` by `parse(text)` (an exception is not remembered)."""
        key = (kind, text)
        value = self.shared.get(key, _MISSING)
        if value is _MISSING:
            value = self.shared[key] = parse(text)
        return value

    def record(self, line: int, row: list[str]) -> OpRecord:
        col = self.col

        def cell(key: str) -> str | None:
            return row[col[key]] if col[key] is not None else None

        duration = self.duration(line, row, "duration")
        if duration is None:
            raise ValueError("no duration")
        start = values.number(cell("start_us"))
        if start is None and col["start_ns"] is not None:
            ns = values.number(cell("start_ns"))
            start = None if ns is None else ns / 1000.0
        extra = self.share("extra", tuple(row[i] for i, _ in self.kept),
                           lambda cells: {h: c.strip() for (_, h), c in zip(self.kept, cells, strict=True)})
        shapes = {}
        for key in SHAPES:
            try:
                shapes[key] = self.share(key, cell(key), values.shapes)
            except ValueError:  # keep an unreadable shape as text rather than lose the row's time
                shapes[key] = None
                extra = {**extra, self.table.header[col[key]]: cell(key).strip()}
        return OpRecord(
            name=self.share("name", cell("name"), lambda c: (c or "").strip()),
            op_type=self.share("type", cell("type"), values.clean),
            duration_us=duration,
            core_type=self.share("core", cell("core"), values.core_type),
            start_us=start,
            wait_us=self.duration(line, row, "wait"),
            block_dim=values.integer(cell("block")),
            model_id=values.integer(cell("model_id")),
            iteration=_iteration(cell("iteration")),
            **shapes,
            **{key: self.share(key, cell(key), lambda c, p=prefix: values.names(c, p))
               for key, (_, prefix) in LISTS.items()},
            extra=extra,
        )

    def duration(self, line: int, row: list[str], key: str) -> float | None:
        """The cell of column `key` as a duration; ProfileError (file, row, column) when it is not one."""
        at = self.col[key]
        if at is None:
            return None
        try:
            return values.duration(row[at])
        except values.BadDurationError as e:
            raise self.table.bad_cell(line, self.table.header[at], str(e)) from None


def _iteration(cell: str | None) -> int | None:
    """An iteration number, None when missing or not a number (it only counts runs)."""
    try:
        return values.integer(cell)
    except ValueError:
        return None
