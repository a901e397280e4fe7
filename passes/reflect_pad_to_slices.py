"""``reflect-pad-to-slices``: Pad(mode=reflect) becomes, per padded axis, negative-step Slices (the
mirrored parts) and a Concat (msit KnowledgeModifyReflectionPad); reflect padding is unsupported
or slow on some CANN versions.

ONNX's reflect mode (numpy's ``reflect``) mirrors about the edge element without repeating it: on
an axis of length L padded by ``b`` before and ``e`` after, the result is
``x[b], x[b-1], .., x[1], x[0], .., x[L-1], x[L-2], .., x[L-1-e]``. The part before is
``Slice(starts=b, ends=0, steps=-1)`` and the part after ``Slice(starts=-2, ends=-2-e, steps=-1)``
(for e = L-1 the end -L-1 is clamped to "before index 0", as ONNX defines for negative steps).
Padding several axes is padding one after the other (the corners are mirrors of mirrors, as in
numpy), and padding one axis leaves the others' lengths alone. The rewrite is done when:

1. the node is a default-domain Pad with ``mode="reflect"``;
2. the pads are constants: the ``pads`` attribute before opset 11, the ``pads`` input from 11; from
   opset 18 an ``axes`` input, when given, must be constant too (pads then has 2 * len(axes)
   entries); ``constant_value`` means nothing for reflect;
3. no pad is negative (cropping is refused rather than mixed in);
4. every padded axis has a static length L in the model, and both pads on it are < L (reflect
   needs that many elements besides the edge; a dynamic L cannot be shown to have them);
5. pads all 0: the Pad is an Identity.

The pass requires opset >= 10, where Slice takes ``steps`` (the flips). Its output holds no Pad,
so a second run changes nothing.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from optimizer.passapi import (
    Change,
    NodePass,
    PassContext,
    Requires,
    Skip,
    const_ints,
    constant,
    model_opset,
    node_label,
    register_pass,
    replace_nodes,
)

PADS_INPUT_OPSET = 11  # Pad takes pads as an input from here
AXES_OPSET = 18  # Pad takes an optional axes input from here


@register_pass
class ReflectPadToSlices(NodePass):
    name = "reflect-pad-to-slices"
    summary = "Rewrite Pad(mode=reflect) with constant pads as negative-step Slices and a Concat per axis"
    addresses = ("Pad",)
    requires = Requires(opsets=(10, None))  # Slice has steps (negative: a flip) from opset 10

    def rewrite(self, node: ir.Node, model: ir.Model, ctx: PassContext) -> Change | Skip | None:
        """Replace a reflect Pad by Slices and Concats, or say why not."""
        if node.op_type != "Pad" or node.domain not in ("", "ai.onnx"):
            return None
        if node.attributes.get_string("mode", "constant") != "reflect":
            return None
        label = node_label(node)
        x = node.inputs[0]
        dims = ctx.dims_of(x, model)
        pads = _pads(node, model_opset(model), dims)
        if isinstance(pads, str):
            return Skip(label, pads)
        if any(before < 0 or after < 0 for before, after in pads.values()):
            return Skip(label, f"negative pads {_listed(pads)} crop; only growing pads are rewritten")
        padded = {axis: pad for axis, pad in sorted(pads.items()) if any(pad)}
        base = node.name or node.outputs[0].name
        if not padded:
            identity = ir.node("Identity", [x], name=base)
            replace_nodes([node], [identity], node.outputs[0], identity.outputs[0])
            return Change("Pad(mode=reflect) with pads all 0 -> Identity", (label,))
        for axis, (before, after) in padded.items():
            length = dims[axis] if dims is not None else None
            if length is None:
                reason = f"axis {axis} is padded and its length is not static; reflect needs it to exceed the pads"
                return Skip(label, ctx.unknown_shape(reason, model))
            if max(before, after) >= length:
                return Skip(label, f"pads ({before}, {after}) on axis {axis} are not smaller than its length {length}")
        new_nodes: list[ir.Node] = []
        value = x
        for axis, (before, after) in padded.items():
            value = self._pad_axis(value, axis, before, after, f"{base}/axis{axis}", new_nodes, model, ctx)
        replace_nodes([node], new_nodes, node.outputs[0], value)
        return Change(f"Pad(mode=reflect, pads {_listed(padded)}) -> Slices and Concats", (label,))

    def _pad_axis(
        self, value: ir.Value, axis: int, before: int, after: int, base: str, new_nodes: list[ir.Node],
        model: ir.Model, ctx: PassContext,
    ) -> ir.Value:
        """Append the Slices and the Concat that reflect-pad ``value`` on ``axis``; their output."""

        def const(name: str, number: int) -> ir.Value:
            node = constant(ctx.fresh_name(model, f"{base}/{name}"), np.array([number], np.int64))
            new_nodes.append(node)
            return node.outputs[0]

        axes, steps = const("axes", axis), const("steps", -1)
        parts = []
        for side, start, end, size in (("before", before, 0, before), ("after", -2, -2 - after, after)):
            if size:
                piece = ir.node("Slice", [value, const(f"{side}_start", start), const(f"{side}_end", end), axes, steps],
                                name=f"{base}/{side}")
                piece.outputs[0].name = ctx.fresh_name(model, piece.name)
                new_nodes.append(piece)
                parts.append(piece.outputs[0])
        parts.insert(1 if before else 0, value)
        concat = ir.node("Concat", parts, {"axis": axis}, name=f"{base}/concat")
        concat.outputs[0].name = ctx.fresh_name(model, concat.name)
        new_nodes.append(concat)
        return concat.outputs[0]


def _pads(node: ir.Node, opset: int, dims: list[int | None] | None) -> dict[int, tuple[int, int]] | str:
    """(before, after) per axis from the constant pads and axes (rule 2), or why they are not known."""
    if opset < PADS_INPUT_OPSET:
        pads = node.attributes.get_ints("pads", None)
        pads = None if pads is None else [int(p) for p in pads]
    else:
        pads = const_ints(node.inputs[1]) if len(node.inputs) > 1 else None
    if pads is None:
        return "the pads are not a constant (the simplify pass folds computed pads)"
    axes_input = node.inputs[3] if opset >= AXES_OPSET and len(node.inputs) > 3 else None
    if axes_input is None:
        axes = list(range(len(pads) // 2))
    else:
        axes = const_ints(axes_input)
        if axes is None:
            return "the axes are not a constant"
        if dims is None:
            return "the rank of the padded tensor is unknown"
        axes = [axis % len(dims) for axis in axes]
    if len(pads) != 2 * len(axes) or (dims is not None and len(axes) > len(dims)):
        return f"pads {pads} do not fit the axes {axes}"
    return {axis: (pads[i], pads[i + len(axes)]) for i, axis in enumerate(axes)}


def _listed(pads: dict[int, tuple[int, int]]) -> str:
    return ", ".join(f"axis {axis}: {before}/{after}" for axis, (before, after) in pads.items())
