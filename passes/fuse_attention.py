"""``fuse-attention``: the scaled dot-product attention core of a transformer block becomes one ONNX
``Attention`` node (opset 23), the fused structure a backend maps to its attention kernel (msit
KnowledgeBigKernel, which rewrote one user-named subgraph for ATC's private 310P kernel).

The pattern, every node in one scope, is what exporters write for ``softmax(q @ k^T * s + mask) @ v``
(hand-written blocks, and ``scaled_dot_product_attention`` once its scale is folded to constants)::

    Q' = Q | Mul(Q, a)        Kt' = Kt | Mul(Kt, b)          (a, b scalar constants)
    S  = MatMul(Q', Kt')      S' = S | Mul(S, c) | Div(S, c)  (c a scalar constant)
    S" = S' | Add(S', M)      P  = Softmax(S", last axis)     O = MatMul(P, V)

becomes ``O = Attention(Q, K, V[, M'], scale=a*b*c or a*b/c)`` with ``K = Transpose(Kt, [0, 1, 3, 2])``
(folded into Kt's own Transpose when it has one). The rewrite is done when:

1. the Softmax reduces the last axis and its only consumer is a MatMul reading it as A;
2. Q, Kt and V have rank 4, ``[batch, heads, length, depth]`` (Attention reads a 3-D input as
   ``[batch, length, hidden]``), of type float, float16 or bfloat16;
3. the batch and head dims of Q, Kt and V are provably equal (the same number or the same
   symbolic dim): MatMul broadcasts them, Attention does not;
4. a, b and c are one-element constants; the scale is their product (c divided for a Div)
   computed in float64, which reassociates the float products (exact up to rounding);
5. the mask M has rank <= 4 and its leading dims broadcast into the scores' without growing them
   (1 or the scores' own dim); where its last two dims are not provably the query and key
   lengths, ``M' = Expand(M, [Lq, Lk])`` makes them so (onnxruntime's Attention does not
   broadcast those two), with the lengths taken from Q and V when they are dynamic;
6. every intermediate (Q', Kt', S, S', S", P) has one consumer, the next node of the pattern,
   and is no graph output.

Options ``start`` and ``end`` name the first and last node of one attention block (as msit took
them); the pass then fuses only the blocks built like that one (the same optional scales and
mask), in every scope. Without them (the default, right for the usual exporters) every match is
fused. The result holds no Softmax of the pattern, so a second run changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from optimizer.passapi import (
    Change,
    NodePass,
    PassContext,
    PassResult,
    Requires,
    Skip,
    SkipPass,
    const_tensor,
    constant,
    iter_nodes,
    node_label,
    register_pass,
    replace_nodes,
)

ATTENTION_OPSET = 23
ATTENTION_TYPES = (ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16)
SWAP_LAST = (0, 1, 3, 2)


@dataclass
class _Block:
    """One matched attention core: the nodes to remove (the MatMul with V last) and what Attention needs."""

    nodes: list[ir.Node]
    q: ir.Value
    kt: ir.Value
    v: ir.Value
    mask: ir.Value | None
    scale: float
    form: tuple[bool, bool, str, bool]  # Q scaled, Kt scaled, score op ("", Mul, Div), masked


@register_pass
class FuseAttention(NodePass):
    name = "fuse-attention"
    summary = "Fuse softmax(Q @ K^T * scale + mask) @ V into one ONNX Attention node (opset 23)"
    addresses = ("Softmax", "MatMul")
    requires = Requires(opsets=(ATTENTION_OPSET, None))

    @dataclass(frozen=True)
    class Options:
        start: str = field(default="", metadata={"help": "first node of one attention block to fuse ('': every block)"})
        end: str = field(default="", metadata={"help": "last node (the MatMul with V) of that block"})

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        """Fuse every block (or every block built like the named one)."""
        self._forms = self._named_forms(model, ctx) if self.options.start or self.options.end else None
        return super().run(model, ctx)

    def rewrite(self, node: ir.Node, model: ir.Model, ctx: PassContext) -> Change | Skip | None:
        """Replace the attention core around Softmax ``node`` by one Attention node, or say why not."""
        block = _match(node, model, ctx)
        if block is None or isinstance(block, Skip):
            return block
        if self._forms is not None and block.form not in self._forms:
            return Skip(node_label(node), f"built unlike the block {self.options.start}..{self.options.end} "
                                          f"({_describe(block.form)})")
        return _fuse(block, model, ctx)

    def _named_forms(self, model: ir.Model, ctx: PassContext) -> set[tuple]:
        """The forms of the blocks that start and end at the nodes the options name."""
        start, end = self.options.start, self.options.end
        if not (start and end):
            raise SkipPass("set both fuse-attention.start and fuse-attention.end, or neither")
        named = {n.name for n in iter_nodes(model)}
        missing = [name for name in (start, end) if name not in named]
        if missing:
            raise SkipPass(f"no node named {missing[0]!r} in the model")
        forms = set()
        for softmax in iter_nodes(model):
            block = _match(softmax, model, ctx)
            if isinstance(block, _Block) and start in _first_names(block) and block.nodes[-1].name == end:
                forms.add(block.form)
        if not forms:
            raise SkipPass(f"{start!r}..{end!r} is no attention block (see the rules of fuse-attention)")
        return forms


def _first_names(block: _Block) -> set[str]:
    """Names a block may be said to start at: Q @ K^T, the scales of Q and K^T, the Transpose making K^T."""
    names = set()
    for node in block.nodes:  # the operand scales, then Q @ K^T, then the rest of the block
        names.add(node.name)
        if node.op_type == "MatMul":
            break
    transpose = _local_producer(block.kt, block.nodes[-1].graph)
    if transpose is not None and _is(transpose, "Transpose"):
        names.add(transpose.name)
    return names


def _match(softmax: ir.Node, model: ir.Model, ctx: PassContext) -> _Block | Skip | None:
    """The attention core around ``softmax`` (rules 1-6), a Skip, or None when it is no candidate."""
    if not _is(softmax, "Softmax"):
        return None
    probs = softmax.outputs[0]
    users = [use.node for use in probs.uses()]
    if len(users) != 1 or not _is(users[0], "MatMul") or users[0].inputs[0] is not probs:
        return None
    label = node_label(softmax)
    try:
        return _walk_back(softmax, users[0], model, ctx)
    except _Refused as refused:
        return Skip(label, str(refused))


class _Refused(Exception):  # noqa: N818 - a signal inside the match, never raised out of it
    """A candidate the rules refuse; the message is the Skip reason."""


def _walk_back(softmax: ir.Node, out_matmul: ir.Node, model: ir.Model, ctx: PassContext) -> _Block | None:
    """Follow the scores back from ``softmax`` to Q @ K^T, taking the optional mask, scale and Q / K scales."""
    graph = softmax.graph
    nodes = [softmax, out_matmul]
    _only_into(softmax.outputs[0], out_matmul, "the attention probabilities")
    scores, mask = softmax.inputs[0], None
    add = _local_producer(scores, graph)
    if add is not None and _is(add, "Add"):
        side = 0 if _reaches_matmul(add.inputs[0], graph) else 1
        if _reaches_matmul(add.inputs[side], graph):
            _only_into(scores, softmax, "the masked scores")
            scores, mask = add.inputs[side], add.inputs[1 - side]
            nodes.insert(0, add)
    scale, score_op = 1.0, ""
    op = _local_producer(scores, graph)
    if op is not None and _is(op, "Mul", "Div") and (found := _scaled(op)) is not None:
        _only_into(scores, nodes[0], "the scaled scores")
        scores, factor = found
        scale, score_op = (factor if op.op_type == "Mul" else 1.0 / factor), op.op_type
        nodes.insert(0, op)
    qk = scores.producer() if scores is not None else None
    if qk is None or not _is(qk, "MatMul"):
        return None
    if problem := ctx.scope_problem(model, qk, *nodes):
        raise _Refused(problem)
    _only_into(scores, nodes[0], "the scores Q @ K^T")
    nodes.insert(0, qk)
    operands, scaled = [], []
    for value in qk.inputs:
        mul = _local_producer(value, graph)
        found = _scaled(mul) if mul is not None and _is(mul, "Mul") else None
        taken = found is not None and _sole_use(value, qk)
        if taken:
            value, factor = found
            scale *= factor
            nodes.insert(0, mul)
        operands.append(value)
        scaled.append(taken)
    q, kt = operands
    v = out_matmul.inputs[1]
    if problem := _layout_problem(softmax, q, kt, v, model, ctx):
        raise _Refused(problem)
    if mask is not None and (problem := _mask_problem(mask, scores, model, ctx)):
        raise _Refused(problem)
    return _Block(nodes, q, kt, v, mask, scale, (scaled[0], scaled[1], score_op, mask is not None))


def _is(node: ir.Node, *op_types: str) -> bool:
    """Whether ``node`` is a default-domain node of one of ``op_types``."""
    return node.op_type in op_types and node.domain in ("", "ai.onnx")


def _local_producer(value: ir.Value | None, graph: ir.Graph) -> ir.Node | None:
    """The node of ``graph`` that makes ``value`` (None for a value of an outer scope or an input)."""
    node = value.producer() if value is not None else None
    return node if node is not None and node.graph is graph else None


def _sole_use(value: ir.Value, node: ir.Node) -> bool:
    """Whether ``node`` is the only user of ``value``, which is no graph output."""
    return {use.node for use in value.uses()} == {node} and not value.is_graph_output()


def _only_into(value: ir.Value, node: ir.Node, what: str) -> None:
    """Refuse unless ``value`` flows only into ``node`` (rule 6)."""
    if not _sole_use(value, node):
        raise _Refused(f"{what} ({value.name!r}) are used outside the attention block or are a graph output")


def _scaled(node: ir.Node) -> tuple[ir.Value, float] | None:
    """(the other operand, the factor) of a Mul or Div by a one-element constant, else None."""
    sides = (1,) if node.op_type == "Div" else (1, 0)
    for side in sides:
        if (factor := _scalar(node.inputs[side])) is not None:
            return node.inputs[1 - side], factor
    return None


def _reaches_matmul(value: ir.Value | None, graph: ir.Graph) -> bool:
    """Whether ``value`` is Q @ K^T, directly or through a Mul / Div by a constant (the scores side of the Add)."""
    node = _local_producer(value, graph)
    if node is not None and _is(node, "Mul", "Div") and (found := _scaled(node)) is not None:
        node = found[0].producer()
    return node is not None and _is(node, "MatMul")


def _scalar(value: ir.Value | None) -> float | None:
    """The number held by a one-element floating-point constant, else None."""
    tensor = const_tensor(value)
    if tensor is None:
        return None
    array = tensor.numpy()
    if array.size != 1 or not np.issubdtype(array.dtype, np.floating):
        return None
    return float(array.reshape(-1)[0])


def _layout_problem(softmax: ir.Node, q: ir.Value, kt: ir.Value, v: ir.Value, model: ir.Model,
                    ctx: PassContext) -> str | None:
    """Why rules 1-3 do not hold (axis, ranks, types, batch and head dims), or None."""
    dims = {value: ctx.symbolic_dims_of(value, model) for value in (q, kt, v)}
    for name, value in (("Q", q), ("K^T", kt), ("V", v)):
        if dims[value] is None:
            return ctx.unknown_shape(f"the rank of {name} is unknown", model)
        if len(dims[value]) != 4:
            return f"{name} has rank {len(dims[value])}; Attention takes [batch, heads, length, depth] (rank 4)"
        dtype = ctx.dtype_of(value, model)
        if dtype is None:
            return ctx.unknown_shape(f"the element type of {name} is unknown", model)
        if dtype not in ATTENTION_TYPES:
            return f"{name} is {dtype.name}; Attention takes float, float16 or bfloat16"
    axis = softmax.attributes.get_int("axis", -1)
    if axis not in (-1, 3):
        return f"the Softmax reduces axis {axis}, not the key axis (-1)"
    for axis, what in ((0, "batch"), (1, "head")):
        if not (_same_dim(q, kt, axis, dims) and _same_dim(q, v, axis, dims)):
            return f"Q, K and V do not provably share their {what} dim (MatMul broadcasts it, Attention does not)"
    return None


def _same_dim(a: ir.Value, b: ir.Value, axis: int, dims: dict) -> bool:
    """Whether dim ``axis`` of ``a`` and ``b`` is the same number or the same named symbolic dim."""
    return dims[a][axis] is not None and dims[a][axis] == dims[b][axis]


def _mask_problem(mask: ir.Value, scores: ir.Value, model: ir.Model, ctx: PassContext) -> str | None:
    """Why the mask cannot feed Attention (rule 5), or None."""
    mask_dims = ctx.symbolic_dims_of(mask, model)
    if mask_dims is None:
        return ctx.unknown_shape("the rank of the mask is unknown", model)
    if len(mask_dims) > 4:
        return f"the mask has rank {len(mask_dims)}; it would broadcast the scores beyond rank 4"
    score_dims = ctx.symbolic_dims_of(scores, model) or [None] * 4
    for axis in range(4 - len(mask_dims), 2):
        got, want = mask_dims[axis - 4 + len(mask_dims)], score_dims[axis]
        if got != 1 and (got is None or got != want):
            return (f"mask dim {got if got is not None else '?'} against scores dim "
                    f"{want if want is not None else '?'} may broadcast the scores' batch or heads")
    return None


def _fuse(block: _Block, model: ir.Model, ctx: PassContext) -> Change:
    """Swap ``block`` for Transpose(K) (when needed), the mask's Expand (when needed) and Attention."""
    base = block.nodes[-1].name or block.nodes[-1].outputs[0].name
    new: list[ir.Node] = []
    removed = list(block.nodes)
    key = _untransposed_key(block, removed, new, model, ctx, base)
    inputs = [block.q, key, block.v]
    if block.mask is not None:
        inputs.append(_full_mask(block, new, model, ctx, base))
    attention = ir.node("Attention", inputs, {"scale": float(np.float32(block.scale))}, name=f"{base}/attention")
    attention.outputs[0].name = ctx.fresh_name(model, attention.name)
    new.append(attention)
    replace_nodes(removed, new, block.nodes[-1].outputs[0], attention.outputs[0])
    labels = tuple(node_label(n) for n in block.nodes if n.op_type in ("Softmax", "MatMul"))
    return Change(f"attention core ({_describe(block.form)}) fused into Attention, scale {block.scale:.6g}", labels)


