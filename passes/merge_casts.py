"""``merge-casts``: fewer Cast nodes, exactly (msit KnowledgeMergeCasts).

For a default-domain ``Cast(to=S)`` node reading ``x``:

1. **Cast to the type ``x`` already has** -> removed (its users read ``x``); when its output is a
   graph output it becomes an Identity, so the output keeps its name. Needs the element type of
   ``x``: declared, the ``to`` of a Cast, a constant's, or (for a function input) the one every
   call site passes; otherwise refused with the reason.
2. **Cast(to=S) after Cast(to=T)** of a value of type F, in the same graph -> the outer Cast reads
   ``x``'s source directly (the inner Cast goes once nothing else reads it), only when it is
   exact for every value. With F, T and S all among bool, (u)int8..64, float16, bfloat16,
   float and double, it is allowed exactly when

   a. T holds every value of F exactly (so the inner Cast loses nothing): bool in every type;
      an integer type in a wider integer type, or in a float whose significand covers its range
      ((u)int8 in float16 / bfloat16, (u)int16 in float, (u)int32 in double); float16 and
      bfloat16 in float and double, float in double; and
   b. S is a float type or bool (rounding to S and testing for zero depend only on the value,
      which both paths give S unchanged), or S also holds every value of F (both paths are
      exact). This refuses float -> int truncation and integer narrowing: what those do with
      NaN, infinities and out-of-range values is implementation-defined in ONNX.

   So int32 -> int64 -> float, bool -> float16 -> int64 and float16 -> float -> float16 (then
   removed by case 1) merge; float -> float16 -> float, int64 -> int32 -> int64, float ->
   int32 -> bool and float16 -> float -> int32 are refused with the reason. Chains collapse in
   one run: the outer Cast is rewired in place, so the next Cast sees the merged one.
3. **Sibling Casts**: Casts of the same ``x`` in the same graph with the same ``to`` (and
   ``saturate``) -> the first one; the others' users read its output. A sibling whose output is
   a graph output is kept and refused with the reason.

CastLike is not handled: its target type comes from a second tensor, which these cases would
have to trace as well.
"""

from __future__ import annotations

import onnx_ir as ir

from optimizer.passapi import (
    Change,
    NodePass,
    PassContext,
    PassResult,
    Skip,
    const_tensor,
    iter_nodes,
    node_label,
    register_pass,
    replace_nodes,
)

D = ir.DataType
# Integer types (bool as {0, 1}) by range, and float types by significand bits and largest exponent.
INTEGERS = {
    D.BOOL: (0, 1), D.UINT8: (0, 2**8 - 1), D.INT8: (-(2**7), 2**7 - 1), D.UINT16: (0, 2**16 - 1),
    D.INT16: (-(2**15), 2**15 - 1), D.UINT32: (0, 2**32 - 1), D.INT32: (-(2**31), 2**31 - 1),
    D.UINT64: (0, 2**64 - 1), D.INT64: (-(2**63), 2**63 - 1),
}
FLOATS = {D.FLOAT16: (11, 15), D.BFLOAT16: (8, 127), D.FLOAT: (24, 127), D.DOUBLE: (53, 1023)}


def holds(big: ir.DataType, small: ir.DataType) -> bool:
    """Whether every value of type ``small`` is exactly a value of type ``big`` (rule 2a)."""
    if small in INTEGERS and big in INTEGERS:
        return INTEGERS[big][0] <= INTEGERS[small][0] and INTEGERS[small][1] <= INTEGERS[big][1]
    if small in INTEGERS and big in FLOATS:
        low, high = INTEGERS[small]
        return max(-low, high) <= 2 ** FLOATS[big][0]
    if small in FLOATS and big in FLOATS:
        return all(s <= b for s, b in zip(FLOATS[small], FLOATS[big], strict=True))
    return False


def chain_problem(source: ir.DataType, middle: ir.DataType, target: ir.DataType) -> str | None:
    """Why Cast(to=target) after Cast(to=middle) of a ``source`` value is not Cast(to=target) (rule 2)."""
    path = f"{source.name} -> {middle.name} -> {target.name}"
    if any(t not in INTEGERS and t not in FLOATS for t in (source, middle, target)):
        return f"{path}: only bool, integer and float16 / bfloat16 / float / double casts are merged"
    if not holds(middle, source):
        return f"{path}: {middle.name} cannot hold every {source.name} value, so the first Cast loses information"
    if target not in FLOATS and target != D.BOOL and not holds(target, source):
        return f"{path}: a cast to {target.name} that does not hold every {source.name} value is implementation-defined"
    return None


def _is_cast(node: ir.Node | None) -> bool:
    return node is not None and node.op_type == "Cast" and node.domain in ("", "ai.onnx")


