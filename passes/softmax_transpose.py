"""``softmax-transpose``: Transpose(p) -> Softmax / LogSoftmax -> Transpose(q) becomes one
Softmax / LogSoftmax over the matching axis of the original tensor (SK-ResNet50 guide).

PyTorch's exporter wraps ``softmax(dim=k)`` for k != last in two transposes at opsets < 13.
With ``x`` of rank r, ``t = Transpose(x, p)``, ``s = Softmax(t, axis=a)``, ``y = Transpose(s, q)``
the rewrite ``y = Softmax(x, axis=p[a])`` is exact when:

1. ``q`` undoes ``p`` (``p[q[i]] == i`` for every i), so ``y`` has the shape of ``x``;
2. neither ``t`` nor ``s`` has another consumer or is a graph output (``y`` may be one);
3. the softmax normalises one axis of ``t``: from opset 13 always; before opset 13 Softmax
   flattens every dim from ``axis`` on, so every dim of ``t`` after ``a`` must be 1;
4. before opset 13 the replacement flattens too: every dim of ``x`` after ``p[a]`` must be 1.
   When that fails (the SK unit: ``x = [B, M, C, 1, 1]``, axis 1, C > 1) the nodes stay and
   the reason says that ``--opset 13`` enables the rewrite. The seed guide's script, which
   set ``axis=1`` here regardless, computes a different function under ONNX rules;
5. rule 4 also holds when the model is at opset 13 but will be saved below it (``--opset 11``):
   the saved Softmax is read with the old, flattening meaning;
6. the three nodes lie in one scope (a Transpose of the main graph feeding a Softmax inside an
   If branch is left alone).

Shape inference runs once per pass run, before any rewrite, so the output of each rewritten
Softmax is remembered as having the dims of its ``x`` for the candidates after it: a chain of
sandwiches is rewritten in one run, and a second run changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx_ir as ir

from optimizer.passapi import (
    Change,
    NodePass,
    PassContext,
    PassResult,
    Skip,
    model_opset,
    node_label,
    register_pass,
    replace_nodes,
    sole_consumer,
)

SOFTMAXES = ("Softmax", "LogSoftmax")
PER_AXIS_OPSET = 13  # Softmax normalises a single axis from this opset on


@register_pass
class SoftmaxTranspose(NodePass):
    name = "softmax-transpose"
    summary = "Fold Transpose -> Softmax/LogSoftmax -> Transpose into one Softmax over the original axis"
    addresses = ("Transpose", "Softmax", "LogSoftmax")

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        """Walk the nodes, remembering that each new Softmax's output has the dims of its input."""
        self._same_dims: dict[ir.Value, ir.Value] = {}
        return super().run(model, ctx)

    def dims_of(self, value: ir.Value, model: ir.Model, ctx: PassContext) -> list[int | None] | None:
        """Dims of ``value``; for the output of a Softmax this run wrote, those of its input."""
        return ctx.dims_of(getattr(self, "_same_dims", {}).get(value, value), model)

    def rewrite(self, node: ir.Node, model: ir.Model, ctx: PassContext) -> Change | Skip | None:
        """Rewrite the sandwich whose middle is ``node``, or say why not."""
        if node.op_type not in SOFTMAXES or node.domain not in ("", "ai.onnx"):
            return None
        first = node.inputs[0].producer() if node.inputs and node.inputs[0] is not None else None
        lasts = [use.node for use in node.outputs[0].uses() if use.node.op_type == "Transpose"]
        if first is None or first.op_type != "Transpose" or not lasts:
            return None
        last = lasts[0]
        label = node_label(node)
        if problem := ctx.scope_problem(model, first, node, last):
            return Skip(label, problem)
        x, t, s = first.inputs[0], first.outputs[0], node.outputs[0]
        rank = _rank(first, lambda: self.dims_of(x, model, ctx))
        if rank is None:
            return Skip(label, ctx.unknown_shape("rank of the transposed tensor is unknown", model))
        p = _perm(first, rank)
        q = _perm(last, rank)
        if p is None or q is None:
            return Skip(label, "a transpose has an invalid perm")
        if any(p[q[i]] != i for i in range(rank)):
            return Skip(label, f"perm {q} of {node_label(last)} does not undo perm {p} of {node_label(first)}")
        if not sole_consumer(t, node) or not sole_consumer(s, last):
            return Skip(label, "an intermediate tensor has another consumer or is a graph output")
        opset = model_opset(model)
        default_axis = -1 if opset >= PER_AXIS_OPSET else 1
        axis = node.attributes.get_int("axis", default_axis)
        if not -rank <= axis < rank:
            return Skip(label, f"axis {axis} is out of range for rank {rank}")
        axis %= rank
        new_axis = p[axis]
        saved = min(opset, ctx.final_opset or opset)
        if saved < PER_AXIS_OPSET:
            dims = self.dims_of(x, model, ctx)
            reason = _flattening_problem(dims, p, axis, new_axis, opset, saved)
            if reason:
                return Skip(label, reason if dims is not None else ctx.unknown_shape(reason, model))
        # the softmax itself stays, on x: the two transposes go, and its output takes over y
        node.replace_input_with(0, x)
        node.attributes["axis"] = ir.AttrInt64("axis", new_axis)
        s.shape = last.outputs[0].shape  # x's layout now, not t's (unknown stays unknown)
        replace_nodes([first, last], [], last.outputs[0], s)
        same = getattr(self, "_same_dims", {})
        same[s] = same.get(x, x)  # one step to a value inference knows
        return Change(
            f"{node.op_type}(axis={new_axis}) replaces Transpose -> {node.op_type}(axis={axis}) -> Transpose",
            (node_label(first), label, node_label(last)),
        )


def _rank(first: ir.Node, dims_of_x: Callable[[], list[int | None] | None]) -> int | None:
    perm = first.attributes.get_ints("perm", None)
    if perm is not None:
        return len(perm)
    dims = dims_of_x()
    return None if dims is None else len(dims)


def _perm(node: ir.Node, rank: int) -> list[int] | None:
    perm = node.attributes.get_ints("perm", None)
    perm = list(range(rank))[::-1] if perm is None else [int(v) for v in perm]
    return perm if sorted(perm) == list(range(rank)) else None


def _flattening_problem(
    dims: list[int | None] | None, p: list[int], axis: int, new_axis: int, opset: int, saved: int
) -> str | None:
    """Below opset 13 (now or once saved): why the old or the new Softmax is not a single-axis softmax."""
    hint = f"--opset {PER_AXIS_OPSET} enables this rewrite"
    where = f"at opset {saved}" if saved == opset else f"saved at opset {saved}"
    if dims is None or len(dims) != len(p):
        return (
            f"{where} Softmax flattens from its axis and the input shape is unknown; "
            f"fix it with --input-shape, or {hint}"
        )
    transposed = [dims[i] for i in p]
    if opset < PER_AXIS_OPSET and any(d != 1 for d in transposed[axis + 1 :]):
        return f"{where} the softmax spans axes {axis}.. of {transposed}, not one axis; {hint}"
    if any(d != 1 for d in dims[new_axis + 1 :]):
        return (
            f"{where} Softmax(axis={new_axis}) would flatten dims {dims[new_axis + 1 :]} of the input "
            f"{dims} into the softmax; {hint}"
        )
    return None
