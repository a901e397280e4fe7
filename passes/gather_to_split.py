"""``gather-to-split``: Gathers that partition an axis become one Split (msit KnowledgeGatherToSplit).

The Gathers of one tensor ``x`` along one axis, in one graph, become ``Split(x, axis)`` when:

1. there are at least two of them (default domain), and the axis (negative counted from the
   rank; unknown rank -> refused) is the same for all;
2. the dim of ``x`` along the axis is static (dynamic -> refused);
3. every one has constant indices, a scalar or a 1-D run of consecutive increasing indices,
   negative indices counted from the dim; any other indices, an index out of range or an empty
   run -> refused;
4. the runs are disjoint and cover the axis exactly; a gap (partial coverage) or an overlap ->
   refused, naming the first offending index.

Each 1-D Gather's output becomes the Split output of its run; a scalar Gather drops the axis, so
its Split output (length 1) goes through ``Squeeze(axis)``. The Split gets its sizes as the
``split`` attribute below opset 13 and as an input from 13 (also at 18, where ``num_outputs``
could be used instead); Squeeze gets ``axes`` as an attribute below 13 and as an input from 13.
The new nodes go where the first Gather was, so every user of a Gather still follows them.
Gathers of ``x`` in other graphs (If / Loop bodies reading it) are not part of the group.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from optimizer.passapi import (
    Change,
    NodePass,
    PassContext,
    PassResult,
    Requires,
    Skip,
    const_tensor,
    constant,
    model_opset,
    node_label,
    register_pass,
)
from optimizer.slice_params import drop_unused_constants

INPUTS_OPSET = 13  # Split's sizes and Squeeze's axes are inputs from opset 13


def _is_gather(node: ir.Node) -> bool:
    return node.op_type == "Gather" and node.domain in ("", "ai.onnx")


def _axis(node: ir.Node, rank: int | None) -> int | None:
    axis = node.attributes.get_int("axis", 0)
    if axis >= 0:
        return axis
    return None if rank is None else axis + rank


def run_of(gather: ir.Node, dim: int) -> tuple[int, int, bool] | str:
    """(start, stop, scalar) of the indices of ``gather`` (rule 3), or why they are not a run."""
    tensor = const_tensor(gather.inputs[1])
    label = node_label(gather)
    if tensor is None:
        return f"the indices of {label!r} are not constant"
    array = tensor.numpy()
    if array.ndim > 1 or not np.issubdtype(array.dtype, np.integer):
        return f"the indices of {label!r} are not a scalar or a 1-D integer tensor"
    indices = [int(i) + dim if i < 0 else int(i) for i in array.reshape(-1)]
    if not indices:
        return f"{label!r} gathers no index"
    if any(not 0 <= i < dim for i in indices):
        return f"the indices of {label!r} leave the axis of size {dim}"
    if indices != list(range(indices[0], indices[0] + len(indices))):
        return f"the indices of {label!r} are not consecutive and increasing"
    return indices[0], indices[0] + len(indices), array.ndim == 0


@register_pass
class GatherToSplit(NodePass):
    name = "gather-to-split"
    summary = "Replace Gathers whose constant indices partition an axis by one Split (and Squeeze for scalar ones)"
    addresses = ("Gather",)
    requires = Requires(opsets=(2, None))  # Split-2 on: sizes in the `split` attribute or input

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        """Walk the nodes, looking at each (tensor, axis, graph) group once."""
        self._seen: set[tuple[ir.Value, int, ir.Graph]] = set()
        return super().run(model, ctx)

    def rewrite(self, node: ir.Node, model: ir.Model, ctx: PassContext) -> Change | Skip | None:
        """Split the tensor ``node`` gathers from, if its group of Gathers partitions the axis."""
        if not _is_gather(node) or len(node.inputs) < 2 or node.inputs[0] is None:
            return None
        x, label = node.inputs[0], node_label(node)
        dims = ctx.dims_of(x, model)
        rank = None if dims is None else len(dims)
        axis = _axis(node, rank)
        if axis is None:
            return Skip(label, ctx.unknown_shape("a negative axis needs the rank, which is unknown", model))
        key = (x, axis, node.graph)
        if key in self._seen:
            return None
        self._seen.add(key)
        group = list(dict.fromkeys(
            use.node for use in x.uses()
            if use.idx == 0 and _is_gather(use.node) and use.node.graph is node.graph and _axis(use.node, rank) == axis
        ))
        if len(group) < 2:
            return None
        if dims is None or axis >= rank or dims[axis] is None:
            return Skip(label, ctx.unknown_shape(f"the dim of axis {axis} is not static", model))
        runs = []
        for gather in group:
            found = run_of(gather, dims[axis])
            if isinstance(found, str):
                return Skip(label, found)
            runs.append((*found, gather))
        runs.sort(key=lambda run: run[0])
        covered = 0
        for start, stop, _, gather in runs:
            if start != covered:
                what = "overlaps the run before it" if start < covered else f"leaves indices {covered}..{start - 1} out"
                return Skip(label, f"{node_label(gather)!r} {what}")
            covered = stop
        if covered != dims[axis]:
            return Skip(label, f"the Gathers leave indices {covered}..{dims[axis] - 1} of axis {axis} out")
        self._split(node, x, axis, runs, model, ctx)
        return Change(f"{len(runs)} Gathers along axis {axis} -> Split", tuple(node_label(run[3]) for run in runs))

    def _split(self, first: ir.Node, x: ir.Value, axis: int, runs: list, model: ir.Model, ctx: PassContext) -> None:
        """Put the Split (and Squeezes) where ``first`` is and hand them the Gathers' users."""
        opset = model_opset(model)
        base = first.name or first.outputs[0].name
        sizes = [stop - start for start, stop, _, _ in runs]
        nodes = []
        name = ctx.fresh_name(model, f"{base}/split")
        if opset < INPUTS_OPSET:
            split = ir.node("Split", [x], {"axis": axis, "split": sizes}, num_outputs=len(runs), name=name)
        else:
            nodes.append(constant(ctx.fresh_name(model, f"{base}/sizes"), np.array(sizes, dtype=np.int64)))
            split = ir.node("Split", [x, nodes[0].outputs[0]], {"axis": axis}, num_outputs=len(runs), name=name)
        nodes.append(split)
        gathers, finals = [], []
        for output, (_, _, scalar, gather) in zip(split.outputs, runs, strict=True):
            output.name = ctx.fresh_name(model, f"{base}/part")
            if scalar:
                if opset < INPUTS_OPSET:
                    squeeze = ir.node("Squeeze", [output], {"axes": [axis]}, name=gather.name)
                else:
                    axes = constant(ctx.fresh_name(model, f"{base}/axes"), np.array([axis], dtype=np.int64))
                    squeeze = ir.node("Squeeze", [output, axes.outputs[0]], name=gather.name)
                    nodes.append(axes)
                nodes.append(squeeze)
                output = squeeze.outputs[0]
            gathers.append(gather)
            finals.append(output)
        graph = first.graph
        graph.insert_before(first, nodes)
        olds = [gather.outputs[0] for gather in gathers]
        for old, new in zip(olds, finals, strict=True):
            new.type, new.shape = old.type, old.shape
        ir.convenience.replace_all_uses_with(olds, finals, replace_graph_outputs=True)
        indices = [gather.inputs[1] for gather in gathers]
        graph.remove(gathers, safe=True)
        drop_unused_constants(indices)
        for old, new in zip(olds, finals, strict=True):
            new.name = old.name
