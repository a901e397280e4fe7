"""Writing files all at once: the one atomic-write helper of ``optimizer`` and ``profiles``.

A regular file (or a new one) is written to a temporary sibling and renamed over the target,
so a reader sees the old file or the whole new one, never part of either. The result has the
permissions a plain ``open(path, "w")`` would give: the old file's mode, else ``0o666`` less the
umask. A symbolic link is followed (the file it names is replaced; the link stays). A character
device or a FIFO (``/dev/null``, ``/dev/stdout``, a pipe) is written through, never renamed over;
a directory, a socket or a block device is refused with :class:`UnwritableTargetError`.

Staging folders (:func:`staging_folder`) carry their owner's PID in their name, are removed on
every exit path, and :func:`remove_stale` removes those a killed process left behind.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import ProfileError

STALE_AFTER_S = 300  # a staging folder of a dead process younger than this is left alone


class UnwritableTargetError(ProfileError):
    """A path that cannot be written safely; the message is one line naming it."""


def write_problem(path: str | os.PathLike, *, streams: bool = True) -> str | None:
    """Why ``path`` cannot be written (one line, without the path), or None when it can.

    A missing folder, a folder without write permission, a directory, a socket or a block
    device is a problem; so is a character device or a FIFO unless ``streams`` (they are then
    written through).
    """
    real = Path(os.path.realpath(path))
    try:
        mode = real.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if mode is not None and not stat.S_ISREG(mode):
        kind = _kind(mode)
        if not (streams and kind in ("a character device", "a FIFO")):
            return f"is {kind}, not a regular file; give a file name"
        return None
    if not real.parent.is_dir():
        return f"folder {real.parent} does not exist"
    if not os.access(real.parent, os.W_OK | os.X_OK):
        return f"folder {real.parent} is not writable"
    return None


def write_atomic(path: str | os.PathLike, data: str | bytes, *, mode_from: str | os.PathLike | None = None) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` so that readers see the old file or the whole new one.

    The file gets the mode of ``mode_from`` when given, else that of the file it replaces, else
    what a plain ``open`` would give. Missing parent folders are created. Returns ``path``.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    real = Path(os.path.realpath(path))
    if is_stream(real):
        with open(real, "wb") as stream:
            stream.write(raw)
        return Path(path)
    _refuse_special(real)
    real.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_sibling(real)
    try:
        with open(tmp, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        replace_atomic(tmp, real, mode_from=mode_from)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`write_atomic`)."""
    return write_atomic(path, text)


def write_json_atomic(path: str | os.PathLike, data: Any, *, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON (``indent`` spaces, a final newline) to ``path`` atomically."""
    return write_atomic(path, json.dumps(data, indent=indent) + "\n")


def copy_atomic(source: str | os.PathLike, destination: str | os.PathLike) -> Path:
    """Copy ``source``'s bytes to ``destination`` atomically (see :func:`write_atomic` for the mode)."""
    real = Path(os.path.realpath(destination))
    if is_stream(real):
        shutil.copyfile(source, real)
        return Path(destination)
    _refuse_special(real)
    tmp = _new_sibling(real)
    try:
        shutil.copyfile(source, tmp)
        replace_atomic(tmp, real)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Path(destination)


def replace_atomic(
    staged: str | os.PathLike, path: str | os.PathLike, *, mode_from: str | os.PathLike | None = None
) -> Path:
    """Rename the complete file ``staged`` (on the same filesystem) over ``path``, a regular file
    or a new name, giving it the mode of ``mode_from``, else of the file it replaces, else the mode
    a plain ``open`` would give. A symbolic link ``path`` is followed. Returns the path written."""
    real = Path(os.path.realpath(path))
    _refuse_special(real, streams=False)
    try:
        mode = stat.S_IMODE(os.stat(mode_from if mode_from is not None else real).st_mode)
    except FileNotFoundError:
        mode = plain_mode()
    os.chmod(staged, mode)
    os.replace(staged, real)
    return real


def place_new(staged: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Move the complete file ``staged`` (on the same filesystem) to ``path``, a name that must not
    exist: a concurrent writer's file is never replaced (:class:`FileExistsError`). The file gets
    the mode a plain ``open`` would give. A hard link where the filesystem has them, else a rename."""
    os.chmod(staged, plain_mode())
    try:
        os.link(staged, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links here
        if os.path.lexists(path):
            raise FileExistsError(f"{path} exists") from None
        os.replace(staged, path)
    return Path(path)


def place_folder(staged: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Move the complete folder ``staged`` (on the same filesystem) to ``path``, a name that must not
    exist or be an empty folder (a folder with anything in it is never replaced: :class:`OSError`)."""
    os.replace(staged, path)
    return Path(path)


@contextmanager
def staging_folder(folder: str | os.PathLike, prefix: str) -> Iterator[Path]:
    """A new folder ``<prefix><pid>-<random>`` in ``folder``, removed with everything in it on every
    exit path (exceptions and KeyboardInterrupt included)."""
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=folder))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def remove_stale(folder: str | os.PathLike, prefix: str, *, age_s: float = STALE_AFTER_S) -> list[Path]:
    """Remove the staging folders ``<prefix><pid>-*`` in ``folder`` whose process is gone and that
    were last changed more than ``age_s`` seconds ago (what a kill -9 left); return them."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)-")
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        match = pattern.match(entry.name)
        if not match or not entry.is_dir(follow_symlinks=False) or _alive(int(match.group(1))):
            continue
        try:
            if time.time() - entry.stat(follow_symlinks=False).st_mtime <= age_s:
                continue
            shutil.rmtree(entry.path)
        except OSError:
            continue
        removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a PID we write: leave it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process, or no PID at all: leave it
    return True


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def is_stream(path: str | os.PathLike) -> bool:
    """Whether ``path`` (followed) is a character device or a FIFO: written through, never replaced."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def _refuse_special(real: Path, *, streams: bool = True) -> None:
    try:
        mode = real.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode) and not (streams and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode))):
        raise UnwritableTargetError(f"{real} is {_kind(mode)}, not a regular file: it is never replaced")


def _new_sibling(real: Path) -> Path:
    """A new empty file ``.<name>.<random>.tmp`` beside ``real``."""
    while True:
        tmp = real.with_name(f".{real.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            continue
        return tmp


def plain_mode() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file: ``0o666`` less the umask (read
    without changing it where Linux allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask
