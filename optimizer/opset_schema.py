"""ONNX operator schemas by opset: which version a node is, and whether a node is valid at an opset.

Validity covers what a relabelled node can get wrong: the operator exists (and is not
deprecated), input and output counts, attribute names, required attributes, and the element
types of inputs and outputs against the schema's type constraints (one binding per type
parameter). Types come from the values themselves or are propagated through the graph with
the same schemas, so a value without type information is simply not checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache

import onnx
import onnx_ir as ir

Variadic = onnx.defs.OpSchema.FormalParameterOption.Variadic

# Operators whose output type is set by an attribute, not by a type parameter bound by an input.
_TYPE_ATTRIBUTES = {"Cast": "to", "EyeLike": "dtype", "RandomNormalLike": "dtype", "RandomUniformLike": "dtype"}
# The element type of a Constant given by a plain attribute (opset 12 and later).
_CONSTANT_LISTS = {
    "value_float": ir.DataType.FLOAT,
    "value_floats": ir.DataType.FLOAT,
    "value_int": ir.DataType.INT64,
    "value_ints": ir.DataType.INT64,
    "value_string": ir.DataType.STRING,
    "value_strings": ir.DataType.STRING,
}


@cache
def schema_at(op_type: str, opset: int) -> onnx.defs.OpSchema | None:
    """The default-domain schema ``op_type`` has at ``opset``, or None when it does not exist there."""
    try:
        return onnx.defs.get_schema(op_type, opset, "")
    except onnx.defs.SchemaError:
        return None


def since_version(op_type: str, opset: int) -> int | None:
    """The opset in which the version of ``op_type`` used at ``opset`` was introduced."""
    schema = schema_at(op_type, opset)
    return None if schema is None else schema.since_version


def same_form(newer: onnx.defs.OpSchema, older: onnx.defs.OpSchema) -> bool:
    """Whether two versions differ in type support only (same inputs, outputs and attributes)."""

    def form(schema: onnx.defs.OpSchema) -> tuple:
        attributes = {
            name: (attr.type, attr.required, attr.default_value.SerializeToString())
            for name, attr in schema.attributes.items()
        }
        return (
            [param.option for param in schema.inputs],
            [param.option for param in schema.outputs],
            attributes,
        )

    return form(newer) == form(older)


def type_string(value_type: ir.TypeProtocol | None) -> str | None:
    """The type in the spelling of ONNX schemas, e.g. ``tensor(float)``; None when unknown."""
    if isinstance(value_type, ir.TensorType):
        if value_type.dtype == ir.DataType.UNDEFINED:
            return None
        return f"tensor({value_type.dtype.name.lower()})"
    if isinstance(value_type, ir.SparseTensorType):
        return f"sparse_tensor({value_type.dtype.name.lower()})"
    if isinstance(value_type, (ir.SequenceType, ir.OptionalType)):
        inner = type_string(value_type.elem_type)
        kind = "seq" if isinstance(value_type, ir.SequenceType) else "optional"
        return None if inner is None else f"{kind}({inner})"
    return None


def tensor_type(dtype: ir.DataType) -> str:
    """The schema spelling of a tensor of ``dtype``."""
    return f"tensor({dtype.name.lower()})"


class TypeChecker:
    """Checks nodes against the schemas of one opset, propagating element types as it goes.

    ``types`` maps values to schema type strings; it starts from what the values say about
    themselves and grows with what the schemas imply, so it can be reused across graphs.
    """

    def __init__(self, types: dict[ir.Value, str] | None = None) -> None:
        self.types: dict[ir.Value, str] = {} if types is None else types

    def type_of(self, value: ir.Value | None) -> str | None:
        """The known type of ``value``, or None."""
        if value is None:
            return None
        own = type_string(value.type)
        if own is None and value.const_value is not None:
            own = tensor_type(value.const_value.dtype)
        return own if own is not None else self.types.get(value)

    def walk(self, nodes: Iterable[ir.Node], opset: int, problem: Callable[[ir.Node, str], None]) -> None:
        """Check every default-domain node of ``nodes`` (and their subgraphs) at ``opset``."""
        for node in nodes:
            if node.domain == "":
                reason = self.check(node, opset)
                if reason is not None:
                    problem(node, reason)
            for attr in node.attributes.values():
                if attr.type == ir.AttributeType.GRAPH:
                    self.walk(attr.as_graph(), opset, problem)
                elif attr.type == ir.AttributeType.GRAPHS:
                    for graph in attr.as_graphs():
                        self.walk(graph, opset, problem)

    def check(self, node: ir.Node, opset: int) -> str | None:
        """Why ``node`` is not valid at ``opset`` (and record its output types), or None."""
        schema = schema_at(node.op_type, opset)
        if schema is None:
            return f"opset {opset} has no {node.op_type}"
        if schema.deprecated:
            return f"{node.op_type} is deprecated at opset {opset}"
        reason = _arity_problem(node, schema, opset) or _attribute_problem(node, schema, opset)
        if reason is not None:
            return reason
        return self._bind_types(node, schema, opset)

    def _bind_types(self, node: ir.Node, schema: onnx.defs.OpSchema, opset: int) -> str | None:
        allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
        bound: dict[str, str] = {}

        def accept(formal: onnx.defs.OpSchema.FormalParameter, actual: str | None, what: str) -> str | None:
            if actual is None:
                return None
            param = formal.type_str
            if actual not in allowed.get(param, {param}):
                return f"its {what} has type {actual}, which {node.op_type} does not take at opset {opset}"
            one_type = param in allowed and (formal.option != Variadic or formal.is_homogeneous)
            if one_type and bound.setdefault(param, actual) != actual:
                return f"its {what} has type {actual}, but {bound[param]} elsewhere; opset {opset} needs one type"
            return None

        for index, value in enumerate(node.inputs):
            formal = schema.inputs[min(index, len(schema.inputs) - 1)]
            reason = accept(formal, self.type_of(value), f"input {index}")
            if reason is not None:
                return reason
        for index, value in enumerate(node.outputs):
            formal = schema.outputs[min(index, len(schema.outputs) - 1)]
            actual = self.type_of(value) or _attribute_type(node, index)
            reason = accept(formal, actual, f"output {index}")
            if reason is not None:
                return reason
            derived = actual or bound.get(formal.type_str)
            if derived is None and formal.type_str not in allowed:
                derived = formal.type_str  # a fixed type such as tensor(int64)
            if derived is not None:
                self.types.setdefault(value, derived)
        return None


def _arity_problem(node: ir.Node, schema: onnx.defs.OpSchema, opset: int) -> str | None:
    inputs = len(node.inputs)  # omitted inputs ('') count, as in onnx's checker
    if not schema.min_input <= inputs <= schema.max_input:
        takes = _range(schema.min_input, schema.max_input)
        return f"it has {inputs} inputs; {node.op_type} takes {takes} at opset {opset}"
    outputs = len(node.outputs)
    if not schema.min_output <= outputs <= schema.max_output:
        return (
            f"it has {outputs} outputs; {node.op_type} gives {_range(schema.min_output, schema.max_output)}"
            f" at opset {opset}"
        )
    return None


def _attribute_problem(node: ir.Node, schema: onnx.defs.OpSchema, opset: int) -> str | None:
    for name in node.attributes:
        if name not in schema.attributes:
            return f"its attribute '{name}' does not exist at opset {opset}"
    for name, attr in schema.attributes.items():
        if attr.required and name not in node.attributes:
            return f"it lacks the attribute '{name}', which opset {opset} requires"
    return None


def _attribute_type(node: ir.Node, index: int) -> str | None:
    """The output type an attribute fixes (Cast's ``to``, a Constant's tensor), or None."""
    if index != 0:
        return None
    if node.op_type == "Constant":
        tensor = node.attributes.get_tensor("value")
        if tensor is not None:
            return tensor_type(tensor.dtype)
        listed = next((dtype for name, dtype in _CONSTANT_LISTS.items() if name in node.attributes), None)
        return None if listed is None else tensor_type(listed)
    if node.op_type == "ConstantOfShape":
        tensor = node.attributes.get_tensor("value")
        return tensor_type(ir.DataType.FLOAT if tensor is None else tensor.dtype)
    name = _TYPE_ATTRIBUTES.get(node.op_type)
    dtype = None if name is None else node.attributes.get_int(name)
    return None if dtype is None else tensor_type(ir.DataType(dtype))


def _range(low: int, high: int) -> str:
    if low == high:
        return str(low)
    return f"at least {low}" if high >= 2**31 - 1 else f"{low} to {high}"
