"""Build a small model around a pattern in a few lines, at a chosen opset and IR version.

    def double_transpose(op, x):
        return op.Transpose(op.Transpose(x, perm=[0, 2, 1]), perm=[0, 2, 1])

    model = pattern_model(double_transpose, {"x": [2, 3, 4]}, opset=13, scope="if")

``op.<OpType>(*inputs, **attributes)`` adds a node and returns its output (a tuple with
``_outputs=N``); numpy arrays and Python numbers among the inputs become initializers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import onnx
import onnx_ir as ir

from optimizer.testing.nesting import SCOPES, nest

__all__ = ["OpBuilder", "pattern_model"]

InputSpec = Sequence[int | str] | tuple[Sequence[int | str], str]


class OpBuilder:
    """Records the nodes of one graph: ``op.Relu(x)``, ``op.Split(x, _outputs=2, axis=0)``."""

    def __init__(self) -> None:
        self.nodes: list[ir.Node] = []
        self.initializers: list[ir.Value] = []

    def __getattr__(self, op_type: str) -> Callable[..., Any]:
        if not op_type[:1].isupper():
            raise AttributeError(op_type)
        return lambda *inputs, **attributes: self.node(op_type, *inputs, **attributes)

    def node(self, op_type: str, *inputs: Any, _outputs: int = 1, _domain: str = "", **attributes: Any) -> Any:
        """Add a node; returns its output value, or a tuple of them when ``_outputs`` > 1."""
        name = f"{op_type.lower()}{len(self.nodes)}"
        values = [self.constant(i) if isinstance(i, (np.ndarray, int, float)) else i for i in inputs]
        node = ir.node(op_type, values, attributes, domain=_domain, num_outputs=_outputs, name=name)
        for index, output in enumerate(node.outputs):
            output.name = name if _outputs == 1 else f"{name}_{index}"
        self.nodes.append(node)
        return node.outputs[0] if _outputs == 1 else tuple(node.outputs)

    def constant(self, array: Any, name: str | None = None) -> ir.Value:
        """An initializer holding ``array`` (a Python float becomes float32, an int int64)."""
        if isinstance(array, float):
            array = np.float32(array)
        tensor = ir.tensor(np.asarray(array), name=name or f"const{len(self.initializers)}")
        value = ir.Value(name=tensor.name, shape=tensor.shape, type=ir.TensorType(tensor.dtype), const_value=tensor)
        self.initializers.append(value)
        return value


def pattern_model(
    pattern: Callable[..., Any],
    inputs: Mapping[str, InputSpec],
    *,
    opset: int = 13,
    ir_version: int = 8,
    scope: str = "main",
    extra_opsets: Mapping[str, int] | None = None,
) -> onnx.ModelProto:
    """A checked model whose graph is ``pattern(op, *input_values)``, placed in ``scope``.

    ``inputs`` maps each input name to its shape (float32), or to ``(shape, dtype name)``; a
    string dim is dynamic. ``scope`` is one of ``main``, ``function`` (inside a model-local
    function called from the main graph), ``if`` (in both branches of an If on a new bool input
    ``cond``) or ``loop`` (in the body of a two-trip Loop; outputs gain a leading axis of 2).
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    op = OpBuilder()
    values = [_input(name, spec) for name, spec in inputs.items()]
    outputs = pattern(op, *values)
    outputs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
    for index, value in enumerate(outputs):
        value.name = "y" if len(outputs) == 1 else f"y{index}"
    graph = ir.Graph(
        values,
        outputs,
        nodes=op.nodes,
        initializers=op.initializers,
        opset_imports={"": opset, **(extra_opsets or {})},
        name="pattern",
    )
    proto = ir.serde.serialize_model(ir.Model(graph, ir_version=ir_version, producer_name="optimizer.testing"))
    _type_outputs(proto)
    model = nest(proto, scope)
    onnx.checker.check_model(model, full_check=True)
    return model


def _input(name: str, spec: InputSpec) -> ir.Value:
    shape, dtype = spec if isinstance(spec, tuple) else (spec, "float32")
    element = ir.DataType.from_numpy(np.dtype(dtype))
    return ir.Value(name=name, shape=ir.Shape(list(shape)), type=ir.TensorType(element))


def _type_outputs(model: onnx.ModelProto) -> None:
    """Give the graph outputs the types onnx's shape inference finds (ONNX requires them)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    types = {info.name: info.type for info in (*inferred.graph.value_info, *inferred.graph.output)}
    for output in model.graph.output:
        if output.name in types:
            output.type.CopyFrom(types[output.name])
