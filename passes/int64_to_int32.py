"""``int64-to-int32`` (msit KnowledgeTypeCast): int64 arithmetic whose values provably fit int32 is
computed in int32, with Casts at the border (Ascend's AI Core lacks most int64 kernels).

Value ranges come from static facts only, in one forward walk over every graph: an interval per
element for small tensors of known shape (shape vectors), else one interval for all elements.

- a constant holds its values; ``Shape(x)`` holds x's static dims, and ``[0, 2^63-1]`` for a
  dynamic dim (nothing bounds it); ``Size(x)`` the product of static dims; ``ArgMax`` /
  ``ArgMin`` ``[0, d-1]`` for a static dim d; ``Cast`` to an integer type the source's range
  when it fits, else the whole target type; a function input what every call passes;
- Add, Sub, Mul, Neg, Abs, Max, Min by interval arithmetic; Div truncates toward zero in int32
  and int64 alike (the ONNX reference and onnxruntime), so the corners bound it; Gather, Slice,
  Concat, Unsqueeze, Squeeze, Reshape and Identity move values (elements are tracked for 1-D
  data with constant indices);
- a result outside int64 wraps in the model: its range becomes all of int64; anything else
  int64 is all of int64.

A node is converted when:

1. it is a default-domain Add, Sub, Mul, Div, Neg, Abs, Max, Min (the compute ops) or Gather,
   Slice, Concat, Unsqueeze, Squeeze, Reshape, Identity (the moving ops) on int64 data (every
   one takes int32 wherever it takes int64: Max and Min take integers from opset 12 on);
2. every data input and its output lie in int32, so int32 computes the same numbers: sums,
   differences, products, negations and quotients are exact when the true result fits, and
   truncating division is the same function in both types;
3. a Div's divisor never holds 0;
4. its region, the nodes of rules 1-3 joined by the values they pass one another in one graph,
   holds at least one compute op: moving values costs little, so a region of moving ops only
   would cost more in Casts than it saves.

Only the data inputs change type (Gather's data, Slice's data, Reshape's data, ...); indices,
axes, starts / ends and target shapes keep their own types. A region's input from outside is
cast to int32 (a constant is rewritten as an int32 constant), and a region value read by any
other node (Reshape's shape, Expand, Range, ConstantOfShape, Equal, ...; Gather's indices take
int32 as they are) or by a graph output is cast back to int64 once. Compute ops refused by rules
2-3 are reported with the value that may not fit. One forward walk finds the ranges and a
union-find the regions, so a run is linear in the graph size; a second run finds no int64 region
left. Names are never looked up: values are followed across scopes as objects.

Compared with msit, which casts every int64 op it knows, this converts only what is provably
exact; int64 data whose range nothing bounds (a model input, a dynamic dim) stays int64.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np
import onnx_ir as ir

from optimizer.passapi import (
    Change,
    Pass,
    PassContext,
    PassResult,
    Requires,
    Skip,
    all_graphs,
    const_ints,
    const_tensor,
    constant,
    iter_nodes,
    node_label,
    register_pass,
)
from optimizer.slice_params import sliced_vector

INT64 = (-(2**63), 2**63 - 1)
INT32 = (-(2**31), 2**31 - 1)
TYPE_RANGES = {
    ir.DataType.BOOL: (0, 1),
    ir.DataType.UINT8: (0, 2**8 - 1),
    ir.DataType.INT8: (-(2**7), 2**7 - 1),
    ir.DataType.UINT16: (0, 2**16 - 1),
    ir.DataType.INT16: (-(2**15), 2**15 - 1),
    ir.DataType.UINT32: (0, 2**32 - 1),
    ir.DataType.INT32: INT32,
    ir.DataType.INT64: INT64,
}
COMPUTE = frozenset({"Add", "Sub", "Mul", "Div", "Neg", "Abs", "Max", "Min"})
MOVING = frozenset({"Gather", "Slice", "Concat", "Unsqueeze", "Squeeze", "Reshape", "Identity"})
ALL_INPUTS = frozenset({"Add", "Sub", "Mul", "Div", "Max", "Min", "Concat"})  # every input is data
ELEMENTS = 64  # intervals are kept per element up to this many elements
Interval = tuple[int, int]


@dataclass(frozen=True)
class Span:
    """Ranges of a tensor's values: one interval per element (flat order) when ``each``, else one for all."""

    parts: tuple[Interval, ...]
    each: bool = False

    @property
    def hull(self) -> Interval:
        return min((p[0] for p in self.parts), default=0), max((p[1] for p in self.parts), default=0)


