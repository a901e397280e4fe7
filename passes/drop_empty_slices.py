"""``drop-empty-slices``: a Slice that is provably empty along a Concat's axis is dropped from the
Concat's inputs (msit KnowledgeEmptySliceFix).

ATC's Concat rejects empty inputs. Removing an input with no elements along the joined axis
leaves the Concat's output unchanged, so the rewrite is exact and the pass is an ordinary one.
An input ``s = Slice(x, ...)`` of ``Concat(axis=a)`` is removed when:

1. the Slice is a default-domain Slice in the Concat's graph with constant parameters (inputs
   from opset 10, attributes before it), and ``a`` and the Slice's axes are counted from the
   rank when negative;
2. ``s`` has length 0 along ``a`` for every input the model accepts:

   a. the Slice cuts ``a`` and the dim of ``x`` there is static: the indices it picks, clamped
      as ONNX clamps, are none;
   b. the Slice cuts ``a`` and the dim is dynamic: for a positive step, start >= end with both
      non-negative or both negative; for a negative step, start <= end with both non-negative
      (with both negative the clamped start can pick index 0, so that is not proof);
   c. the Slice does not cut ``a`` and the dim of ``x`` there is a static 0;

   an end of INT32_MAX or INT64_MAX on a negative step is never proof (the ONNX spec and
   onnxruntime read it differently);
3. ``s`` has no other consumer and is not a graph output (then the Slice goes too), and the
   Concat keeps at least one input. Otherwise the Concat is refused with the reason.

A Slice whose emptiness cannot be proved is no candidate. Emptiness along another axis is not
enough: the Concat's other inputs would then be empty there too, but the Slice could still add
to the length along ``a``.
"""

from __future__ import annotations

import onnx_ir as ir

from optimizer.passapi import (
    Change,
    NodePass,
    PassContext,
    Skip,
    model_opset,
    node_label,
    register_pass,
    sole_consumer,
)
from optimizer.slice_params import (
    ambiguous,
    drop_unused_constants,
    is_slice,
    normalised_axes,
    selected,
    slice_params,
)


def provably_empty(start: int, end: int, step: int, dim: int | None) -> bool:
    """Whether Slice(start, end, step) of a dim picks nothing, for every size ``dim`` may have (rule 2)."""
    if ambiguous(end, step):
        return False
    if dim is not None:
        return not selected(start, end, step, dim)
    if step > 0:
        return start >= end and (start >= 0) == (end >= 0)
    return start <= end and start >= 0


@register_pass
class DropEmptySlices(NodePass):
    name = "drop-empty-slices"
    summary = "Drop Slices that are provably empty along the axis from the inputs of a Concat (ATC rejects them)"
    addresses = ("Concat", "Slice")

    def rewrite(self, node: ir.Node, model: ir.Model, ctx: PassContext) -> Change | Skip | None:
        """Remove the provably empty Slice inputs of the Concat ``node``, or say why not."""
        if node.op_type != "Concat" or node.domain not in ("", "ai.onnx"):
            return None
        empty = {value: None for value in node.inputs if self._empty_along(node, value, model, ctx)}  # ordered set
        if not empty:
            return None
        label = node_label(node)
        shared = [value for value in empty if not sole_consumer(value, node)]
        if shared:
            return Skip(label, f"the empty Slice output {shared[0].name!r} has another consumer or is a graph output")
        kept = [value for value in node.inputs if value not in empty]
        if not kept:
            return Skip(label, "every input of the Concat is empty along its axis; it would be left with none")
        node.resize_inputs(len(kept))
        for index, value in enumerate(kept):
            node.replace_input_with(index, value)
        slices = [value.producer() for value in empty]
        parameters = [parameter for piece in slices for parameter in piece.inputs[1:]]
        node.graph.remove(slices, safe=True)
        drop_unused_constants(parameters)
        return Change(f"{len(slices)} empty Slice(s) dropped from the Concat", (*map(node_label, slices), label))

    def _empty_along(self, concat: ir.Node, value: ir.Value | None, model: ir.Model, ctx: PassContext) -> bool:
        """Whether ``value`` is a Slice output with length 0 along the Concat's axis (rules 1-2)."""
        piece = None if value is None else value.producer()
        if not is_slice(piece) or piece.graph is not concat.graph:
            return False
        params = slice_params(piece, model_opset(model))
        dims = ctx.dims_of(piece.inputs[0], model)
        if isinstance(params, str) or dims is None:
            return False
        rank, axis = len(dims), concat.attributes.get_int("axis", 0)
        axes = normalised_axes(params, rank)
        if isinstance(axes, str) or not -rank <= axis < rank:
            return False
        axis %= rank
        if axis not in axes:
            return dims[axis] == 0
        index = axes.index(axis)
        return provably_empty(params.starts[index], params.ends[index], params.steps[index], dims[axis])
