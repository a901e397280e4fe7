"""Loading a profile file as text, refusing missing, empty and binary files."""

from __future__ import annotations

from pathlib import Path

from ..errors import ProfileError


def load_text(path: Path) -> str:
    """Return the file's text (UTF-8, BOM dropped) or raise ProfileError."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ProfileError(f"{path}: cannot read: {e.strerror or e}") from None
    if b"\0" in data:
        raise ProfileError(f"{path}: binary file, not a profile (expected CSV, JSON or a text log)")
    text = data.decode("utf-8-sig", errors="replace")
    if not text.strip():
        raise ProfileError(f"{path}: empty file, not a profile")
    return text
