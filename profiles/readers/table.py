"""Streaming a CSV profile: its header, then its rows one at a time, with their line numbers.

Nothing holds the whole file: `open_table` reads rows from the open file as a reader asks for
them, so a 200 MB op_summary costs only what the reader keeps of each row.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import ProfileError

LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")

class Table:
    """A CSV profile: its stripped header and an iterator over its rows (read once, by `rows`).

    While `rows` runs it counts the data records (`records`, read or not), notes the "file:line"
    of rows with the wrong number of fields (`skipped`) and the first `Model Name` (`model_name`).
    """

    def __init__(self, path: Path, header: list[str], records: Iterator[tuple[int, list[str], bool]]):
        self.path = path
        self.header = header
        self.skipped: list[str] = []
        self.records = 0
        self.model_name: str | None = None
        self._pending = records

    def column(self, *aliases: str) -> str | None:
        """The header's name for the first alias present (case-insensitive), else None."""
        return find_column(self.header, *aliases)

    def index(self, *aliases: str) -> int | None:
        """The position in the header of the first alias present (case-insensitive), else None."""
        name = self.column(*aliases)
        return None if name is None else self.header.index(name)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """(line number, cells) of each row with as many cells as the header; a second call yields nothing.

        A last row cut short at the end of a file that does not end with a newline raises
        ProfileError (truncated); other short or long rows go to `skipped`.
        """
        records, self._pending = self._pending, iter(())
        name_at = self.index("Model Name")
        previous = None
        for record in records:
            if previous is not None:
                yield from self._row(*previous, last=False, name_at=name_at)
            previous = record
        if previous is not None:
            yield from self._row(*previous, last=True, name_at=name_at)

    def _row(self, line: int, cells: list[str], ended: bool, *, last: bool, name_at: int | None):
        self.records += 1
        if len(cells) != len(self.header):
            if last and not ended:
                raise ProfileError(f"{self.path}: truncated CSV: last row (line {line}) has {len(cells)} "
                                   f"of {len(self.header)} fields")
            self.skipped.append(f"{self.path.name}:{line}")
            return
        if name_at is not None and self.model_name is None:
            name = cells[name_at].strip()
            self.model_name = name if name and name != "N/A" else None
        yield line, cells

    def bad_cell(self, line: int, column: str, why: str) -> ProfileError:
        """The one-line error for a cell no reader may accept: file, row (its line number), column."""
        return ProfileError(f"{self.path}: row {line}, column {column!r}: {why}")


def find_column(header: list[str], *aliases: str) -> str | None:
    """The name in `header` of the first alias present (case-insensitive), else None."""
    lower = {h.lower(): h for h in header}
    return next((lower[a.lower()] for a in aliases if a.lower() in lower), None)


def first_row(text: str) -> list[str]:
    """The stripped cells of the first CSV line (for sniffing a header)."""
    line = text.lstrip().splitlines()[0]
    return [c.strip() for c in next(csv.reader([line]))]


def open_table(path: Path) -> Table:
    """Open a CSV profile on disk for streaming (UTF-8, BOM dropped, undecodable bytes replaced)."""
    try:
        handle = open(path, encoding="utf-8-sig", errors="replace", newline="")  # noqa: SIM115 (closed by _lines)
    except OSError as e:
        raise ProfileError(f"{path}: cannot read: {e.strerror or e}") from None
    return _table(path, _records(path, _file_lines(handle)))


def parse_table(path: Path, text: str) -> Table:
    """A Table over CSV text already in memory (rows are still produced one at a time)."""
    return _table(path, _records(path, _text_lines(text)))


def require_rows(table: Table, items: list) -> None:
    """Raise ProfileError when a profile CSV yields nothing readable."""
    if not items:
        what = f"none of its {table.records} rows parse" if table.records else "a header but no rows"
        raise ProfileError(f"{table.path}: {what}; expected at least one profiled op")


def model_name(table: Table) -> str | None:
    """The first non-empty `Model Name` cell among the rows read so far (None without that column)."""
    return table.model_name


def _table(path: Path, records: Iterator[tuple[int, list[str], bool]]) -> Table:
    first = next(records, None)
    if first is None:
        raise ProfileError(f"{path}: CSV without a header; expected a profile CSV")
    return Table(path, [c.strip() for c in first[1]], records)


def _records(path: Path, lines: Iterable[str]) -> Iterator[tuple[int, list[str], bool]]:
    """Non-blank CSV records as (line number of their last line, cells, whether that line ended)."""
    last = [""]

    def tracked() -> Iterator[str]:
        for line in lines:
            last[0] = line
            yield line

    reader = csv.reader(tracked(), strict=True)
    try:
        for cells in reader:
            if any(c.strip() for c in cells):
                yield reader.line_num, cells, last[0].endswith(("\n", "\r"))
    except csv.Error as e:
        raise ProfileError(f"{path}: garbled CSV: {e}") from None


def _file_lines(handle) -> Iterator[str]:
    with handle:
        yield from handle


def _text_lines(text: str) -> Iterator[str]:
    """The lines of `text` with their endings (\\n, \\r\\n or \\r), one at a time (no list of every line)."""
    return (m.group() for m in LINE.finditer(text))