@register_pass
class MergeCasts(NodePass):
    name = "merge-casts"
    summary = "Remove no-op Casts, merge exact Cast -> Cast chains and sibling Casts of one value"
    addresses = ("Cast",)

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        """Walk the nodes with fresh memos: the Cast kept per (value, type, graph), the call sites,
        the types of function inputs."""
        self._kept: dict[tuple[ir.Value, int, int, ir.Graph], ir.Node] = {}
        self._calls: dict[int, tuple[ir.Function, list[ir.Node]]] | None = None
        self._inputs: dict[ir.Value, ir.DataType | None] = {}  # function inputs: the type every call passes
        return super().run(model, ctx)

    def rewrite(self, node: ir.Node, model: ir.Model, ctx: PassContext) -> Change | Skip | None:
        """Apply rules 2, 1 and 3 to the Cast ``node``, in that order."""
        if not _is_cast(node) or not node.inputs or node.inputs[0] is None:
            return None
        label, target = node_label(node), D(node.attributes.get_int("to", 0))
        done: list[str] = []
        refusal = None
        inner = node.inputs[0].producer()
        if _is_cast(inner) and D(inner.attributes.get_int("to", 0)) != target:
            middle = D(inner.attributes.get_int("to", 0))
            refusal = ctx.scope_problem(model, inner, node) or self._chain(node, inner, model)
            if refusal is None:
                done.append(f"Cast(to={middle.name}) -> Cast(to={target.name}) merged")
        source = self.dtype_of(node.inputs[0], model)
        if source == target:
            return Change("; ".join([*done, self._remove(node)]), (label,))
        if source is None and refusal is None:
            refusal = f"the element type of {node.inputs[0].name!r} is unknown (declare it in the model)"
        key = (node.inputs[0], target.value, node.attributes.get_int("saturate", 1), node.graph)
        kept = self._kept.get(key)
        if kept is None or kept.graph is not node.graph:
            self._kept[key] = node
        elif node.outputs[0].is_graph_output():
            refusal = f"a sibling of Cast {node_label(kept)!r}, but its output is a graph output"
        else:
            ir.convenience.replace_all_uses_with(node.outputs[0], kept.outputs[0])
            node.graph.remove(node, safe=True)
            done.append(f"sibling of Cast {node_label(kept)!r} merged into it")
        if done:
            return Change("; ".join(done), (label,))
        return None if refusal is None else Skip(label, refusal)

    def _chain(self, node: ir.Node, inner: ir.Node, model: ir.Model) -> str | None:
        """Rewire ``node`` to read what ``inner`` reads when rule 2 allows it; else why not."""
        source = self.dtype_of(inner.inputs[0], model)
        if source is None:
            return f"the element type of {inner.inputs[0].name!r} is unknown (declare it in the model)"
        problem = chain_problem(source, D(inner.attributes.get_int("to", 0)), D(node.attributes.get_int("to", 0)))
        if problem is None:
            node.replace_input_with(0, inner.inputs[0])
            if not inner.outputs[0].uses() and not inner.outputs[0].is_graph_output():
                inner.graph.remove(inner, safe=True)
        return problem

    def _remove(self, node: ir.Node) -> str:
        """Rule 1: drop ``node``, or make it an Identity when its output is a graph output."""
        if node.outputs[0].is_graph_output():
            identity = ir.node("Identity", [node.inputs[0]], name=node.name)
            replace_nodes([node], [identity], node.outputs[0], identity.outputs[0])
            return "Cast to the input's own type at a graph output -> Identity"
        ir.convenience.replace_all_uses_with(node.outputs[0], node.inputs[0])
        node.graph.remove(node, safe=True)
        return "Cast to the input's own type removed"

    def dtype_of(self, value: ir.Value | None, model: ir.Model) -> ir.DataType | None:
        """The element type of ``value``, found as rule 1 says, or None."""
        if value is None:
            return None
        if value.dtype is not None:
            return value.dtype
        producer = value.producer()
        if _is_cast(producer):
            return D(producer.attributes.get_int("to", 0))
        tensor = const_tensor(value)
        if tensor is not None:
            return tensor.dtype
        if producer is not None or value.graph is None or not value.is_graph_input():
            return None
        known = getattr(self, "_inputs", {})
        if value not in known:
            known[value] = self._passed_type(value, model)
        return known[value]

    def _passed_type(self, value: ir.Value, model: ir.Model) -> ir.DataType | None:
        """The element type every call of a function passes for its input ``value``, or None."""
        function, sites = self._call_sites(model).get(id(value.graph), (None, []))
        if function is None:
            return None
        position = list(function.inputs).index(value)
        found = {self.dtype_of(site.inputs[position], model) if position < len(site.inputs) else None for site in sites}
        return found.pop() if len(found) == 1 else None

    def _call_sites(self, model: ir.Model) -> dict[int, tuple[ir.Function, list[ir.Node]]]:
        """Each function (by the id of its graph) with the nodes that call it; built once per run."""
        if getattr(self, "_calls", None) is None:
            sites: dict[ir.OperatorIdentifier, list[ir.Node]] = {key: [] for key in model.functions}
            for node in iter_nodes(model):
                if node.op_identifier() in sites:
                    sites[node.op_identifier()].append(node)
            self._calls = {id(function.graph): (function, sites[key]) for key, function in model.functions.items()}
        return self._calls
