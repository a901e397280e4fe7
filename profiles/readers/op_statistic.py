"""Reader for msprof op_statistic CSVs (with or without `Model Name` / `Device_id`)."""

from __future__ import annotations

from ..errors import ProfileError
from ..model import OpTypeStat
from . import values
from .table import Table, find_column

COLUMNS = {
    "op_type": "OP Type", "core_type": "Core Type", "count": "Count", "total_us": "Total Time(us)",
    "min_us": "Min Time(us)", "avg_us": "Avg Time(us)", "max_us": "Max Time(us)", "ratio": "Ratio(%)",
}
TIMES = ("total_us", "min_us", "avg_us", "max_us")


def matches(header: list[str]) -> bool:
    """True when the header has OP Type, Count and Total Time(us)."""
    return all(find_column(header, COLUMNS[k]) for k in ("op_type", "count", "total_us"))


def read_stats(table: Table) -> list[OpTypeStat]:
    """Every well-formed row as an OpTypeStat; rows that do not parse go to `table.skipped`.

    A time cell that is text, NaN, infinite or negative raises ProfileError naming the file,
    row and column.
    """
    col = {key: table.index(name) for key, name in COLUMNS.items()}
    parsed = []
    for line, row in table.rows():
        try:
            parsed.append(_stat(table, line, row, col))
        except ProfileError:
            raise
        except ValueError:
            table.skipped.append(f"{table.path.name}:{line}")
    grand = sum(s.total_us for s, _ in parsed)
    for stat, ratio in parsed:
        stat.share = ratio / 100.0 if ratio is not None else (stat.total_us / grand if grand else 0.0)
    return [s for s, _ in parsed]


def _stat(table: Table, line: int, row: list[str], col: dict[str, int | None]) -> tuple[OpTypeStat, float | None]:
    times = {}
    for key in TIMES:
        try:
            times[key] = values.duration(row[col[key]]) if col[key] is not None else None
        except values.BadDurationError as e:
            raise table.bad_cell(line, table.header[col[key]], str(e)) from None
    count, total = values.integer(row[col["count"]]), times["total_us"]
    if count is None or total is None:
        raise ValueError("no count or total")
    avg = times["avg_us"]
    avg = avg if avg is not None else (total / count if count else 0.0)
    stat = OpTypeStat(
        op_type=values.clean(row[col["op_type"]]),
        core_type=values.core_type(row[col["core_type"]]) if col["core_type"] is not None else None,
        count=count,
        total_us=total,
        min_us=_or(times["min_us"], avg),
        avg_us=avg,
        max_us=_or(times["max_us"], avg),
        share=0.0,
    )
    return stat, values.number(row[col["ratio"]]) if col["ratio"] is not None else None


def _or(x: float | None, default: float) -> float:
    return default if x is None else x