def _whole(bounds: Interval) -> Span:
    return Span((bounds,))


def _wrap(interval: Interval) -> Interval:
    """An int64 result outside int64 wraps: it may then be anything."""
    return interval if INT64[0] <= interval[0] and interval[1] <= INT64[1] else INT64


def _fits(span: Span) -> bool:
    low, high = span.hull
    return INT32[0] <= low and high <= INT32[1]


def _trunc_div(a: int, b: int) -> int:
    quotient = abs(a) // abs(b)
    return quotient if (a < 0) == (b < 0) else -quotient


def _binary(op: str, a: Interval, b: Interval) -> Interval:
    if op == "Add":
        return a[0] + b[0], a[1] + b[1]
    if op == "Sub":
        return a[0] - b[1], a[1] - b[0]
    if op == "Max":
        return max(a[0], b[0]), max(a[1], b[1])
    if op == "Min":
        return min(a[0], b[0]), min(a[1], b[1])
    if op == "Div" and b[0] <= 0 <= b[1]:
        return INT64  # refused by rule 3 anyway
    combine = (lambda x, y: x * y) if op == "Mul" else _trunc_div
    corners = [combine(x, y) for x, y in product(a, b)]
    return min(corners), max(corners)


def _unary(op: str, a: Interval) -> Interval:
    if op == "Neg":
        return -a[1], -a[0]
    if a[0] >= 0:
        return a
    return (-a[1], -a[0]) if a[1] <= 0 else (0, max(-a[0], a[1]))


