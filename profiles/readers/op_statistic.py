"""Reader for msprof op_statistic CSVs (with or without `Model Name` / `Device_id`)."""

from __future__ import annotations

from ..model import OpTypeStat
from . import values
from .table import Table, find_column

COLUMNS = {
    "op_type": "OP Type", "core_type": "Core Type", "count": "Count", "total_us": "Total Time(us)",
    "min_us": "Min Time(us)", "avg_us": "Avg Time(us)", "max_us": "Max Time(us)", "ratio": "Ratio(%)",
}


def matches(header: list[str]) -> bool:
    """True when the header has OP Type, Count and Total Time(us)."""
    return all(find_column(header, COLUMNS[k]) for k in ("op_type", "count", "total_us"))


def read_stats(table: Table) -> list[OpTypeStat]:
    """Every well-formed row as an OpTypeStat; rows that do not parse go to `table.skipped`."""
    col = {key: table.column(name) for key, name in COLUMNS.items()}
    parsed = []
    for line, row in table.rows:
        try:
            parsed.append(_stat(row, col))
        except ValueError:
            table.skipped.append(f"{table.path.name}:{line}")
    grand = sum(s.total_us for s, _ in parsed)
    for stat, ratio in parsed:
        stat.share = ratio / 100.0 if ratio is not None else (stat.total_us / grand if grand else 0.0)
    return [s for s, _ in parsed]


def _stat(row: dict[str, str], col: dict[str, str | None]) -> tuple[OpTypeStat, float | None]:
    def num(key: str) -> float | None:
        return values.number(row[col[key]]) if col[key] else None

    count, total = values.integer(row[col["count"]]), num("total_us")
    if count is None or total is None:
        raise ValueError("no count or total")
    avg = num("avg_us")
    avg = avg if avg is not None else (total / count if count else 0.0)
    stat = OpTypeStat(
        op_type=values.clean(row[col["op_type"]]),
        core_type=values.core_type(row[col["core_type"]]) if col["core_type"] else None,
        count=count,
        total_us=total,
        min_us=_or(num("min_us"), avg),
        avg_us=avg,
        max_us=_or(num("max_us"), avg),
        share=0.0,
    )
    return stat, num("ratio")


def _or(x: float | None, default: float) -> float:
    return default if x is None else x
