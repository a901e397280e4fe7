"""Targets: where a model will run, what a pass needs to know about it, and its default pipeline.

A target is a JSON file checked against ``optimizer/data/target.schema.json`` (and: opsets low <=
high, every pipeline entry a registered pass). ``--target`` takes a file (a path ending in
``.json`` or holding a path separator) or a name, found in this order:

1. the built-ins (``optimizer/data/targets``);
2. each folder of the environment variable ``ONNX_OPT_TARGETS`` (``os.pathsep``-separated), in order;
3. the user config folder, ``click.get_app_dir("onnx-opt")/targets`` (``~/.config/onnx-opt/targets``);
4. plugin packages: each entry point of the group ``onnx_opt.targets`` names a package whose
   ``*.json`` resources are targets (by distribution, then entry-point name).

A named target's file is ``NAME.json`` and its ``name`` is ``NAME``. The first target found under
a name wins and every later one is ignored with a warning, so a built-in is never shadowed.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata, resources
from pathlib import Path
from typing import TYPE_CHECKING

import click

from optimizer.errors import UserError
from optimizer.registry import all_passes, entry_points_by_distribution, get_pass, opt_in_reason

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

DEFAULT_TARGET = "onnxruntime"
TARGETS_ENV = "ONNX_OPT_TARGETS"
ENTRY_POINT_GROUP = "onnx_opt.targets"
BUILT_IN = "built-in"


@dataclass(frozen=True)
class Target:
    """What a pass needs to know about where the model will run, and its default pipeline."""

    name: str
    description: str
    backend: str
    soc_version: str | None
    cann: str | None
    opsets: tuple[int, int]
    unsupported_ops: frozenset[str]
    capabilities: frozenset[str]
    pipeline: tuple[str, ...]
    source: str = BUILT_IN  # where it came from: built-in, or the kind of source and the file
    why: dict[str, str] = field(default_factory=dict, hash=False, compare=False)  # pass -> why it is there

    def supports_op(self, op_type: str) -> bool:
        """Whether the target's converter accepts ``op_type``."""
        return op_type not in self.unsupported_ops

    def accepts_opset(self, opset: int) -> bool:
        """Whether the target's converter accepts models of this ONNX opset."""
        return self.opsets[0] <= opset <= self.opsets[1]


@dataclass(frozen=True)
class TargetFile:
    """A named target's file and the kind of source it was found in."""

    file: Traversable
    kind: str  # built-in, ONNX_OPT_TARGETS, user config, plugin NAME

    @property
    def source(self) -> str:
        """``built-in``, or the kind of source and the file."""
        return BUILT_IN if self.kind == BUILT_IN else f"{self.kind}: {self.file}"


