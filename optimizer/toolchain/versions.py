"""CANN version strings and their order.

5.0.2.alpha003 < 5.0.2 < 6.0.RC1 < 6.0.1 < 6.3.RC1 < 7.0.0 < 8.0.RC1 < 8.0.0.
"""

from __future__ import annotations

import re

_RELEASE = 3  # a plain number ranks above alpha (0), beta (1) and RC (2) at the same place
_PRE = {"alpha": 0, "beta": 1, "rc": 2}
_PART = re.compile(r"^(alpha|beta|rc)?(\d*)$", re.IGNORECASE)

# The facts the drivers depend on.
AUTO_TUNE_REMOVED = "6.0.1"  # "从CANN 6.0.1版本开始不再发布Auto Tune工具"
MSPROF_EXPORT_LINE = (6, 0)  # from the 6.0 line on, `msprof --export=on`; before, the msprof.py entry


def version_key(version: str) -> tuple[tuple[int, int], ...]:
    """A sortable key for a CANN version; ValueError for text that is not one.

    Each dot-separated part becomes (kind, number); missing parts count as a release 0, so
    ``5.0.2`` == ``5.0.2.0`` and ``8.0.RC1`` < ``8.0.0``. Atlas "20.x" releases predate 3.x.
    """
    parts = version.strip().split(".")
    key: list[tuple[int, int]] = []
    for part in parts:
        m = _PART.match(part)
        if not part or m is None or (m.group(1) is None and not m.group(2)):
            raise ValueError(f"not a CANN version: {version!r}")
        kind = _PRE[m.group(1).lower()] if m.group(1) else _RELEASE
        key.append((kind, int(m.group(2) or 0)))
    if key[0][0] != _RELEASE:
        raise ValueError(f"not a CANN version: {version!r}")
    if 20 <= key[0][1] < 30:
        key[0] = (_RELEASE, key[0][1] - 100)
    return tuple(key + [(_RELEASE, 0)] * (6 - len(key)))


def is_version(text: str) -> bool:
    """Whether ``text`` reads as a CANN version."""
    try:
        version_key(text)
    except ValueError:
        return False
    return True


def at_least(version: str, other: str) -> bool:
    """``version >= other`` in CANN's order."""
    return version_key(version) >= version_key(other)


def release_line(version: str) -> tuple[int, int]:
    """(major, minor) of a version: ``6.0.RC1`` and ``6.0.1`` are both on line (6, 0)."""
    key = version_key(version)
    return key[0][1], key[1][1] if key[1][0] == _RELEASE else 0
