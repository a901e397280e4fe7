"""``fold-transpose-batchnorm``: Transpose(p) -> BatchNormalization -> Transpose(q), where q undoes p
and the statistics are constants, becomes ``x * s + b`` (one Mul, one Add) on the original tensor
(msit KnowledgeBNFolding), which drops both Transposes. PyTorch writes this pattern for
``BatchNorm1d`` applied to a channels-last tensor (``bn(x.transpose(1, 2)).transpose(1, 2)``).

In inference form BatchNormalization computes, per channel c of axis 1 of its input t,
``(t - mean[c]) / sqrt(var[c] + epsilon) * scale[c] + B[c]``. Axis 1 of ``t = Transpose(x, p)`` is
axis ``p[1]`` of x, and Transpose(q) puts every element back where it was in x, so the result is
``x * s + b`` with ``s = scale / sqrt(var + epsilon)`` and ``b = B - mean * s`` shaped
``[1, .., C, .., 1]`` (rank r, C on axis ``p[1]``). The rewrite is done when:

1. ``q`` undoes ``p`` (``p[q[i]] == i``); a Transpose without ``perm`` reverses the axes (the rank
   then comes from shape inference), and the rank is at least 2;
2. neither the first Transpose's output nor the BatchNormalization's has another consumer or is
   a graph output, and the three nodes lie in one scope;
3. BatchNormalization is in inference form: one output (no running or saved statistics),
   ``training_mode`` (opset 14+) absent or 0, and at opsets 7 and 8 ``spatial`` absent or 1
   (``spatial=0`` normalises per activation, with statistics of another shape). The pass requires
   opset >= 7: before it ``is_test`` chose the mode and opset 1 carried ``consumed_inputs``; those
   definitions are left out rather than guessed (PyTorch exports at opset >= 7);
4. scale, B, mean and var are constants of one shape [C];
5. s and b are computed in float64 and stored in the element type of x. Before opset 15 that is
   the statistics' type (all inputs share T); from opset 15 scale / B and mean / var may have other
   types than x, so where x's type is not known (a function input) a CastLike to x converts them
   (CastLike exists from opset 15; a model saved below it has one shared type).

The result holds no BatchNormalization, so a second run changes nothing.
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
    const_tensor,
    constant,
    model_opset,
    node_label,
    register_pass,
    replace_nodes,
    sole_consumer,
)

MIXED_TYPES_OPSET = 15  # BatchNormalization's scale / B and mean / var may differ from X's type from here


@register_pass
class FoldTransposeBatchnorm(NodePass):
    name = "fold-transpose-batchnorm"
    summary = "Fold Transpose -> BatchNormalization -> Transpose (perms cancel, constant statistics) into Mul + Add"
    addresses = ("BatchNormalization", "Transpose")
    requires = Requires(opsets=(7, None))  # rule 3: older definitions pick the mode with is_test

    def rewrite(self, node: ir.Node, model: ir.Model, ctx: PassContext) -> Change | Skip | None:
        """Fold the sandwich whose middle is the BatchNormalization ``node``, or say why not."""
        if node.op_type != "BatchNormalization" or node.domain not in ("", "ai.onnx"):
            return None
        first = node.inputs[0].producer() if node.inputs[0] is not None else None
        lasts = [use.node for use in node.outputs[0].uses() if use.node.op_type == "Transpose"]
        if first is None or first.op_type != "Transpose" or not lasts:
            return None
        last = lasts[0]
        label = node_label(node)
        if problem := ctx.scope_problem(model, first, node, last):
            return Skip(label, problem)
        x = first.inputs[0]
        rank = _rank(first, x, model, ctx)
        if rank is None:
            return Skip(label, ctx.unknown_shape("a Transpose has no perm and the rank of its input is unknown", model))
        p, q = _perm(first, rank), _perm(last, rank)
        if p is None or q is None or rank < 2:
            return Skip(label, "a Transpose has an invalid perm (or the tensor has rank < 2)")
        if any(p[q[i]] != i for i in range(rank)):
            return Skip(label, f"perm {q} of {node_label(last)} does not undo perm {p} of {node_label(first)}")
        if not sole_consumer(first.outputs[0], node) or not sole_consumer(node.outputs[0], last):
            return Skip(label, "an intermediate tensor has another consumer or is a graph output")
        opset = model_opset(model)
        if problem := _training_problem(node, opset):
            return Skip(label, problem)
        tensors = [const_tensor(value) for value in node.inputs[1:5]]
        if len(tensors) != 4 or any(t is None for t in tensors):
            return Skip(label, "scale, B, mean and var must all be constants")
        scale, bias, mean, var = (t.numpy().astype(np.float64) for t in tensors)
        if scale.ndim != 1 or any(a.shape != scale.shape for a in (bias, mean, var)):
            shapes = [list(a.shape) for a in (scale, bias, mean, var)]
            return Skip(label, f"the statistics have shapes {shapes}, not [C]")
        epsilon = node.attributes.get_float("epsilon", 1e-5)
        factor = scale / np.sqrt(var + np.float64(np.float32(epsilon)))
        shift = bias - mean * factor
        shape = [1] * rank
        shape[p[1]] = scale.shape[0]
        shared = min(opset, ctx.final_opset or opset) < MIXED_TYPES_OPSET
        dtype = x.dtype or node.outputs[0].dtype or (tensors[0].dtype if shared else None)
        stored = dtype.numpy() if dtype is not None else np.dtype(np.float32)
        base = node.name or node.outputs[0].name
        new_nodes: list[ir.Node] = []
        operands = []
        for what, array in (("scale", factor), ("shift", shift)):
            const = constant(ctx.fresh_name(model, f"{base}/{what}"), array.reshape(shape).astype(stored))
            new_nodes.append(const)
            operand = const.outputs[0]
            if dtype is None:  # rule 5: x's type is only known at run time
                cast = ir.node("CastLike", [operand, x], name=f"{base}/{what}_like")
                cast.outputs[0].name = ctx.fresh_name(model, cast.name)
                new_nodes.append(cast)
                operand = cast.outputs[0]
            operands.append(operand)
        mul = ir.node("Mul", [x, operands[0]], name=f"{base}/mul")
        mul.outputs[0].name = ctx.fresh_name(model, mul.name)
        add = ir.node("Add", [mul.outputs[0], operands[1]], name=f"{base}/add")
        new_nodes += [mul, add]
        replace_nodes([first, node, last], new_nodes, last.outputs[0], add.outputs[0])
        return Change(
            f"Transpose -> BatchNormalization -> Transpose folded into Mul + Add on axis {p[1]}",
            (node_label(first), label, node_label(last)),
        )


def _training_problem(node: ir.Node, opset: int) -> str | None:
    """Why the BatchNormalization is not in inference form (rule 3), or None."""
    if any(output.name for output in node.outputs[1:]):
        return "BatchNormalization has statistics outputs (training form)"
    if node.attributes.get_int("training_mode", 0):
        return "BatchNormalization has training_mode=1"
    if opset < 9 and not node.attributes.get_int("spatial", 1):
        return "BatchNormalization has spatial=0 (per-activation statistics)"
    return None


def _rank(first: ir.Node, x: ir.Value, model: ir.Model, ctx: PassContext) -> int | None:
    perm = first.attributes.get_ints("perm", None)
    if perm is not None:
        return len(perm)
    dims = ctx.dims_of(x, model)
    return None if dims is None else len(dims)


def _perm(node: ir.Node, rank: int) -> list[int] | None:
    perm = node.attributes.get_ints("perm", None)
    perm = list(range(rank))[::-1] if perm is None else [int(v) for v in perm]
    return perm if sorted(perm) == list(range(rank)) else None
