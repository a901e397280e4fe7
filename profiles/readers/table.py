"""Splitting a CSV profile into its header and rows, keeping line numbers of malformed rows."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ProfileError


@dataclass
class Table:
    """A CSV file: stripped header, rows as column->cell dicts with their line numbers."""

    path: Path
    header: list[str]
    rows: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "file:line" of rows that could not be read
    records: int = 0  # data rows in the file, read or not

    def column(self, *aliases: str) -> str | None:
        """The header's name for the first alias present (case-insensitive), else None."""
        return find_column(self.header, *aliases)


def find_column(header: list[str], *aliases: str) -> str | None:
    """The name in `header` of the first alias present (case-insensitive), else None."""
    lower = {h.lower(): h for h in header}
    return next((lower[a.lower()] for a in aliases if a.lower() in lower), None)


def first_row(text: str) -> list[str]:
    """The stripped cells of the first CSV line (for sniffing a header)."""
    line = text.lstrip().splitlines()[0]
    return [c.strip() for c in next(csv.reader([line]))]


def parse_table(path: Path, text: str) -> Table:
    """Parse CSV text; a row cut short at the end of the file raises ProfileError (truncated)."""
    try:
        records = []
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        for cells in reader:
            if any(c.strip() for c in cells):
                records.append((reader.line_num, cells))
    except csv.Error as e:
        raise ProfileError(f"{path}: garbled CSV: {e}") from None
    if not records:
        raise ProfileError(f"{path}: CSV without a header; expected a profile CSV")
    header = [c.strip() for c in records[0][1]]
    table = Table(path, header, records=len(records) - 1)
    for i, (line, cells) in enumerate(records[1:], start=2):
        if len(cells) == len(header):
            table.rows.append((line, dict(zip(header, cells, strict=True))))
        elif i == len(records) and not text.endswith(("\n", "\r")):
            raise ProfileError(
                f"{path}: truncated CSV: last row (line {line}) has {len(cells)} of {len(header)} fields"
            )
        else:
            table.skipped.append(f"{path.name}:{line}")
    return table


def require_rows(table: Table, items: list) -> None:
    """Raise ProfileError when a profile CSV yields nothing readable."""
    if not items:
        what = f"none of its {table.records} rows parse" if table.records else "a header but no rows"
        raise ProfileError(f"{table.path}: {what}; expected at least one profiled op")


def model_name(table: Table) -> str | None:
    """The first non-empty `Model Name` cell, when the file has that column."""
    col = table.column("Model Name")
    cells = (r[col].strip() for _, r in table.rows) if col else ()
    return next((c for c in cells if c and c != "N/A"), None)
