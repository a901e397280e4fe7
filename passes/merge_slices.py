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

import numpy as np
import onnx_ir as ir

from optimizer.passapi import (
    Change,
    NodePass,
    PassContext,
    PassResult,
    Skip,
    constant,
    model_opset,
    node_label,
    register_pass,
    replace_nodes,
    sole_consumer,
)
from optimizer.slice_params import (
    INPUTS_OPSET,
    SliceParams,
    ambiguous,
    drop_unused_constants,
    is_slice,
    normalised_axes,
    selected,
    slice_params,
)


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