@register_pass
class Int64ToInt32(Pass):
    name = "int64-to-int32"
    summary = "Compute int64 shape arithmetic in int32 where every value provably fits, with Casts at the border"
    addresses = ("Add", "Sub", "Mul", "Div", "Neg", "Abs", "Max", "Min", "Gather", "Slice", "Concat", "Unsqueeze")
    requires = Requires(opsets=(7, None))  # integer Add / Sub / Mul / Div with broadcasting from opset 7
    after = ("simplify", "static-reshape")

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        """Find the ranges, the convertible nodes and their regions, then rewrite every region worth it."""
        result = PassResult(model)
        self.model, self.ctx = model, ctx
        self.spans: dict[ir.Value, Span] = {}
        self.types: dict[ir.Value, ir.DataType | None] = {}
        self.calls: dict[ir.OperatorIdentifier, list[ir.Node]] = {}
        nodes = list(iter_nodes(model))
        for node in nodes:
            self.calls.setdefault(node.op_identifier(), []).append(node)
        self.function_of = {id(function.graph): function for function in model.functions.values()}
        convertible: list[ir.Node] = []
        for node in nodes:
            self._propagate(node)
            problem = self._problem(node)
            if problem is None:
                convertible.append(node)
            elif problem and node.op_type in COMPUTE:
                result.skips.append(Skip(node_label(node), problem))
        regions = _regions(convertible)
        converted = {node for region in regions if any(n.op_type in COMPUTE for n in region) for node in region}
        casts = _Rewriter(model, ctx, converted).rewrite(nodes)
        for region in regions:
            if region[0] in converted:
                ops = ", ".join(sorted({node.op_type for node in region}))
                result.changes.append(
                    Change(f"{len(region)} nodes compute in int32 ({ops})", tuple(node_label(n) for n in region))
                )
        if casts:
            result.notes.append(f"int64-to-int32: {casts} Casts at the borders of the int32 regions")
        return result

    # --- facts -------------------------------------------------------------------------------

    def dtype(self, value: ir.Value | None) -> ir.DataType | None:
        if value is None:
            return None
        if value.dtype is not None:
            return value.dtype
        if value not in self.types:
            self.types[value] = self._site_fact(value, lambda v: self.dtype(v))
        return self.types[value]

    def span(self, value: ir.Value) -> Span:
        if value not in self.spans:
            self.spans[value] = self._source_span(value)
        return self.spans[value]

    def _source_span(self, value: ir.Value) -> Span:
        """The range of a value no node of the walk computed: a constant, a function input, or its type's."""
        tensor = const_tensor(value)
        if tensor is not None and np.issubdtype(tensor.numpy().dtype, np.integer):
            array = tensor.numpy().reshape(-1)
            if array.size <= ELEMENTS:
                return Span(tuple((int(v), int(v)) for v in array), each=True)
            return _whole((int(array.min()), int(array.max())) if array.size else (0, 0))
        spans = self._site_fact(value, lambda v: self.span(v))
        if spans is not None:
            return spans
        return _whole(TYPE_RANGES.get(self.dtype(value), INT64))

    def _site_fact(self, value: ir.Value, fact):
        """For a function input: the fact every call site agrees on (spans: their hull), else None."""
        function = self.function_of.get(id(value.graph)) if value.is_graph_input() else None
        if function is None:
            return None
        position = list(function.graph.inputs).index(value)
        sites = self.calls.get(function.identifier(), [])
        facts = [fact(site.inputs[position]) if position < len(site.inputs) else None for site in sites]
        if not facts or any(f is None for f in facts):
            return None
        if isinstance(facts[0], Span):
            return _whole((min(f.hull[0] for f in facts), max(f.hull[1] for f in facts)))
        return facts[0] if len(set(facts)) == 1 else None

    def _dims(self, value: ir.Value | None) -> list[int | None] | None:
        return self.ctx.dims_of(value, self.model)

    def _propagate(self, node: ir.Node) -> None:
        """Record the element type and range of ``node``'s first output."""
        if node.domain not in ("", "ai.onnx") or not node.outputs:
            return
        out, op, ins = node.outputs[0], node.op_type, node.inputs
        if op in COMPUTE or op in MOVING:
            self.types[out] = self.dtype(ins[0]) if ins else None
        elif op in ("Shape", "Size", "ArgMax", "ArgMin"):
            self.types[out] = ir.DataType.INT64
        elif op == "Cast":
            self.types[out] = ir.DataType(node.attributes.get_int("to", 0))
        elif op == "Constant" and (tensor := const_tensor(out)) is not None:
            self.types[out] = tensor.dtype
        dtype = self.dtype(out)
        if dtype not in TYPE_RANGES:
            return
        span = self._computed(node, op, ins)
        if span is not None:
            bounds = TYPE_RANGES[dtype]
            low, high = span.hull
            self.spans[out] = span if bounds[0] <= low and high <= bounds[1] else _whole(bounds)

    def _computed(self, node: ir.Node, op: str, ins) -> Span | None:
        if op == "Shape":
            dims = self._dims(ins[0])
            if dims is None:
                return _whole((0, INT64[1]))
            start, end = node.attributes.get_int("start", 0), node.attributes.get_int("end", len(dims))
            return Span(tuple((d, d) if d is not None else (0, INT64[1]) for d in dims[start:end]), each=True)
        if op == "Size":
            dims = self._dims(ins[0])
            total = int(np.prod(dims)) if dims is not None and None not in dims else None
            return _whole((total, total) if total is not None else (0, INT64[1]))
        if op in ("ArgMax", "ArgMin"):
            dims = self._dims(ins[0])
            axis = node.attributes.get_int("axis", 0)
            size = dims[axis] if dims is not None and -len(dims) <= axis < len(dims) else None
            return _whole((0, size - 1) if size else (0, INT64[1]))
        if op == "Cast":
            return self.span(ins[0]) if self.dtype(ins[0]) in TYPE_RANGES else None
        if op in COMPUTE:
            spans = [self.span(v) for v in ins]
            if op in ("Neg", "Abs"):
                result = Span(tuple(_unary(op, p) for p in spans[0].parts), spans[0].each)
            else:
                result = spans[0]
                for value, span in zip(ins[1:], spans[1:], strict=True):
                    result = self._elementwise(op, result, span, ins[0], value)
            return Span(tuple(_wrap(p) for p in result.parts), result.each)
        if op in MOVING:
            return self._moved(node, op, ins)
        return None

    def _elementwise(self, op: str, a: Span, b: Span, a_value: ir.Value, b_value: ir.Value) -> Span:
        """Per element when both are per element and have one static shape, or one has one element."""
        if a.each and b.each:
            if len(a.parts) == 1 or len(b.parts) == 1:
                pairs = [(x, y) for x in a.parts for y in b.parts]
                return Span(tuple(_binary(op, x, y) for x, y in pairs), each=True)
            dims = self._dims(a_value)
            if dims is not None and None not in dims and dims == self._dims(b_value):
                return Span(tuple(_binary(op, x, y) for x, y in zip(a.parts, b.parts, strict=True)), each=True)
        return _whole(_binary(op, a.hull, b.hull))

    def _moved(self, node: ir.Node, op: str, ins) -> Span:
        spans = [self.span(v) for v in ins] if op == "Concat" else [self.span(ins[0])]
        hull = _whole((min(s.hull[0] for s in spans), max(s.hull[1] for s in spans)))
        if not all(s.each for s in spans):
            return hull
        if op in ("Unsqueeze", "Squeeze", "Reshape", "Identity"):
            return spans[0]  # the flat order is kept
        vector = len(self._dims(ins[0]) or ()) == 1
        parts = spans[0].parts
        if op == "Concat":
            vectors = all(len(self._dims(v) or ()) == 1 for v in ins)
            if vectors and node.attributes.get_int("axis", 0) in (0, -1):
                return Span(tuple(p for s in spans for p in s.parts), each=True)
        elif op == "Gather" and vector and node.attributes.get_int("axis", 0) in (0, -1):
            indices = const_ints(ins[1])
            if indices is not None and all(-len(parts) <= i < len(parts) for i in indices):
                return Span(tuple(parts[i] for i in indices), each=True)
        elif op == "Slice" and vector:
            picked = sliced_vector(node, parts)
            if picked is not None:
                return Span(tuple(picked), each=True)
        return hull

    # --- legality ----------------------------------------------------------------------------

    def _problem(self, node: ir.Node) -> str | None:
        """Why ``node`` cannot compute in int32 (rules 2-3); "" when it is no candidate; None when it can."""
        op = node.op_type
        if node.domain not in ("", "ai.onnx") or op not in COMPUTE | MOVING or len(node.outputs) != 1:
            return ""
        data = _data_inputs(node)
        if not data or any(v is None or self.dtype(v) != ir.DataType.INT64 for v in data):
            return ""
        for value in data:
            if not _fits(self.span(value)):
                return _fit_reason(value, self.span(value))
        if op == "Div":
            divisor = self.span(node.inputs[1])
            if any(low <= 0 <= high for low, high in divisor.parts):
                return f"divisor '{node.inputs[1].name}' may be 0 (range [{_text(divisor.hull)}])"
        out = node.outputs[0]
        return None if _fits(self.span(out)) else _fit_reason(out, self.span(out))


