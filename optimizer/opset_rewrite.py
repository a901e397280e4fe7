"""What an opset adapter may use while it rewrites one node: constants, ranks, types, new nodes, refusals.

Every lookup goes through :class:`onnx_ir.Value` objects, never through names, so values of
different scopes (main graph, If / Loop / Scan bodies, functions) never mix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
import onnx_ir as ir

from optimizer.errors import UserError
from optimizer.opset_schema import TypeChecker
from optimizer.passapi import all_graphs, const_tensor, names_in, node_label, unique_name

Dims = list[int | None]


class Rewriter:
    """Helpers for adapters converting nodes of one model down to opset ``target``.

    ``shapes`` holds dims inferred before any change, for values the model itself does not
    describe (the driver may fill it after folding constants); ``types`` the element types known
    or propagated at the original opsets; ``scopes`` readable names of the model's graphs (by ``id``) for messages.
    """

    def __init__(
        self,
        model: ir.Model,
        target: int,
        shapes: dict[ir.Value, tuple[Any, ...]],
        types: TypeChecker,
        scopes: dict[int, str],
    ) -> None:
        self.target = target
        self.shapes = shapes
        self._types = types
        self._scopes = scopes
        self._names = names_in(all_graphs(model))

    # -- refusing -------------------------------------------------------------------------------
    def refuse(self, node: ir.Node, reason: str) -> NoReturn:
        """Stop the conversion with one line naming ``node``, its scope and ``reason``."""
        raise UserError(f"cannot convert to opset {self.target}: {self.describe(node)}: {reason}")

    def describe(self, node: ir.Node) -> str:
        """``node 'name' (Op)``, plus its scope when it is not in the main graph."""
        scope = self._scopes.get(id(node.graph), "the main graph")
        where = "" if scope == "the main graph" else f" in {scope}"
        return f"node {node_label(node)!r} ({node.op_type}){where}"

    # -- what is known about values -------------------------------------------------------------
    def array(self, value: ir.Value | None) -> np.ndarray | None:
        """The data of a constant (initializer that is not an input, or Constant node), else None."""
        tensor = const_tensor(value)
        return None if tensor is None else tensor.numpy()

    def const_input(self, node: ir.Node, index: int, what: str, plural: bool = True) -> np.ndarray | None:
        """Input ``index`` as an array (None when absent); refuses when it is computed at run time.

        ``what`` names the input in the refusal ("its axes are computed at run time; ...").
        """
        value = node.inputs[index] if index < len(node.inputs) else None
        if value is None:
            return None
        data = self.array(value)
        if data is None:
            verb, pronoun = ("are", "them") if plural else ("is", "it")
            self.refuse(
                node, f"its {what} {verb} computed at run time; opset {self.target} needs {pronoun} as an attribute"
            )
        return data

    def const_ints(self, node: ir.Node, index: int, what: str, plural: bool = True) -> list[int] | None:
        """Input ``index`` as a list of ints (None when absent); refuses when computed at run time."""
        data = self.const_input(node, index, what, plural)
        return None if data is None else [int(v) for v in data.reshape(-1)]

    def dims(self, value: ir.Value | None) -> Dims | None:
        """The dims of ``value`` (None for a dynamic dim), or None when its rank is unknown."""
        return self._dims(value, _DERIVATION_DEPTH)

    def _dims(self, value: ir.Value | None, depth: int) -> Dims | None:
        if value is None:
            return None
        known = value.shape if value.shape is not None else self.shapes.get(value)
        if known is None and depth > 0:
            known = self._derived_dims(value, depth - 1)
        return None if known is None else [d if isinstance(d, int) else None for d in known]

    def _derived_dims(self, value: ir.Value, depth: int) -> tuple[None, ...] | None:
        """Unknown dims of the rank ``value`` has by its producer's rule, where onnx inferred nothing.

        onnx infers no rank for Reshape before opset 14 when the shape is computed, nor inside a
        subgraph for ops whose axes are constants of an outer scope. Ranks found are remembered.
        """
        producer = value.producer()
        if producer is None or producer.domain != "" or len(producer.outputs) != 1:
            return None

        def dims_of(index: int) -> Dims | None:
            return self._dims(producer.inputs[index], depth) if index < len(producer.inputs) else None

        rank = _rank_by_rule(producer, dims_of, self.array)
        if rank is None:
            return None
        self.shapes[value] = (None,) * rank
        return self.shapes[value]

    def rank(self, value: ir.Value | None) -> int | None:
        """The rank of ``value``, or None when unknown."""
        dims = self.dims(value)
        return None if dims is None else len(dims)

    def dtype(self, value: ir.Value | None) -> ir.DataType | None:
        """The element type of tensor ``value``, or None when unknown."""
        spelled = self._types.type_of(value)
        if spelled is None or not spelled.startswith("tensor("):
            return None
        return ir.DataType[spelled[len("tensor(") : -1].upper()]

    def positive_axes(self, node: ir.Node, axes: Sequence[int], rank: int | None, what: str = "axes") -> list[int]:
        """``axes`` made non-negative for an input of ``rank``; refuses a negative axis of unknown rank."""
        if all(axis >= 0 for axis in axes):
            return list(axes)
        if rank is None:
            self.refuse(node, f"its {what} count from the back and the rank is unknown; opset {self.target} "
                        "needs non-negative axes")
        return [axis + rank if axis < 0 else axis for axis in axes]

    # -- attributes -----------------------------------------------------------------------------
    def keep_default(self, node: ir.Node, name: str, default: Any) -> None:
        """Drop attribute ``name`` when it holds ``default``; refuse otherwise (it has no older form)."""
        attr = node.attributes.get(name)
        if attr is None:
            return
        value = attr.value
        if isinstance(value, Sequence) and not isinstance(value, str):
            value = list(value)
        if value != default:
            self.refuse(node, f"{name}={value!r} has no equivalent at opset {self.target}")
        node.attributes.pop(name)

    # -- building -------------------------------------------------------------------------------
    def fresh(self, base: str) -> str:
        """A name used nowhere in the model (values and nodes of every scope), derived from ``base``."""
        return unique_name(base, self._names)

    def node(
        self, op_type: str, inputs: Sequence[ir.Value | None], attributes: dict[str, Any] | None, near: ir.Node,
        outputs: int = 1,
    ) -> ir.Node:
        """A new default-domain node named after ``near`` (not yet in a graph)."""
        base = f"{near.name or near.op_type}_{op_type}"
        values = [ir.Value(name=self.fresh(f"{base}_output_{i}")) for i in range(outputs)]
        return ir.node(op_type, list(inputs), attributes or {}, name=self.fresh(base), outputs=values)

    def constant(self, near: ir.Node, array: np.ndarray, what: str) -> ir.Value:
        """A Constant node holding ``array``, inserted before ``near``; its output."""
        name = self.fresh(f"{near.name or near.op_type}_{what}")
        node = ir.node("Constant", [], {"value": ir.tensor(np.asarray(array), name=name)}, name=name,
                       outputs=[ir.Value(name=name)])
        near.graph.insert_before(near, node)
        return node.outputs[0]

    def insert_before(self, near: ir.Node, nodes: Sequence[ir.Node]) -> None:
        """Put ``nodes`` (in order) just before ``near`` in its graph."""
        near.graph.insert_before(near, nodes)

    def replace(self, node: ir.Node, nodes: Sequence[ir.Node], outputs: Sequence[ir.Value]) -> None:
        """Replace ``node`` by ``nodes``; ``outputs`` take over its outputs (users, names, graph outputs)."""
        for old in node.outputs[len(outputs) :]:
            if old.uses() or old.is_graph_output():
                self.refuse(node, f"its output '{old.name}' has no equivalent at opset {self.target}")
        inputs = list(node.inputs)
        for old, new in zip(node.outputs, outputs, strict=False):  # what held for the old outputs holds for the new
            if old in self.shapes:
                self.shapes.setdefault(new, self.shapes[old])
            known = self._types.type_of(old)
            if known is not None:
                self._types.types.setdefault(new, known)
        ir.convenience.replace_nodes_and_values(node.graph, node, [node], nodes, node.outputs[: len(outputs)], outputs)
        for value in inputs:
            self.discard(value)

    def drop_inputs(self, node: ir.Node, keep: int) -> None:
        """Keep the first ``keep`` inputs of ``node``; producers left unused are removed."""
        dropped = node.inputs[keep:]
        if dropped:
            node.resize_inputs(keep)
        for value in dropped:
            self.discard(value)

    def set_input(self, node: ir.Node, index: int, value: ir.Value | None) -> None:
        """Make ``value`` input ``index`` of ``node`` (growing the inputs); the old producer may go."""
        if index >= len(node.inputs):
            node.resize_inputs(index + 1)
        old = node.inputs[index]
        node.replace_input_with(index, value)
        self.discard(old)

    def drop_outputs(self, node: ir.Node, keep: int, why: str) -> None:
        """Keep the first ``keep`` outputs of ``node``; refuse when a dropped one is used."""
        for value in node.outputs[keep:]:
            if value.uses() or value.is_graph_output():
                self.refuse(node, why)
        if len(node.outputs) > keep:
            node.resize_outputs(keep)

    def discard(self, value: ir.Value | None) -> None:
        """Remove what produced ``value`` once nothing uses it (Constant nodes, initializers, dead chains)."""
        if value is None or value.uses() or value.is_graph_output() or value.is_graph_input():
            return
        if value.is_initializer():
            value.graph.initializers.pop(value.name)
            return
        producer = value.producer()
        if producer is None or producer.graph is None or producer.domain != "":
            return
        if any(output.uses() or output.is_graph_output() for output in producer.outputs):
            return
        if any(attr.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS) for attr in producer.attributes.values()):
            return
        inputs = list(producer.inputs)
        producer.graph.remove(producer, safe=True)
        for value_in in inputs:
            self.discard(value_in)



# How deep a chain of producers :meth:`Rewriter.dims` follows to find a rank onnx did not infer.
_DERIVATION_DEPTH = 64
# Ops whose output has the rank of their first input.
_SAME_RANK = frozenset(
    [
        *("Abs", "Cast", "Ceil", "Clip", "Cos", "Dropout", "Elu", "Erf", "Exp", "Floor", "Hardmax", "HardSigmoid"),
        *("Identity", "LeakyRelu", "Log", "LogSoftmax", "Neg", "Not", "Pad", "Reciprocal", "Relu", "Resize", "Round"),
        *("Selu", "Sigmoid", "Sign", "Sin", "Slice", "Softmax", "Softplus", "Sqrt", "Tanh", "Transpose", "Upsample"),
    ]
)
# Ops whose output has the largest rank of their (broadcast) inputs.
_BROADCAST = frozenset(
    ["Add", "And", "Div", "Equal", "Greater", "Less", "Max", "Min", "Mod", "Mul", "Or", "Pow", "Sub", "Sum", "Where"]
)


def _rank_by_rule(node: ir.Node, dims_of: Callable[[int], Dims | None], array) -> int | None:
    """The output rank of ``node`` from what is known of its inputs (``dims_of(index)``), or None."""
    op = node.op_type
    if op in _SAME_RANK:
        dims = dims_of(0)
        return None if dims is None else len(dims)
    if op in _BROADCAST:
        ranks = [None if (dims := dims_of(index)) is None else len(dims) for index in range(len(node.inputs))]
        return None if not ranks or None in ranks else max(ranks)
    if op == "Reshape":
        shape = dims_of(1)
        return shape[0] if shape is not None and len(shape) == 1 else None
    if op in ("Squeeze", "Unsqueeze"):
        axes = node.attributes.get_ints("axes")
        if axes is None and len(node.inputs) > 1:
            data = array(node.inputs[1])
            axes = None if data is None else data.reshape(-1).tolist()
        dims = dims_of(0)
        if axes is None or dims is None:
            return None
        return len(dims) + len(axes) if op == "Unsqueeze" else len(dims) - len(axes)
    return None


@dataclass(frozen=True)
class Adapter:
    """How to bring a node from the version introduced at some opset to the previous version.

    ``constants`` lists the inputs the adapter needs as constants (or says which, per node):
    the driver folds them first when they are computed from constants only. ``shapes`` says
    the adapter may ask for ranks or dims.
    """

    convert: Callable[[ir.Node, Rewriter], None]
    constants: Callable[[ir.Node], Sequence[int]] | Sequence[int] = ()
    shapes: bool = False

    def constant_inputs(self, node: ir.Node) -> Sequence[int]:
        """The input indices of ``node`` this adapter needs as constants."""
        return self.constants(node) if callable(self.constants) else self.constants


class AdapterTable(dict):
    """Adapters by (op type, opset that introduced the version being converted)."""

    def register(
        self,
        ops: Sequence[str],
        since: int,
        *,
        constants: Callable[[ir.Node], Sequence[int]] | Sequence[int] = (),
        shapes: bool = False,
    ) -> Callable[[Callable[[ir.Node, Rewriter], None]], Callable[[ir.Node, Rewriter], None]]:
        """Decorator: use the function for each of ``ops`` introduced at opset ``since``."""

        def add(convert: Callable[[ir.Node, Rewriter], None]) -> Callable[[ir.Node, Rewriter], None]:
            for op in ops:
                self[(op, since)] = Adapter(convert, constants, shapes)
            return convert

        return add
