"""``merge-slices``: Slice -> Slice becomes one Slice (msit KnowledgeMergeConsecutiveSlice).

``y = Slice(Slice(x, p1), p2)`` becomes ``y = Slice(x, p)`` when:

1. both are default-domain Slices in the same graph, and the inner Slice's output has no other
   consumer and is not a graph output;
2. every start, end, axis and step of both is a constant: inputs from opset 10 on (axes and
   steps optional), attributes before it (no steps: every step is 1); steps are never 0;
3. negative axes are counted from the rank (unknown rank -> refused), and no Slice names an
   axis twice;
4. on axes that only one of the two slices, ``p`` takes that Slice's start, end and step
   unchanged: slicing different axes commutes, whatever the dims;
5. on an axis both slice, the dim of ``x`` there is static. The inner Slice then picks the
   indices ``range(a1, b1, s1)`` of it, clamped as ONNX clamps, and the outer picks indices
   ``range(a2, b2, s2)`` of those: an arithmetic progression again, which ``p`` spells with a
   start and end inside the dim (and an end of ``-dim - 1`` to run down to index 0), any steps.
   A dynamic dim there is refused. Below opset 10 the steps are 1, so the merged step is too.
   An end of INT32_MAX or INT64_MAX on a negative step is refused there as well: the ONNX spec
   clamps it to ``dim - 1`` (an empty slice from the last index), onnxruntime reads it as "down
   to index 0"; the two disagree, so no index arithmetic is done on it.

The merged Slice is written in the model's form (inputs from opset 10, attributes before), with
int64 constants. A chain of Slices is merged in one run: each outer Slice merges with the
Slice it reads, which may be the one this run just wrote.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from optimizer.passapi import (
    Change,
    NodePass,
    PassContext,
    PassResult,
    Skip,
    const_ints,
    constant,
    model_opset,
    node_label,
    register_pass,
    replace_nodes,
    sole_consumer,
)

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


def compose(first: tuple[int, int, int], second: tuple[int, int, int], dim: int) -> tuple[int, int, int]:
    """(start, end, step) of one Slice picking what ``second`` picks of what ``first`` picks (rule 5)."""
    outer = selected(*first, dim)
    picks = selected(*second, len(outer))
    if not picks:
        return 0, 0, 1
    start = outer[picks[0]]
    if len(picks) == 1:
        return start, start + 1, 1
    step = outer.step * picks.step
    last = start + step * (len(picks) - 1)
    end = last + 1 if step > 0 else last - 1
    return start, end if end >= 0 else -dim - 1, step


@register_pass
class MergeSlices(NodePass):
    name = "merge-slices"
    summary = "Merge Slice -> Slice into one Slice (different axes always; one axis twice when its dim is static)"
    addresses = ("Slice",)

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        """Walk the nodes, not looking again at the Slices this run writes."""
        self._made: set[ir.Node] = set()
        return super().run(model, ctx)

    def rewrite(self, node: ir.Node, model: ir.Model, ctx: PassContext) -> Change | Skip | None:
        """Merge the Slice ``node`` with the Slice it reads, or say why not."""
        inner = node.inputs[0].producer() if is_slice(node) and node.inputs[0] is not None else None
        if not is_slice(inner) or node in getattr(self, "_made", ()):
            return None
        label = node_label(node)
        if problem := ctx.scope_problem(model, inner, node):
            return Skip(label, problem)
        if not sole_consumer(inner.outputs[0], node):
            return Skip(label, f"the inner Slice {node_label(inner)!r} has another consumer or is a graph output")
        opset = model_opset(model)
        merged = self._merged(inner, node, opset, model, ctx)
        if isinstance(merged, str):
            return Skip(label, merged)
        x, base = inner.inputs[0], node.name or node.outputs[0].name
        if opset < INPUTS_OPSET:
            attributes = {"starts": merged.starts, "ends": merged.ends, "axes": merged.axes}
            constants, replacement = [], ir.node("Slice", [x], attributes, name=node.name)
        else:
            parts = {"starts": merged.starts, "ends": merged.ends, "axes": merged.axes, "steps": merged.steps}
            constants = [
                constant(ctx.fresh_name(model, f"{base}/{what}"), np.array(values, dtype=np.int64))
                for what, values in parts.items()
            ]
            replacement = ir.node("Slice", [x, *(c.outputs[0] for c in constants)], name=node.name)
        old_parameters = [*inner.inputs[1:], *node.inputs[1:]]
        replace_nodes([inner, node], [*constants, replacement], node.outputs[0], replacement.outputs[0])
        drop_unused_constants(old_parameters)
        getattr(self, "_made", set()).add(replacement)
        return Change(f"two Slices -> one Slice over axes {merged.axes}", (node_label(inner), label))

    def _merged(
        self, inner: ir.Node, outer: ir.Node, opset: int, model: ir.Model, ctx: PassContext
    ) -> SliceParams | str:
        """The parameters of the one Slice (rules 2-5), or why there is none."""
        dims = ctx.dims_of(inner.inputs[0], model)
        rank = None if dims is None else len(dims)
        picks: dict[int, tuple[int, int, int]] = {}
        for node in (inner, outer):
            params = slice_params(node, opset)
            if isinstance(params, str):
                return params
            axes = normalised_axes(params, rank)
            if isinstance(axes, str):
                return ctx.unknown_shape(f"{node_label(node)!r}: {axes}", model) if rank is None else axes
            for axis, start, end, step in zip(axes, params.starts, params.ends, params.steps, strict=True):
                if axis not in picks:
                    picks[axis] = (start, end, step)
                elif dims is None or dims[axis] is None:
                    return ctx.unknown_shape(f"both Slices cut axis {axis}, whose dim is not static", model)
                elif problem := ambiguous(picks[axis][1], picks[axis][2]) or ambiguous(end, step):
                    return f"both Slices cut axis {axis}: {problem}"
                else:
                    picks[axis] = compose(picks[axis], (start, end, step), dims[axis])
        axes = list(picks)
        starts, ends, steps = ([picks[axis][i] for axis in axes] for i in range(3))
        return SliceParams(starts, ends, axes, steps)