def _data_positions(node: ir.Node) -> range:
    return range(len(node.inputs) if node.op_type in ALL_INPUTS else min(1, len(node.inputs)))


def _data_inputs(node: ir.Node) -> list[ir.Value | None]:
    return [node.inputs[i] for i in _data_positions(node)]


def _text(bounds: Interval) -> str:
    names = {INT64[0]: "-2^63", INT64[1]: "2^63-1"}
    return ", ".join(names.get(b, str(b)) for b in bounds)


def _fit_reason(value: ir.Value, span: Span) -> str:
    return f"value '{value.name}' may not fit int32 (range [{_text(span.hull)}])"


def _regions(nodes: list[ir.Node]) -> list[list[ir.Node]]:
    """Groups of ``nodes`` joined by a value one produces and another reads as data, in one graph."""
    parent = {node: node for node in nodes}

    def root(node: ir.Node) -> ir.Node:
        while parent[node] is not node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for node in nodes:
        for value in _data_inputs(node):
            producer = value.producer()
            if producer in parent and producer.graph is node.graph:
                parent[root(producer)] = root(node)
    groups: dict[ir.Node, list[ir.Node]] = {}
    for node in nodes:
        groups.setdefault(root(node), []).append(node)
    return list(groups.values())


class _Rewriter:
    """Retype the converted nodes and put Casts (or int32 constants) at the border."""

    def __init__(self, model: ir.Model, ctx: PassContext, converted: set[ir.Node]) -> None:
        self.model, self.ctx, self.converted = model, ctx, converted
        self.to_int32: dict[tuple[ir.Value, int], ir.Value] = {}
        self.casts = 0

    def rewrite(self, nodes: list[ir.Node]) -> int:
        """Rewrite the converted nodes among ``nodes`` (in walk order); the number of Casts added."""
        if not self.converted:
            return 0
        outputs: dict[ir.Value, list[tuple[ir.Graph, int]]] = {}
        for graph in all_graphs(self.model):
            for index, value in enumerate(graph.outputs):
                outputs.setdefault(value, []).append((graph, index))
        replaced: list[ir.Value] = []
        for node in nodes:
            if node in self.converted:
                for index in _data_positions(node):
                    value = node.inputs[index]
                    if value.producer() not in self.converted:
                        node.replace_input_with(index, self._int32(value, node))
                        replaced.append(value)
        for node in nodes:
            if node in self.converted:
                self._cast_back(node.outputs[0], outputs.get(node.outputs[0], []))
        for value in replaced:
            _drop_if_dead(value)
        return self.casts

    def _int32(self, value: ir.Value, user: ir.Node) -> ir.Value:
        """An int32 copy of ``value`` visible to ``user``: a constant, or a Cast before ``user``."""
        key = (value, id(user.graph))
        if key in self.to_int32:
            return self.to_int32[key]
        base = self.ctx.fresh_name(self.model, f"{value.name}_int32")
        tensor = const_tensor(value)
        if tensor is not None:
            new = constant(base, tensor.numpy().astype(np.int32))
        else:
            new = ir.node("Cast", [value], {"to": ir.DataType.INT32}, name=base, outputs=[ir.Value(name=base)])
            self.casts += 1
        _retype(new.outputs[0], ir.DataType.INT32, value.shape)
        user.graph.insert_before(user, new)
        self.to_int32[key] = new.outputs[0]
        return new.outputs[0]

    def _cast_back(self, value: ir.Value, graph_outputs: list[tuple[ir.Graph, int]]) -> None:
        """Retype ``value`` to int32 and give its other readers and graph outputs an int64 Cast."""
        _retype(value, ir.DataType.INT32, value.shape)
        others = [
            (use.node, use.idx)
            for use in value.uses()
            if not (use.node in self.converted and use.idx in _data_positions(use.node))
            and not (use.node.op_type == "Gather" and use.node.domain in ("", "ai.onnx") and use.idx == 1)
        ]
        if not others and not graph_outputs:
            return
        base = self.ctx.fresh_name(self.model, f"{value.name}_int64")
        cast = ir.node("Cast", [value], {"to": ir.DataType.INT64}, name=base, outputs=[ir.Value(name=base)])
        back = cast.outputs[0]
        _retype(back, ir.DataType.INT64, value.shape)
        value.producer().graph.insert_after(value.producer(), cast)
        self.casts += 1
        for user, index in others:
            user.replace_input_with(index, back)
        if graph_outputs:
            name = value.name
            value.name = self.ctx.fresh_name(self.model, f"{name}_int32")
            back.name = name
            for graph, index in graph_outputs:
                graph.outputs[index] = back


def _retype(value: ir.Value, dtype: ir.DataType, shape: ir.Shape | None) -> None:
    """Give ``value`` new type and shape objects (a cloned model shares them with its original)."""
    value.type = ir.TensorType(dtype)
    value.shape = None if shape is None else ir.Shape(list(shape))


def _drop_if_dead(value: ir.Value) -> None:
    """Remove a constant (Constant node or initializer) nothing reads any more."""
    if value.uses() or value.is_graph_output() or value.is_graph_input():
        return
    producer = value.producer()
    if producer is not None and producer.op_type == "Constant":
        producer.graph.remove(producer, safe=True)
    elif producer is None and value.is_initializer() and value.graph is not None:
        value.graph.initializers.pop(value.name, None)