def _untransposed_key(block: _Block, removed: list[ir.Node], new: list[ir.Node], model: ir.Model,
                      ctx: PassContext, base: str) -> ir.Value:
    """K = Kt with its last two axes swapped: Kt's own Transpose with a changed perm, or a new one."""
    transpose = _local_producer(block.kt, block.nodes[-1].graph)
    source, perm = block.kt, list(SWAP_LAST)
    if transpose is not None and _is(transpose, "Transpose") and transpose.attributes.get_ints("perm", None):
        inner = list(transpose.attributes.get_ints("perm"))
        source, perm = transpose.inputs[0], [inner[i] for i in SWAP_LAST]
        if {use.node for use in block.kt.uses()} <= set(block.nodes) and not block.kt.is_graph_output():
            removed.append(transpose)
    if perm == sorted(perm):
        return source
    node = ir.node("Transpose", [source], {"perm": perm}, name=f"{base}/key")
    node.outputs[0].name = ctx.fresh_name(model, node.name)
    new.append(node)
    return node.outputs[0]


def _full_mask(block: _Block, new: list[ir.Node], model: ir.Model, ctx: PassContext, base: str) -> ir.Value:
    """The mask with its last two dims the query and key lengths (Expand when not provably so)."""
    mask_dims = ctx.dims_of(block.mask, model)
    lengths = [(ctx.dims_of(block.q, model) or [None] * 4)[2], (ctx.dims_of(block.v, model) or [None] * 4)[2]]
    if len(mask_dims) >= 2 and mask_dims[-2:] == lengths and None not in lengths:
        return block.mask
    if None not in lengths:
        shape = constant(ctx.fresh_name(model, f"{base}/mask_shape"), np.array(lengths, dtype=np.int64))
        new.append(shape)
        target = shape.outputs[0]
    else:
        parts = []
        for what, value in (("query", block.q), ("key", block.v)):
            part = ir.node("Shape", [value], {"start": 2, "end": 3}, name=f"{base}/{what}_length")
            part.outputs[0].name = ctx.fresh_name(model, part.name)
            new.append(part)
            parts.append(part.outputs[0])
        concat = ir.node("Concat", parts, {"axis": 0}, name=f"{base}/mask_shape")
        concat.outputs[0].name = ctx.fresh_name(model, concat.name)
        new.append(concat)
        target = concat.outputs[0]
    expand = ir.node("Expand", [block.mask, target], name=f"{base}/mask")
    expand.outputs[0].name = ctx.fresh_name(model, expand.name)
    new.append(expand)
    return expand.outputs[0]


def _describe(form: tuple[bool, bool, str, bool]) -> str:
    """The optional parts a block has, in words."""
    q_scaled, k_scaled, score_op, masked = form
    parts = [part for part, present in (("Q scaled", q_scaled), ("K scaled", k_scaled),
                                        (f"scores {score_op and score_op.lower()}", bool(score_op)),
                                        ("masked", masked)) if present]
    return ", ".join(parts) or "unscaled, unmasked"
