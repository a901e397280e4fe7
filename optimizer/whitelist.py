"""Edit the OPP's Transpose white list: ``white_list_shape`` inside
``_by_dynamic_static_union_version`` of ``op_impl/built-in/ai_core/tbe/impl/dynamic/transpose.py``.

The file is Huawei's, not ours, so every edit is: located with libcst (only that list, in that
function), written in the file's own layout (entries appended on a new line at the entries'
indent, the previous last entry gaining its comma), checked by parsing the result, backed up
once, written atomically under an exclusive lock (concurrent runs on one OPP lose no edit),
idempotent, and revertible byte for byte.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import fcntl
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from optimizer.errors import UserError

TRANSPOSE_FILE = Path("op_impl/built-in/ai_core/tbe/impl/dynamic/transpose.py")
FUNCTION = "_by_dynamic_static_union_version"
LIST_NAME = "white_list_shape"
BACKUP_SUFFIX = ".onnx-opt.orig"
LOCK_SUFFIX = ".onnx-opt.lock"


@dataclass
class WhitelistEdit:
    """What an edit did (or, in a dry run, would do)."""

    path: Path
    added: list[list[int]]
    present: list[list[int]]
    diff: str
    backup: Path | None
    written: bool


@dataclass
class _ListSpan:
    entries: list[list[int]]
    insert_at: int  # offset just after the last entry
    needs_comma: bool
    indent: str
    newline: str


def transpose_file(opp_dir: Path) -> Path:
    """The dynamic transpose.py under ``opp_dir``; a clear error when it is not there."""
    path = opp_dir / TRANSPOSE_FILE
    if not opp_dir.is_dir():
        raise UserError(f"OPP folder {opp_dir} does not exist (give --opp or set ASCEND_OPP_PATH)")
    if not path.is_file():
        raise UserError(f"{path} does not exist: is {opp_dir} an OPP folder of the CANN toolkit?")
    return path


def add_shapes(opp_dir: Path, shapes: list[list[int]], *, dry_run: bool = False) -> WhitelistEdit:
    """Append the shapes missing from ``white_list_shape``; back up the original once.

    The backup, the read, the edit and the replace happen under an exclusive lock on a file
    beside ``transpose.py``, so concurrent runs on one OPP each see the other's edit."""
    for shape in shapes:
        if not shape or any(not isinstance(d, int) or d <= 0 for d in shape):
            raise UserError(f"shape {shape} is not a list of positive integers")
    path = transpose_file(opp_dir)
    planned = _edit(path, shapes, dry_run=True)  # a file laid out otherwise is refused before any lock
    if dry_run or not planned.added:
        return planned
    _check_writable(path)
    with _locked(path):
        return _edit(path, shapes, dry_run=False)


def _edit(path: Path, shapes: list[list[int]], *, dry_run: bool) -> WhitelistEdit:
    original = _read(path)
    span = _locate(original, path)
    added: list[list[int]] = []
    for shape in shapes:
        if shape not in span.entries and shape not in added:
            added.append(list(shape))
    present = [shape for shape in shapes if shape in span.entries]
    if not added:
        return WhitelistEdit(path, [], present, "", None, False)
    line = ", ".join("[" + ", ".join(str(d) for d in shape) + "]" for shape in added)
    edited = (
        original[: span.insert_at]
        + ("," if span.needs_comma else "")
        + span.newline
        + span.indent
        + line
        + original[span.insert_at :]
    )
    after = _locate(edited, path)
    if after.entries != span.entries + added:
        raise UserError(f"{path}: the edit did not give the expected list; the file was left untouched")
    diff = "".join(
        difflib.unified_diff(
            original.splitlines(keepends=True), edited.splitlines(keepends=True), str(path), str(path) + " (edited)"
        )
    )
    if dry_run:
        return WhitelistEdit(path, added, present, diff, None, False)
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    if not backup.exists():
        _atomic_write(backup, path.read_bytes(), path)
    _atomic_write(path, edited.encode("utf-8"), path)
    return WhitelistEdit(path, added, present, diff, backup, True)


def revert(opp_dir: Path) -> Path:
    """Restore the backed-up original byte for byte and remove the backup."""
    path = transpose_file(opp_dir)
    backup = path.with_name(path.name + BACKUP_SUFFIX)
    if not backup.is_file():
        raise UserError(f"{path}: no backup {backup.name} to restore (onnx-opt never edited it, or it was reverted)")
    _check_writable(path)
    with _locked(path):
        _atomic_write(path, backup.read_bytes(), path)
        backup.unlink()
    return path


