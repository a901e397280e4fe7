"""Parsing single cells of msprof CSVs: N/A, numbers, quoted shape lists, dtype and format lists."""

from __future__ import annotations

import math

MISSING = ("", "N/A")


class BadDurationError(ValueError):
    """A time cell that is present but not a finite number >= 0; the message says why, without a place."""


def clean(cell: str | None) -> str | None:
    """Strip blanks (msprof puts a TAB after timestamps); None for an empty or N/A cell."""
    s = (cell or "").strip()
    return None if s in MISSING else s


def number(cell: str | None) -> float | None:
    """'4.29E+09' -> 4290000000.0; None when missing; ValueError when not a number."""
    s = clean(cell)
    return None if s is None else float(s)


def duration(cell: str | None) -> float | None:
    """A time (us or ms) from a cell: None when missing; BadDurationError when text, NaN, infinite or negative."""
    s = clean(cell)
    if s is None:
        return None
    try:
        x = float(s)
    except ValueError:
        raise BadDurationError(f"{s!r} is not a number") from None
    return check_duration(x, s)


def check_duration(x: object, shown: object = None) -> float:
    """`x` as a float when it is a finite number >= 0, else BadDurationError (showing `shown`, default `x`)."""
    shown = x if shown is None else shown
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise BadDurationError(f"{shown!r} is not a number")
    if not math.isfinite(x) or x < 0:
        raise BadDurationError(f"{shown!r} is not a duration (a finite number >= 0)")
    return float(x)


def integer(cell: str | None) -> int | None:
    """Like `number`, as an int (spreadsheets turn ids into '4.29E+09')."""
    x = number(cell)
    return None if x is None else int(x)


def shapes(cell: str | None) -> list[list[int]] | None:
    """'"32,1,224,224,8;121,4,16,8;64"' -> [[32, 1, 224, 224, 8], [121, 4, 16, 8], [64]].

    An empty entry is a scalar ([]); None when the cell is missing; ValueError when garbled.
    """
    s = clean(cell)
    if s is None:
        return None
    return [[int(d) for d in part.split(",")] if part.strip() else [] for part in s.strip('"').split(";")]


def names(cell: str | None, prefix: str = "") -> list[str]:
    """'DT_FLOAT;FLOAT16' -> ['FLOAT', 'FLOAT16'] with prefix 'DT_'; [] when missing."""
    s = clean(cell)
    if s is None:
        return []
    return [p.strip().removeprefix(prefix) for p in s.split(";")]


def core_type(cell: str | None) -> str | None:
    """'AI Core' (CANN 5.0.2) and 'AI_CORE' (later) -> 'AI_CORE'; names without blanks unchanged."""
    s = clean(cell)
    if s is None or " " not in s:
        return s
    return s.upper().replace(" ", "_")
