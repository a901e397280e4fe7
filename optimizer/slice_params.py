"""Slice's parameters at every opset (attributes before 10, inputs from 10), as the passes that
read Slices need them: constant starts / ends / axes / steps, axes counted from 0, the indices a
slice picks under ONNX's clamping, and the ends the spec and onnxruntime read differently."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import onnx_ir as ir

from optimizer.passapi import const_ints, node_label

T = TypeVar("T")

INPUTS_OPSET = 10  # Slice takes starts / ends / axes / steps as inputs from opset 10
MAX_ENDS = (2**31 - 1, 2**63 - 1)  # "to the end": read differently by the spec and onnxruntime on negative steps


@dataclass(frozen=True)
class SliceParams:
    """The constant parameters of one Slice, axis by axis (raw axes, as written)."""

    starts: list[int]
    ends: list[int]
    axes: list[int]
    steps: list[int]


def is_slice(node: ir.Node | None) -> bool:
    """Whether ``node`` is a default-domain Slice."""
    return node is not None and node.op_type == "Slice" and node.domain in ("", "ai.onnx")


def slice_params(node: ir.Node, opset: int) -> SliceParams | str:
    """The constant parameters of the Slice ``node`` at ``opset`` (rule 2), or why there are none."""
    if opset < INPUTS_OPSET:
        starts, ends = node.attributes.get_ints("starts", None), node.attributes.get_ints("ends", None)
        axes, steps = node.attributes.get_ints("axes", None), None
    else:
        given = [*node.inputs[1:5], *[None] * (5 - len(node.inputs))]  # starts, ends, axes, steps
        starts, ends, axes, steps = (const_ints(value) for value in given)
        for what, value, ints in (("axes", given[2], axes), ("steps", given[3], steps)):
            if value is not None and ints is None:
                return f"the {what} of {node_label(node)!r} are not constant"
    if starts is None or ends is None:
        return f"the starts or ends of {node_label(node)!r} are not constant"
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else list(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        return f"the starts, ends, axes and steps of {node_label(node)!r} differ in length"
    if 0 in steps:
        return f"{node_label(node)!r} has a step of 0"
    return SliceParams(list(starts), list(ends), axes, steps)


def normalised_axes(params: SliceParams, rank: int | None) -> list[int] | str:
    """The axes counted from 0 (rule 3), or why they cannot be."""
    if any(axis < 0 for axis in params.axes) and rank is None:
        return "a negative axis needs the rank, which is unknown"
    axes = [axis % rank if axis < 0 else axis for axis in params.axes]
    if len(set(axes)) != len(axes) or (rank is not None and any(axis >= rank for axis in axes)):
        return f"the axes {params.axes} repeat an axis or are out of range"
    return axes


def ambiguous(end: int, step: int) -> str | None:
    """Why an axis's end cannot be turned into indices (rule 5), or None."""
    if step < 0 and end in MAX_ENDS:
        return f"end {end} on step {step} means index 0 to onnxruntime but dim - 1 to the ONNX spec"
    return None


def drop_unused_constants(values: list[ir.Value | None]) -> None:
    """Remove the Constant nodes producing ``values`` that nothing reads any more."""
    for value in values:
        node = None if value is None else value.producer()
        if node is not None and node.graph is not None and node.op_type == "Constant" and not value.uses() \
                and not value.is_graph_output():
            node.graph.remove(node, safe=True)


def selected(start: int, end: int, step: int, dim: int) -> range:
    """The indices of a dim of size ``dim`` that Slice(start, end, step) picks, as ONNX clamps."""
    if dim == 0:
        return range(0)
    start, end = (start + dim if start < 0 else start), (end + dim if end < 0 else end)
    if step > 0:
        return range(min(max(start, 0), dim), min(max(end, 0), dim), step)
    return range(min(max(start, 0), dim - 1), min(max(end, -1), dim - 1), step)


def sliced_vector(node: ir.Node, items: Sequence[T]) -> list[T] | None:
    """The items a Slice of one 1-D axis with constant parameters picks from ``items`` (the
    vector's entries, in order), or None when the Slice is not of that form."""
    if len(node.inputs) > 1:  # opset >= 10: starts, ends, axes, steps are inputs
        params = [const_ints(v) if v is not None else [] for v in node.inputs[1:5]]
        if any(p is None for p in params):
            return None
        starts, ends, axes, steps = params + [[]] * (4 - len(params))
    else:
        starts, ends = node.attributes.get_ints("starts", []), node.attributes.get_ints("ends", [])
        axes, steps = node.attributes.get_ints("axes", []), []
    steps = steps or [1]
    if len(starts) != 1 or len(ends) != 1 or (axes or [0])[0] not in (0, -1) or steps[0] == 0:
        return None
    return list(items[slice(starts[0], ends[0], steps[0])])  # ONNX clamps as Python does
