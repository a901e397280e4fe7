"""Loading a profile file as text, refusing missing, empty and binary files."""

from __future__ import annotations

from pathlib import Path

from ..errors import ProfileError

HEAD_BYTES = 65536


def load_text(path: Path) -> str:
    """Return the file's text (UTF-8, BOM dropped) or raise ProfileError."""
    return _checked(path, _read(path, None))


def read_head(path: Path) -> str:
    """The first 64 KiB of the file as text, to tell its format without reading it all; ProfileError
    when it cannot be read, is empty or looks binary (a NUL byte)."""
    data = _read(path, HEAD_BYTES)
    if len(data) == HEAD_BYTES and not data.strip():  # blank so far: only the whole file can tell
        data = _read(path, None)
    return _checked(path, data)


def _read(path: Path, size: int | None) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read() if size is None else f.read(size)
    except OSError as e:
        raise ProfileError(f"{path}: cannot read: {e.strerror or e}") from None


def _checked(path: Path, data: bytes) -> str:
    if b"\0" in data:
        raise ProfileError(f"{path}: binary file, not a profile (expected CSV, JSON or a text log)")
    text = data.decode("utf-8-sig", errors="replace")
    if not text.strip():
        raise ProfileError(f"{path}: empty file, not a profile")
    return text