def parse_passes(text: str | None) -> list[str] | None:
    """``--passes`` text as a list: None (the target's pipeline), [] for ``none``, names, or
    ``+name`` / ``-name`` edits; a :class:`UserError` says what is wrong with it."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["none"]:
        return []
    if not names or "none" in names:
        raise UserError("give pass names separated by commas, or 'none'")
    edits = [name for name in names if name[:1] in ("+", "-")]
    if edits and len(edits) != len(names):
        raise UserError("give pass names (the pipeline) or +name/-name edits of the target's, not both")
    if any(len(name) == 1 for name in edits):
        raise UserError("+ and - need a pass name: +name adds it, -name removes it")
    return names


def edit_pipeline(target: Target, passes: list[str] | None) -> tuple[list[str], list[str]]:
    """The pipeline to run and notes about it: the target's (``passes`` None), ``passes`` itself,
    or the target's edited by ``passes`` when they are ``+name`` (append) / ``-name`` (remove) items.

    ``-name`` of a pass not in the pipeline is a :class:`UserError`; ``+name`` of one already there
    changes nothing and says so in a note.
    """
    if passes is None:
        return list(target.pipeline), []
    edits = [item for item in passes if item[:1] in ("+", "-")]
    if not edits:
        return list(passes), []
    if len(edits) != len(passes):
        raise UserError(f"--passes {','.join(passes)}: give pass names, or +name/-name edits of the pipeline, not both")
    names, notes = list(target.pipeline), []
    for item in edits:
        name = item[1:]
        get_pass(name)
        if item[0] == "-" and name not in names:
            pipeline = ", ".join(names) or "empty"
            raise UserError(f"--passes {item}: {name} is not in the pipeline of target {target.name} ({pipeline})")
        if item[0] == "-":
            names.remove(name)
        elif name in names:
            notes.append(f"--passes {item}: {name} is already in the pipeline of target {target.name}")
        else:
            names.append(name)
    return names, notes


def target_names() -> list[str]:
    """Names of every target found (built-in, user folders, plugins), sorted."""
    return sorted(target_files())


def target_files() -> dict[str, TargetFile]:
    """The file of every named target, by name (the first found of each name)."""
    return _catalogue()[0]


def target_warnings() -> list[str]:
    """Targets ignored because an earlier source has the name, folders and plugins that failed."""
    return _catalogue()[1]


def is_target_file(text: str) -> bool:
    """Whether ``--target text`` names a file rather than a target."""
    return text.endswith(".json") or "/" in text or os.sep in text


def load_target(name: str) -> Target:
    """The target called ``name``, or read from the file ``name``; a bad one is a :class:`UserError`."""
    if is_target_file(name):
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"--target {name}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
        return read_target(text, name, source=f"file: {name}")
    files = target_files()
    if name not in files:
        close = difflib.get_close_matches(name, list(files), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known targets: {', '.join(sorted(files))}"
        raise UserError(f"unknown target '{name}'{hint}")
    found = files[name]
    return read_target(found.file.read_text(encoding="utf-8"), str(found.file), source=found.source, name=name)


def read_target(text: str, label: str, *, source: str, name: str | None = None) -> Target:
    """The target in the JSON ``text`` of the file ``label``; a fault is a :class:`UserError` giving
    the file and the JSON path (``$.pipeline[2]``). ``name``: the name the file must declare."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{label}: invalid JSON at {exc.lineno}:{exc.colno}: {exc.msg}") from None
    if source != BUILT_IN:  # the built-in targets are checked against the schema by the tests
        from jsonschema.exceptions import best_match

        error = best_match(_validator().iter_errors(data))
        if error is not None:
            raise UserError(f"{label}: {error.json_path}: {error.message}")
    if name is not None and data["name"] != name:
        raise UserError(f"{label}: $.name: {data['name']!r} differs from the file name {name}.json")
    low, high = data["opsets"]
    if low > high:
        raise UserError(f"{label}: $.opsets: {data['opsets']}: low above high")
    passes = all_passes()
    for index, entry in enumerate(data["pipeline"]):
        if entry not in passes:
            close = difflib.get_close_matches(entry, list(passes), n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UserError(f"{label}: $.pipeline[{index}]: {entry!r} is not a registered pass{hint}")
        reason = opt_in_reason(passes[entry])
        if reason:
            raise UserError(f"{label}: $.pipeline[{index}]: {reason}; it never enters a pipeline")
    for entry in data.get("why", {}):
        if entry not in data["pipeline"]:
            raise UserError(f"{label}: $.why.{entry}: {entry!r} is not in the pipeline")
    return Target(
        name=data["name"],
        description=data["description"],
        backend=data["backend"],
        soc_version=data["soc_version"],
        cann=data["cann"],
        opsets=(low, high),
        unsupported_ops=frozenset(data["unsupported_ops"]),
        capabilities=frozenset(data["capabilities"]),
        pipeline=tuple(data["pipeline"]),
        source=source,
        why=dict(data.get("why", {})),
    )


@functools.cache
def _validator():
    from jsonschema import Draft202012Validator

    schema = json.loads((resources.files("optimizer") / "data" / "target.schema.json").read_text(encoding="utf-8"))
    return Draft202012Validator(schema)


def _catalogue() -> tuple[dict[str, TargetFile], list[str]]:
    """Every named target's file, the first found of each name, and warnings about the rest."""
    files: dict[str, TargetFile] = {}
    warnings: list[str] = []
    for found in _sources(warnings):
        name = found.file.name.removesuffix(".json")
        kept = files.setdefault(name, found)
        if kept is not found:
            warnings.append(f"target '{name}' of {found.source} is ignored: the {kept.source} one comes first")
    return files, warnings


def _sources(warnings: list[str]) -> Iterator[TargetFile]:
    """Target files in lookup order: built-ins, ONNX_OPT_TARGETS folders, the user config folder, plugins."""
    yield from _json_files(resources.files("optimizer") / "data" / "targets", BUILT_IN)
    for folder in filter(None, os.environ.get(TARGETS_ENV, "").split(os.pathsep)):
        if not Path(folder).is_dir():
            warnings.append(f"{TARGETS_ENV} folder {folder} does not exist")
        yield from _json_files(Path(folder), TARGETS_ENV)
    yield from _json_files(Path(click.get_app_dir("onnx-opt")) / "targets", "user config")
    for point in _plugin_points(tuple(sys.path)):
        try:
            folder = resources.files(point.module)
        except Exception as exc:  # a broken plugin does not stop the tool
            warnings.append(f"target plugin '{point.name}' ({point.value}) failed to load: {exc}")
            continue
        yield from _json_files(folder, f"plugin {point.name}")


@functools.lru_cache(maxsize=4)
def _plugin_points(path: tuple[str, ...]) -> tuple[metadata.EntryPoint, ...]:
    """The ``onnx_opt.targets`` entry points of the distributions on ``path`` (``sys.path``), by
    distribution and name: scanning every installed distribution is most of a lookup's time, so it
    is done once per search path."""
    return tuple(point for _, point in entry_points_by_distribution(ENTRY_POINT_GROUP))


def _json_files(folder: Traversable, kind: str) -> Iterator[TargetFile]:
    if folder.is_dir():
        for entry in sorted(folder.iterdir(), key=lambda entry: entry.name):
            if entry.name.endswith(".json") and entry.is_file():
                yield TargetFile(entry, kind)