def listed_shapes(path: Path) -> list[list[int]]:
    """The entries of ``white_list_shape`` in ``path``."""
    return _locate(_read(path), path).entries


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read ({exc.strerror})") from None


def _locate(source: str, path: Path) -> _ListSpan:
    """Find the list with libcst and check it has the expected layout."""
    import libcst as cst
    from libcst.metadata import MetadataWrapper, PositionProvider

    try:
        wrapper = MetadataWrapper(cst.parse_module(source))
    except cst.ParserSyntaxError:
        raise UserError(f"{path}: not valid Python; left untouched") from None
    found = _find_lists(wrapper)
    different = f"{path}: laid out differently than expected ({{}}); edit it by hand"
    if len(found) != 1:
        raise UserError(different.format(f"{len(found)} '{LIST_NAME} = [...]' in {FUNCTION}()"))
    node = found[0]
    if node is None:
        raise UserError(different.format("the list is not a literal"))
    positions = wrapper.resolve(PositionProvider)
    try:
        entries = ast.literal_eval(cst.Module([]).code_for_node(node))
    except (ValueError, SyntaxError):
        raise UserError(different.format("the list is not a literal")) from None
    if not all(isinstance(e, list) and all(isinstance(d, int) for d in e) for e in entries):
        raise UserError(different.format("entries are not lists of integers"))
    lines = source.splitlines(keepends=True)
    starts = [0]
    for text in lines:
        starts.append(starts[-1] + len(text))

    def offset(line: int, column: int) -> int:
        return starts[line - 1] + column

    opening = positions[node].start
    closing = positions[node].end
    if lines[opening.line - 1][opening.column + 1 :].strip() or lines[closing.line - 1][: closing.column - 1].strip():
        raise UserError(different.format("'[' must end its line and ']' stand alone on its line"))
    if not node.elements:
        raise UserError(different.format("the list is empty"))
    last = node.elements[-1]
    end = positions[last.value].end
    first_on_line = next(e for e in node.elements if positions[e.value].start.line == end.line)
    indent = lines[end.line - 1][: positions[first_on_line.value].start.column]
    if indent.strip():
        raise UserError(different.format("the last entry line holds more than entries"))
    newline = "\r\n" if lines[end.line - 1].endswith("\r\n") else "\n"
    has_comma = isinstance(last.comma, cst.Comma)
    return _ListSpan(
        entries=entries,
        insert_at=offset(end.line, end.column) + (_comma_width(last) if has_comma else 0),
        needs_comma=not has_comma,
        indent=indent,
        newline=newline,
    )


def _comma_width(element) -> int:
    import libcst as cst

    return len(cst.Module([]).code_for_node(element.comma).rstrip()) if element.comma else 0


def _find_lists(wrapper) -> list:
    """Values assigned to ``white_list_shape`` directly inside FUNCTION (None when not a list)."""
    import libcst as cst

    class Finder(cst.CSTVisitor):
        def __init__(self) -> None:
            self.lists: list[cst.List | None] = []
            self.depth = 0

        def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:  # noqa: N802 (libcst's names)
            self.depth += node.name.value == FUNCTION
            return True

        def leave_FunctionDef(self, node: cst.FunctionDef) -> None:  # noqa: N802
            self.depth -= node.name.value == FUNCTION

        def visit_Assign(self, node: cst.Assign) -> bool:  # noqa: N802
            if self.depth and any(isinstance(t.target, cst.Name) and t.target.value == LIST_NAME for t in node.targets):
                self.lists.append(node.value if isinstance(node.value, cst.List) else None)
            return False

    finder = Finder()
    wrapper.visit(finder)
    return finder.lists


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``transpose.py.onnx-opt.lock`` beside ``path`` (the lock file
    stays: removing it would let a waiter lock a file no one else sees)."""
    lock = path.with_name(path.name + LOCK_SUFFIX)
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UserError(f"{lock}: cannot create the lock file ({exc.strerror}); nothing was changed") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _check_writable(path: Path) -> None:
    no_write_bits = not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    if no_write_bits or not os.access(path, os.W_OK):  # root may write anything: respect the mode too
        raise UserError(f"{path} is read-only: run as a user who may write it; nothing was changed")
    if not os.access(path.parent, os.W_OK):
        raise UserError(f"{path.parent} is read-only: the atomic write needs it; nothing was changed")


def _atomic_write(path: Path, data: bytes, mode_from: Path) -> None:
    """Write ``data`` over ``path`` atomically with the mode of ``mode_from`` (the one helper)."""
    from profiles.atomic import write_atomic

    write_atomic(path, data, mode_from=mode_from)
