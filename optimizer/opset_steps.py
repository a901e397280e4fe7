"""Which nodes onnx's version converter changes on the way up, read from its own registry.

The converter (``onnx/version_converter/convert.h``) walks the opsets one at a time and, at each
step where an operator has a new version, applies the adapter registered for that operator and
step; without one it fails. Most of those adapters are ``CompatibleAdapter``, which changes
nothing (the new version only widens types). onnx ships the header with its wheel, so the
compatible steps are read from the installed onnx itself: a node none of whose steps does
anything need not go through the converter at all. A step registered in any other way, and
every step when the header cannot be read, counts as one that changes the node.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import onnx
import onnx_ir as ir

_COMPATIBLE = re.compile(r'make_unique<CompatibleAdapter>\(\s*"(\w+)"\s*,\s*OpSetID\((\d+)\)\s*,\s*OpSetID\((\d+)\)')
# every other registration that names its operator and versions (GenericAdapter and adapter classes)
_OTHER = re.compile(
    r'registerAdapter\(\s*"(\w+)"\s*,\s*(\d+)\s*,\s*(\d+)'
    r'|make_unique<(?!CompatibleAdapter>)\w+>\(\s*"(\w+)"\s*,\s*OpSetID\((\d+)\)\s*,\s*OpSetID\((\d+)\)'
)
# an adapter class that names its operator and versions itself (adapters/*.h)
_CLASS = re.compile(r'\bAdapter\(\s*"(\w+)"\s*,\s*OpSetID\((\d+)\)\s*,\s*OpSetID\((\d+)\)')
# ops the converter leaves as they are, whatever the opset (convert.cc)
_LEFT_ALONE = frozenset({"ConstantFill", "Undefined", "Captured"})


def converter_header() -> Path:
    """Where the installed onnx keeps its version converter's adapter registry."""
    return Path(onnx.__file__).parent / "version_converter" / "convert.h"


@cache
def compatible_steps() -> frozenset[tuple[str, int]]:
    """The (operator, opset) pairs whose upward step to opset + 1 onnx's converter leaves alone."""
    header = converter_header()
    try:
        text = re.sub(r"//[^\n]*", "", header.read_text(encoding="utf-8"))
        classes = [path.read_text(encoding="utf-8") for path in sorted((header.parent / "adapters").glob("*.h"))]
    except (OSError, UnicodeDecodeError):
        return frozenset()
    compatible = {(op, int(low), int(high)) for op, low, high in _COMPATIBLE.findall(text)}
    others = {(op, int(low), int(high)) for source in classes for op, low, high in _CLASS.findall(source)}
    for match in _OTHER.finditer(text):
        op, low, high = match.group(1, 2, 3) if match.group(1) else match.group(4, 5, 6)
        others.add((op, int(low), int(high)))
    return frozenset((op, low) for op, low, high in compatible - others if high == low + 1)


@cache
def _versions() -> dict[str, frozenset[int]]:
    """The opsets at which each default-domain operator got a new version."""
    versions: dict[str, set[int]] = {}
    for schema in onnx.defs.get_all_schemas_with_history():
        if schema.domain in ("", "ai.onnx"):
            versions.setdefault(schema.name, set()).add(schema.since_version)
    return {name: frozenset(found) for name, found in versions.items()}


def converter_changes(node: ir.Node, opset: int, target: int) -> bool:
    """Whether onnx's converter, going from ``opset`` up to ``target``, would do more to ``node``
    than relabel it (or fail on it: an operator onnx does not know counts as changed)."""
    if node.domain not in ("", "ai.onnx") or node.op_type in _LEFT_ALONE:
        return False
    return _operator_changes(node.op_type, opset, target, compatible_steps())


@cache
def _operator_changes(op_type: str, opset: int, target: int, compatible: frozenset[tuple[str, int]]) -> bool:
    """:func:`converter_changes` for a default-domain operator (the same for each of its nodes)."""
    versions = _versions().get(op_type)
    if versions is None:
        return True
    return any(step + 1 in versions and (op_type, step) not in compatible for step in range(opset, target))
