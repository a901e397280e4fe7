"""``static-reshape`` (msit KnowledgeDynamicReshape): a Reshape whose shape is computed from dims
(``Shape -> Gather -> Concat ...``) gets a constant shape, using 0 (copy the input's dim) and -1
(infer), that is right for every input the model accepts.

msit found the constant by running the model at sample shapes; this pass reads the shape
computation instead. Each entry of the computed shape is followed back through Shape (with
start / end), Gather and Slice with constant indices, Concat, Unsqueeze, Squeeze, Reshape,
Identity, Cast to int64 and integer Add / Sub / Mul / Div; it is a constant (a literal, or a
static dim of the model, folded with Div truncating as ONNX does), dim i of some tensor (a
dynamic dim), or another expression. With ``x`` the reshaped tensor, the new shape is exact when:

1. every constant entry stays (a literal 0 keeps its meaning: copy with ``allowzero=0``, a zero
   dim with ``allowzero=1``; -1 keeps inferring);
2. an entry that is dim j of ``x`` at position j becomes 0 (copy). It is dim j of ``x`` when it
   is read from ``Shape(x)`` itself, or from a tensor whose declared dim carries the same
   dim_param (ONNX: one dim_param is one value across the model; a function body declares none);
3. with ``allowzero=1`` a copy is written as 0 under ``allowzero=0`` instead, which resolves
   every entry the same way, unless the shape also holds a literal 0 (refused);
4. at most one other entry (any expression) becomes -1 when no literal -1 is there and every
   other entry is provably nonzero (a positive constant, or a copy of a static nonzero dim):
   the element count then determines it uniquely. A copy of a dynamic dim may be 0 (an empty
   tensor), where -1 is ambiguous and onnxruntime refuses the Reshape, so that is refused;
5. the pieces lie anywhere (outer scopes included): values are followed, never names.

Every other Reshape with a computed shape is refused with the reason. The nodes that computed
only the shape are removed. A shape that folds entirely to constants (case 1 from static dims)
is what ``simplify`` folds too; it matters here where static and dynamic dims mix. The constant
holds for the input shapes the model fixes (``--input-shape`` writes them into the model before
the passes run), and the report says so when a static dim was used; no dim is assumed that the
model does not fix, so ``Requires(static_shapes=...)`` is not needed. Each value is followed
once (memoised), so a run is linear in the graph size; a second run changes nothing (every
rewritten shape is constant).
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
    Requires,
    Skip,
    const_ints,
    const_tensor,
    constant,
    model_opset,
    node_label,
    register_pass,
)
from optimizer.slice_params import sliced_vector

ALLOWZERO_OPSET = 14  # Reshape's allowzero attribute exists from this opset on
ELEMENTS = 64  # longest shape vector followed
INT64 = (-(2**63), 2**63 - 1)
ARITHMETIC = {"Add": "+", "Sub": "-", "Mul": "*", "Div": "/"}
KEEPING = ("Unsqueeze", "Squeeze", "Reshape", "Identity", "Cast")  # keep the elements in flat order
VECTORS = ("Gather", "Slice", "Concat", *ARITHMETIC)  # their (data) inputs must be 1-D or scalars
FOLLOWED = frozenset({"Shape", *KEEPING, *VECTORS})


@dataclass(frozen=True)
class Entry:
    """One element of a computed shape: a constant ``value``, dim ``axis`` of ``tensor``, or neither."""

    text: str
    value: int | None = None
    tensor: ir.Value | None = None
    axis: int = 0
    static: bool = False  # a constant read from a static dim


def _trunc_div(a: int, b: int) -> int:
    quotient = abs(a) // abs(b)
    return quotient if (a < 0) == (b < 0) else -quotient


def _combine(op: str, a: Entry, b: Entry) -> Entry:
    if a.value is not None and b.value is not None:
        if op == "Div" and b.value == 0:
            return Entry(f"{a.text} / 0")
        value = {"Add": a.value + b.value, "Sub": a.value - b.value, "Mul": a.value * b.value}.get(op)
        value = _trunc_div(a.value, b.value) if value is None else value
        if not INT64[0] <= value <= INT64[1]:
            return Entry(f"{a.text} {ARITHMETIC[op]} {b.text}")  # it wraps in the model
        return Entry(str(value), value, static=a.static or b.static)
    if b.value == (1 if op in ("Mul", "Div") else 0):
        return a  # x * 1, x / 1, x + 0, x - 0
    if op in ("Add", "Mul") and a.value == (1 if op == "Mul" else 0):
        return b
    return Entry(f"{a.text} {ARITHMETIC[op]} {b.text}")


@register_pass
class StaticReshape(NodePass):
    name = "static-reshape"
    summary = "Replace a Reshape's computed shape by a constant with 0 (copy) and -1 (infer), exact for every input"
    addresses = ("Reshape", "Shape", "Gather", "Concat")
    requires = Requires(opsets=(5, None))  # Reshape takes its shape as an input from opset 5
    after = ("simplify",)

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        """Rewrite every Reshape; note when the constants rely on static dims of the model."""
        self._entries: dict[ir.Value, list[Entry] | str] = {}
        self._static = 0
        result = super().run(model, ctx)
        if self._static:
            inputs = "; ".join(f"{v.name}: {_shape_text(v.shape)}" for v in model.graph.inputs)
            result.notes.append(
                f"static-reshape: {self._static} constant shapes use static dims of the model, so they "
                f"hold for the input shapes it fixes ({inputs}), which the output keeps"
            )
        return result

    def rewrite(self, node: ir.Node, model: ir.Model, ctx: PassContext) -> Change | Skip | None:
        """Give a Reshape with a computed shape a constant one, or say why not."""
        if node.op_type != "Reshape" or node.domain not in ("", "ai.onnx") or len(node.inputs) < 2:
            return None
        x, shape = node.inputs[0], node.inputs[1]
        if shape is None or const_ints(shape) is not None:
            return None
        label = node_label(node)
        entries = self._follow(shape, model, ctx)
        if isinstance(entries, str):
            return Skip(label, entries)
        allowzero = node.attributes.get_int("allowzero", 0) if model_opset(model) >= ALLOWZERO_OPSET else 0
        new = self._constant_shape(entries, x, allowzero, model, ctx)
        if isinstance(new, str):
            return Skip(label, new)
        base = ctx.fresh_name(model, f"{node.name or x.name}/shape")
        const = constant(base, np.array(new, dtype=np.int64))
        node.graph.insert_before(node, const)
        node.replace_input_with(1, const.outputs[0])
        if allowzero and any(e.value is None and v == 0 for e, v in zip(entries, new, strict=True)):
            node.attributes["allowzero"] = ir.AttrInt64("allowzero", 0)  # rule 3
        _remove_dead(shape)
        self._static += any(e.static for e in entries)
        return Change(f"constant shape {new} (0: copy the dim, -1: infer) replaces the computed one", (label,))

    def _constant_shape(
        self, entries: list[Entry], x: ir.Value, allowzero: int, model: ir.Model, ctx: PassContext
    ) -> list[int] | str:
        """The constant shape of rules 1-4, or why there is none."""
        x_dims = ctx.dims_of(x, model)
        new: list[int | None] = []
        for j, entry in enumerate(entries):
            if entry.value is not None and entry.value < -1:
                return f"entry {j} is {entry.value}, which Reshape refuses"
            new.append(entry.value if entry.value is not None else (0 if _is_dim(entry, x, j) else None))
        copies = [j for j, e in enumerate(entries) if e.value is None and new[j] == 0]
        if allowzero and copies and any(e.value == 0 for e in entries):
            return "allowzero=1 with a literal 0 (a zero dim): a copied dim cannot also be written as 0"
        unknown = [j for j, v in enumerate(new) if v is None]
        if not unknown:
            return new
        described = ", ".join(f"{j} ({entries[j].text})" for j in unknown)
        if len(unknown) > 1:
            return f"entries {described} are neither constants nor the same dim of '{x.name}'; -1 infers one only"
        if -1 in new:
            return f"entry {described} is neither a constant nor dim {unknown[0]} of '{x.name}', and -1 is taken"
        for j, value in enumerate(new):
            copied = j in copies or (value == 0 and not allowzero)
            static = x_dims is not None and j < len(x_dims) and x_dims[j] is not None and x_dims[j] > 0
            if j != unknown[0] and not (value is not None and value > 0) and not (copied and static):
                return (
                    f"-1 for entry {described} is ambiguous when entry {j} ({entries[j].text}) is 0: "
                    "the element count no longer determines it (onnxruntime refuses such a Reshape)"
                )
        new[unknown[0]] = -1
        return new

    def _follow(self, value: ir.Value, model: ir.Model, ctx: PassContext) -> list[Entry] | str:
        """The entries of a shape vector, or why they cannot be followed (memoised)."""
        if value not in self._entries:
            self._entries[value] = self._entries_of(value, model, ctx)
        return self._entries[value]

    def _entries_of(self, value: ir.Value, model: ir.Model, ctx: PassContext) -> list[Entry] | str:
        tensor = const_tensor(value)
        if tensor is not None:
            if tensor.dtype != ir.DataType.INT64 or tensor.size > ELEMENTS:
                return f"the shape uses constant '{value.name}', which is not a short int64 vector"
            return [Entry(str(int(v)), int(v)) for v in tensor.numpy().reshape(-1)]
        node = value.producer()
        if node is None:
            return f"the shape depends on '{value.name}', which is not computed from dims"
        op, ins = node.op_type, node.inputs
        where = f"{op} '{node_label(node)}'"
        if node.domain not in ("", "ai.onnx") or op not in FOLLOWED:
            return f"the shape is computed by {where}, which this pass does not follow"
        if op == "Shape":
            dims = ctx.dims_of(ins[0], model)
            if dims is None:
                return ctx.unknown_shape(f"the rank of '{ins[0].name}' is unknown", model)
            axes = list(range(len(dims)))
            axes = axes[node.attributes.get_int("start", 0) : node.attributes.get_int("end", len(dims))]
            return [
                Entry(str(dims[i]), dims[i], static=True) if dims[i] is not None
                else Entry(f"dim {i} of '{ins[0].name}'", tensor=ins[0], axis=i)
                for i in axes
            ]
        if op == "Cast" and node.attributes.get_int("to", 0) != ir.DataType.INT64:
            return f"the shape is cast to another type than int64 by {where}"
        data = ins[: len(ins) if op in ("Concat", *ARITHMETIC) else 1]
        if op in VECTORS and any(len(_known(ctx.dims_of(v, model))) > 1 for v in data):
            return f"{where} works on a tensor that is not known to be 1-D"
        pieces = [self._follow(v, model, ctx) for v in data]
        problem = next((p for p in pieces if isinstance(p, str)), None)
        if problem is not None:
            return problem
        if op in KEEPING:
            return pieces[0]
        if op in ARITHMETIC:
            a, b = pieces
            if len(a) != len(b) and 1 not in (len(a), len(b)):
                return f"{where} broadcasts pieces of lengths {len(a)} and {len(b)}"
            length = max(len(a), len(b))
            return [_combine(op, a[i % len(a)], b[i % len(b)]) for i in range(length)]
        if node.attributes.get_int("axis", 0) not in (0, -1):
            return f"{where} works on an axis other than 0"
        if op == "Concat":
            return [entry for piece in pieces for entry in piece]
        picked = _gathered(node, pieces[0]) if op == "Gather" else sliced_vector(node, pieces[0])
        return picked if picked is not None else f"{where} has indices that are not constant or out of range"


def _known(dims: list[int | None] | None) -> list[int | None]:
    """``dims``, or two unknown dims when even the rank is unknown."""
    return [None, None] if dims is None else dims


def _shape_text(shape: ir.Shape | None) -> str:
    return "?" if shape is None else "[" + ", ".join(str(d) for d in shape) + "]"


def _is_dim(entry: Entry, x: ir.Value, j: int) -> bool:
    """Whether ``entry`` is dim j of ``x`` for every input (rule 2)."""
    if entry.tensor is None or entry.axis != j:
        return False
    if entry.tensor is x:
        return True
    shapes = (entry.tensor.shape, x.shape)
    if any(shape is None or len(shape) <= j for shape in shapes):
        return False
    dims = [shape[j] for shape in shapes]
    return all(isinstance(d, ir.SymbolicDim) and d.value for d in dims) and dims[0].value == dims[1].value


def _gathered(node: ir.Node, entries: list[Entry]) -> list[Entry] | None:
    indices = const_ints(node.inputs[1])
    if indices is None or not all(-len(entries) <= i < len(entries) for i in indices):
        return None
    return [entries[i] for i in indices]


def _remove_dead(value: ir.Value) -> None:
    """Remove the nodes (and initializers) that computed only ``value``, now that nothing reads it."""
    stack = [value]
    while stack:
        value = stack.pop()
        if value is None or value.uses() or value.is_graph_output() or value.is_graph_input():
            continue
        node = value.producer()
        if node is None:
            if value.is_initializer() and value.graph is not None:
                value.graph.initializers.pop(value.name, None)
            continue
        if any(out.uses() or out.is_graph_output() for out in node.outputs):
            continue
        inputs = list(node.inputs)
        node.graph.remove(node, safe=True)
        stack.extend(inputs)
