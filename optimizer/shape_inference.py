"""Static shapes of every value, by onnx shape inference on a copy (the model is not changed)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import onnx
import onnx_ir as ir

# Initializers above this many elements are handed to inference as typed inputs, not data:
# inference needs their shapes only, and data propagation only small integer tensors.
_DATA_ELEMENTS = 1024


def infer_value_shapes(model: ir.Model, input_shapes: dict[str, list[int]]) -> dict[str, tuple[Any, ...]]:
    """Map value names to inferred dims (int, or str / None when dynamic), subgraphs included.

    ``input_shapes`` (from ``--input-shape``) overrides the graph inputs' shapes. Inference
    failures are tolerated: what could be inferred is returned.
    """
    proto = ir.serde.serialize_model(model)
    graph = proto.graph
    for value in graph.input:
        if value.name in input_shapes:
            _set_dims(value, input_shapes[value.name])
    _weights_as_inputs(graph)
    with contextlib.suppress(Exception):  # best effort: unknown shapes just stay unknown
        proto = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    shapes: dict[str, tuple[Any, ...]] = {}
    for info in _value_infos(proto.graph):
        tensor_type = info.type.tensor_type
        if tensor_type.HasField("shape"):
            shapes[info.name] = tuple(_dim(d) for d in tensor_type.shape.dim)
    return shapes


def not_static(value: ir.Value) -> str | None:
    """Why graph input ``value`` has no static shape (missing, or its first dynamic dim), or None."""
    if value.shape is None:
        return f"input '{value.name}' has no shape"
    for axis, dim in enumerate(value.shape):
        if not isinstance(dim, int):
            return f"input '{value.name}' has dynamic dimension '{dim}' (axis {axis})"
    return None


def _set_dims(value: onnx.ValueInfoProto, dims: list[int]) -> None:
    shape = value.type.tensor_type.shape
    shape.ClearField("dim")
    for dim in dims:
        shape.dim.add().dim_value = dim


def _weights_as_inputs(graph: onnx.GraphProto) -> None:
    keep = []
    inputs = {value.name for value in graph.input}
    for tensor in graph.initializer:
        if _elements(tensor) <= _DATA_ELEMENTS:
            keep.append(tensor)
            continue
        if tensor.name not in inputs:
            graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    del graph.initializer[:]
    graph.initializer.extend(keep)


def _elements(tensor: onnx.TensorProto) -> int:
    count = 1
    for dim in tensor.dims:
        count *= dim
    return count


def _value_infos(graph: onnx.GraphProto) -> Iterator[onnx.ValueInfoProto]:
    yield from graph.input
    yield from graph.output
    yield from graph.value_info
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _value_infos(attr.g)
            for sub in attr.graphs:
                yield from _value_infos(sub)


def _dim(dim: onnx.TensorShapeProto.Dimension) -> int | str | None:
    if dim.HasField("dim_value"):
        return dim.dim_value
    return dim.dim_param or None
