"""The pass registry. Built-ins and plugins are both found through the entry-point group
``onnx_opt.passes`` (setup.cfg lists the built-ins), so ``optimizer`` never imports ``passes``.

An entry point names a module whose classes register themselves with :func:`register_pass`,
or a pass class, which is registered when loaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import re
from collections.abc import Iterator
from importlib import metadata
from typing import TypeVar

from optimizer.errors import UserError

ENTRY_POINT_GROUP = "onnx_opt.passes"
OWN_DISTRIBUTION = "onnx-opt"
PASS_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

KINDS = ("rewrite", "analysis", "fix")

_passes: dict[str, type] = {}
_warnings: list[str] = []
_loaded = False

PassClass = TypeVar("PassClass", bound=type)


def register_pass(cls: PassClass) -> PassClass:
    """Class decorator: check what a pass declares and add it to the registry."""
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not PASS_NAME.match(name):
        raise TypeError(f"{cls.__qualname__}: pass name {name!r} is not kebab-case (e.g. 'fuse-gelu')")
    summary = getattr(cls, "summary", None)
    if not isinstance(summary, str) or not summary.strip() or "\n" in summary:
        raise TypeError(f"{cls.__qualname__}: summary must be one non-empty line")
    addresses = getattr(cls, "addresses", ())
    if not isinstance(addresses, tuple) or not all(isinstance(op, str) for op in addresses):
        raise TypeError(f"{cls.__qualname__}: addresses must be a tuple of op type names")
    _check_options(cls)
    if getattr(cls, "kind", "rewrite") not in KINDS:
        raise TypeError(f"{cls.__qualname__}: kind must be 'rewrite', 'analysis' or 'fix', not {cls.kind!r}")
    known = _passes.get(name)
    if known is not None and known is not cls:
        _warnings.append(f"pass '{name}' is defined by both {_where(known)} and {_where(cls)}; keeping {_where(known)}")
        return cls
    _passes[name] = cls
    return cls


def _check_options(cls: type) -> None:
    """``Options``, when declared, must be a dataclass whose fields all have defaults."""
    options = getattr(cls, "Options", None)
    if options is None:
        return
    if not (isinstance(options, type) and dataclasses.is_dataclass(options)):
        raise TypeError(f"{cls.__qualname__}: Options must be a dataclass")
    for option in dataclasses.fields(options):
        if option.default is dataclasses.MISSING and option.default_factory is dataclasses.MISSING:
            raise TypeError(f"{cls.__qualname__}: option {option.name} needs a default")


def pass_group(cls: type) -> str:
    """How ``onnx-opt passes`` groups a pass: rewrite, analysis, fix or approximate."""
    return "approximate" if getattr(cls, "approximate", False) else getattr(cls, "kind", "rewrite")


def opt_in_reason(cls: type) -> str | None:
    """Why a pass never runs unless named in ``--passes`` with ``--allow-approximate`` (never in a
    target's pipeline, ``auto`` or ``plan``): it changes the outputs by design, or it is a fix that
    leaves a non-standard model. None for every other pass."""
    if getattr(cls, "approximate", False):
        return f"{cls.name} is approximate: it changes the outputs by design"
    if getattr(cls, "kind", "rewrite") == "fix":
        return f"{cls.name} is a conversion fix that leaves a non-standard model"
    return None


def all_passes() -> dict[str, type]:
    """Every registered pass by name, after loading the entry-point group once."""
    _load_entry_points()
    return dict(sorted(_passes.items()))


def default_passes() -> dict[str, type]:
    """Every registered pass that may run without being named: all but the opt-in ones (see
    :func:`opt_in_reason`). ``auto``, ``plan`` and ``hotspots`` choose among these."""
    return {name: cls for name, cls in all_passes().items() if opt_in_reason(cls) is None}


def get_pass(name: str) -> type:
    """The pass class called ``name``; an unknown name is a :class:`UserError` naming close matches."""
    passes = all_passes()
    if name in passes:
        return passes[name]
    close = difflib.get_close_matches(name, list(passes), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; 'onnx-opt passes' lists them"
    raise UserError(f"unknown pass '{name}'{hint}")


@contextlib.contextmanager
def registered(*classes: type) -> Iterator[None]:
    """Register pass classes for the duration of a ``with`` block (tests), then restore the registry."""
    _load_entry_points()
    saved, warnings = dict(_passes), list(_warnings)
    try:
        for cls in classes:
            register_pass(cls)
        yield
    finally:
        _passes.clear()
        _passes.update(saved)
        _warnings[:] = warnings


def load_warnings() -> list[str]:
    """Problems met while loading plugins (a broken plugin does not stop the tool)."""
    _load_entry_points()
    return list(_warnings)


def _load_entry_points() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    # Built-ins first, then plugins by distribution and name: a clash keeps the built-in.
    points = sorted(entry_points_by_distribution(ENTRY_POINT_GROUP), key=lambda pair: pair[0] != OWN_DISTRIBUTION)
    for _, point in points:
        try:
            loaded = point.load()
        except Exception as exc:
            _warnings.append(f"pass plugin '{point.name}' ({point.value}) failed to load: {exc}")
            continue
        if isinstance(loaded, type):
            try:
                register_pass(loaded)
            except TypeError as exc:
                _warnings.append(f"pass plugin '{point.name}' is not a valid pass: {exc}")


def entry_points_by_distribution(group: str) -> list[tuple[str, metadata.EntryPoint]]:
    """The entry points of ``group``, each with its distribution's name, by that name and the
    point's. Each distribution's metadata is read once (reading it is a millisecond or two, and
    every point of a distribution would read it again)."""
    names: dict[int, str] = {}
    pairs = []
    for point in metadata.entry_points(group=group):
        dist = point.dist
        if dist is not None and id(dist) not in names:
            names[id(dist)] = dist.name
        pairs.append((names[id(dist)] if dist is not None else "", point))
    return sorted(pairs, key=lambda pair: (pair[0], pair[1].name))


def _where(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
