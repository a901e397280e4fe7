"""``split-qkv-matmul``: a fused projection split by Gathers becomes one MatMul per part (msit
KnowledgeSplitQKVMatmul).

The usual fused QKV projection of a transformer is ``y = MatMul(x, W)`` (plus a bias),
``Reshape(y, [B, S, 3, heads, D])``, ``Transpose``, then ``Gather(0)``, ``Gather(1)``, ``Gather(2)``
on the axis of size 3. Each Gather reads a fixed set of columns of ``W``, so it equals a MatMul
with those columns, reshaped and transposed the same way without the split axis. With ``y`` of
rank r and ``C`` columns, the rewrite is made when:

1. ``x -> MatMul(x, W) -> e_1 .. e_k -> Reshape(shape) -> [Transpose(p)] -> Gathers`` lies in one
   scope, where ``W`` is a constant 2-D tensor and each ``e_i`` is Add, Sub, Mul or Div with a
   constant (either operand) whose dims are all 1 except the last, which is 1 or C, and whose
   rank is at most r (so it broadcasts along the columns only and keeps the shape);
2. every intermediate (MatMul, ``e_i``, Reshape and Transpose outputs) has one consumer and is
   no graph output, except the Transpose (or Reshape) output, all of whose consumers are the
   Gathers;
3. ``shape`` is a constant that keeps the r-1 leading dims of ``y`` (each entry 0, -1 or the
   static dim; no 0 with ``allowzero=1``) and splits the columns into factors ``F`` whose product
   is C (one -1 allowed);
4. every Gather takes its data from the Transpose, on the same axis, which comes from one factor
   ``F[j]`` of the columns (any position: ``[.., 3, heads, D]``, ``[.., heads, 3, D]``, ...);
5. each index is a constant scalar (negative ones counted from the end) and the Gathers take
   every index 0 .. F[j]-1 exactly once.

Gather ``n`` is replaced by ``MatMul(x, W[:, cols_n]) -> e_i with the same columns of their
constants -> Reshape(leading + F without F[j]) -> Transpose`` (left out when its perm is the
identity), where ``cols_n`` are the columns whose factor-j digit is n. Each output element is the
same dot product of a row of ``x`` and a column of ``W`` followed by the same element-wise ops,
so the rewrite is exact (onnxruntime's results are bitwise equal). The new MatMuls are followed
by no Gather, so a second run changes nothing.
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
    const_tensor,
    constant,
    node_label,
    register_pass,
    sole_consumer,
)

ELEMENTWISE = ("Add", "Sub", "Mul", "Div")


@register_pass
class SplitQkvMatmul(NodePass):
    name = "split-qkv-matmul"
    summary = "Split MatMul -> Reshape -> Transpose -> N Gathers (fused QKV) into N MatMuls on column blocks"
    addresses = ("MatMul", "Gather", "Transpose")
    requires = Requires(opsets=(5, None))  # Reshape takes its shape as an input from opset 5

    def rewrite(self, node: ir.Node, model: ir.Model, ctx: PassContext) -> Change | Skip | None:
        """Split the projection whose Reshape is ``node``, or say why not."""
        if node.op_type != "Reshape" or node.domain not in ("", "ai.onnx"):
            return None
        chain = _chain_back(node.inputs[0])
        if chain is None:
            return None
        matmul, ops = chain
        transpose = _sole_transpose(node)
        split = transpose or node
        gathers = list(dict.fromkeys(use.node for use in split.outputs[0].uses()))
        if not any(g.op_type == "Gather" for g in gathers):
            return None
        label = node_label(matmul)
        nodes = [matmul, *ops, node, *([transpose] if transpose else []), *gathers]
        if problem := ctx.scope_problem(model, *nodes):
            return Skip(label, problem)
        plan = _plan(matmul, ops, node, transpose, gathers, model, ctx)
        if isinstance(plan, str):
            return Skip(label, plan)
        _rewrite(plan, matmul, ops, node, transpose, gathers, model, ctx)
        what = f"{len(gathers)} Gathers of a fused MatMul -> {len(gathers)} MatMuls on column blocks"
        return Change(what, tuple(map(node_label, nodes)))


def _chain_back(value: ir.Value | None) -> tuple[ir.Node, list[ir.Node]] | None:
    """The MatMul and the element-wise ops with a constant between it and ``value``, or None."""
    ops: list[ir.Node] = []
    node = value.producer() if value is not None else None
    while node is not None and node.op_type in ELEMENTWISE and node.domain in ("", "ai.onnx"):
        other = _variable_operand(node)
        if other is None:
            return None
        ops.insert(0, node)
        node = other.producer()
    if node is None or node.op_type != "MatMul" or node.domain not in ("", "ai.onnx"):
        return None
    return node, ops


def _variable_operand(node: ir.Node) -> ir.Value | None:
    """The operand of a binary op whose other operand is a constant, or None."""
    if len(node.inputs) != 2:
        return None
    first, second = node.inputs
    if const_tensor(second) is not None:
        return first
    return second if const_tensor(first) is not None else None


def _sole_transpose(reshape: ir.Node) -> ir.Node | None:
    users = [use.node for use in reshape.outputs[0].uses()]
    if len(users) == 1 and users[0].op_type == "Transpose" and users[0].domain in ("", "ai.onnx"):
        return users[0]
    return None


class _Plan:
    """What the rewrite needs: the weight, the column factors, the split factor and axis, the perm."""

    def __init__(self, weight: np.ndarray, lead: list[int], factors: list[int], j: int, axis: int, perm: list[int]):
        self.weight, self.lead, self.factors, self.j, self.axis, self.perm = weight, lead, factors, j, axis, perm

    def columns(self, index: int) -> np.ndarray:
        """The columns of ``W`` whose digit of factor j is ``index``, in the order Reshape keeps them."""
        return np.arange(self.weight.shape[1]).reshape(self.factors).take(index, axis=self.j).reshape(-1)

    def new_perm(self) -> list[int]:
        """The perm without the split axis (numbered in the Reshape output without it)."""
        split = self.perm[self.axis]
        return [v - (v > split) for i, v in enumerate(self.perm) if i != self.axis]


def _plan(
    matmul: ir.Node,
    ops: list[ir.Node],
    reshape: ir.Node,
    transpose: ir.Node | None,
    gathers: list[ir.Node],
    model: ir.Model,
    ctx: PassContext,
) -> _Plan | str:
    """The plan of the rewrite, or why the candidate is outside rules 1-5."""
    weight = const_tensor(matmul.inputs[1])
    if weight is None or len(weight.shape) != 2:
        return "the MatMul's weight is not a constant 2-D tensor"
    weight = weight.numpy()
    columns = weight.shape[1]
    x_dims = ctx.dims_of(matmul.inputs[0], model)
    if x_dims is None:
        return ctx.unknown_shape("the rank of the MatMul's input is unknown", model)
    lead_dims = x_dims[:-1]
    rank = len(lead_dims) + 1
    inner = [matmul, *ops, reshape]
    if any(not sole_consumer(a.outputs[0], b) for a, b in zip(inner, inner[1:], strict=False)) or (
        transpose and not sole_consumer(reshape.outputs[0], transpose)
    ):
        return "an intermediate tensor has another consumer or is a graph output"
    for op in ops:
        shape = _const_shape(op)
        if len(shape) > rank or any(d != 1 for d in shape[:-1]) or (shape and shape[-1] not in (1, columns)):
            return f"the constant of {op.op_type} {node_label(op)!r} has shape {shape}, not one along the columns"
    shape = const_ints(reshape.inputs[1])
    if shape is None:
        return "the Reshape's shape is not a constant"
    if reshape.attributes.get_int("allowzero", 0) and 0 in shape:
        return "Reshape with allowzero=1 and a 0 in its shape is not handled"
    factors = _factors(shape, lead_dims, columns)
    if factors is None:
        return f"the Reshape to {shape} does not keep the leading dims {lead_dims} and split the {columns} columns"
    out_rank = len(shape)
    perm = list(range(out_rank))
    if transpose is not None:
        given = transpose.attributes.get_ints("perm", None)
        perm = list(range(out_rank))[::-1] if given is None else [int(v) for v in given]
        if sorted(perm) != list(range(out_rank)):
            return f"the Transpose's perm {perm} is invalid for rank {out_rank}"
    data = (transpose or reshape).outputs[0]
    if data.is_graph_output():
        return "the split tensor is a graph output"
    axes = set()
    indices = []
    for gather in gathers:
        if gather.op_type != "Gather" or gather.domain not in ("", "ai.onnx") or gather.inputs[0] is not data:
            return "the split tensor has a consumer other than the data input of a Gather"
        axes.add(gather.attributes.get_int("axis", 0) % out_rank)
        index = const_tensor(gather.inputs[1])
        if index is None or len(index.shape) != 0 or const_ints(gather.inputs[1]) is None:
            return f"Gather {node_label(gather)!r} has no constant scalar index"
        indices.append(const_ints(gather.inputs[1])[0])
    if len(axes) != 1:
        return f"the Gathers take different axes {sorted(axes)}"
    axis = axes.pop()
    j = perm[axis] - (rank - 1)
    if j < 0:
        return f"the Gathers split axis {axis}, which does not come from the MatMul's columns"
    size = factors[j]
    if sorted(i % size if -size <= i < size else i for i in indices) != list(range(size)):
        return f"the Gather indices {indices} do not take each of 0..{size - 1} exactly once"
    return _Plan(weight, shape[: rank - 1], factors, j, axis, perm)


def _const_shape(op: ir.Node) -> list[int]:
    first, second = op.inputs
    tensor = const_tensor(second) if const_tensor(second) is not None else const_tensor(first)
    return list(tensor.shape)


def _factors(shape: list[int], lead_dims: list[int | None], columns: int) -> list[int] | None:
    """The factors of the columns that ``shape`` makes (rule 3), or None."""
    lead, trail = shape[: len(lead_dims)], shape[len(lead_dims) :]
    if not trail or shape.count(-1) > 1:
        return None
    if any(v not in (0, -1) and v != d for v, d in zip(lead, lead_dims, strict=True)):
        return None
    if any(v == 0 or v < -1 for v in trail):
        return None
    known = int(np.prod([v for v in trail if v != -1]))
    if -1 in trail:
        if known == 0 or columns % known:
            return None
        trail = [columns // known if v == -1 else v for v in trail]
    return trail if int(np.prod(trail)) == columns else None


def _rewrite(
    plan: _Plan,
    matmul: ir.Node,
    ops: list[ir.Node],
    reshape: ir.Node,
    transpose: ir.Node | None,
    gathers: list[ir.Node],
    model: ir.Model,
    ctx: PassContext,
) -> None:
    """Replace the pattern by one MatMul chain per Gather (the docstring's rewrite)."""
    new_nodes: list[ir.Node] = []
    outputs: list[ir.Value] = []
    shape = [*plan.lead, *(f for i, f in enumerate(plan.factors) if i != plan.j)]
    perm = plan.new_perm()
    for gather in gathers:
        columns = plan.columns(const_ints(gather.inputs[1])[0] % plan.factors[plan.j])
        base = gather.name or gather.outputs[0].name or "gather"
        parts = _part(plan, columns, base, matmul, ops, reshape, shape, perm, model, ctx)
        new_nodes += parts
        outputs.append(parts[-1].outputs[0])
    split = transpose or reshape  # after every matched node but the Gathers, before every Gather
    old = [matmul, *ops, reshape, *([transpose] if transpose else []), *gathers]
    olds = [g.outputs[0] for g in gathers]
    ir.convenience.replace_nodes_and_values(split.graph, split, old, new_nodes, olds, outputs)


def _part(
    plan: _Plan,
    columns: np.ndarray,
    base: str,
    matmul: ir.Node,
    ops: list[ir.Node],
    reshape: ir.Node,
    shape: list[int],
    perm: list[int],
    model: ir.Model,
    ctx: PassContext,
) -> list[ir.Node]:
    """The nodes computing what the Gather of ``columns`` gave."""
    nodes: list[ir.Node] = []
    graph = matmul.graph

    def add(op_type: str, inputs: list[ir.Value], attributes: dict | None = None) -> ir.Value:
        name = ctx.fresh_name(model, f"{base}/{op_type.lower()}")
        nodes.append(ir.node(op_type, inputs, attributes or {}, name=name, outputs=[ir.Value(name=name)]))
        return nodes[-1].outputs[0]

    def const(what: str, array: np.ndarray) -> ir.Value:
        """An initializer in the main graph; a Constant node elsewhere (functions have no initializers)."""
        name = ctx.fresh_name(model, f"{base}/{what}")
        if graph is not model.graph:
            nodes.append(constant(name, array))
            return nodes[-1].outputs[0]
        tensor = ir.tensor(array, name=name)
        value = ir.Value(name=name, shape=tensor.shape, type=ir.TensorType(tensor.dtype), const_value=tensor)
        graph.register_initializer(value)
        return value

    value = add("MatMul", [matmul.inputs[0], const("weight", np.ascontiguousarray(plan.weight[:, columns]))])
    for op in ops:
        operands = []
        for operand in op.inputs:
            tensor = const_tensor(operand)
            if tensor is None:
                operands.append(value)
            elif tensor.shape and tensor.shape[-1] == plan.weight.shape[1] > 1:
                part = np.ascontiguousarray(tensor.numpy()[..., columns])
                operands.append(const(f"{op.op_type.lower()}_constant", part))
            else:
                operands.append(operand)
        value = add(op.op_type, operands)
    allowzero = {"allowzero": 1} if reshape.attributes.get_int("allowzero", 0) else {}
    value = add("Reshape", [value, const("shape", np.array(shape, dtype=np.int64))], allowzero)
    if perm != sorted(perm):
        add("Transpose", [value], {"perm": perm})
    return nodes
