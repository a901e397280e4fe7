"""A model's skeleton: the model without the data of its large weights, for the onnx checker and
shape inference, which need the weights' types and shapes only.

Every main-graph initializer that is external or has more than ``LARGE_ELEMENTS`` elements
becomes a typed graph input; nothing of its data is copied or read. Smaller ones stay, so that
shape inference can still read shape-like constants.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import onnx
import onnx_ir as ir

LARGE_ELEMENTS = 1024


def skeleton_proto(model: ir.Model) -> onnx.ModelProto:
    """The skeleton of an onnx-ir model (the model is left as it was)."""
    swapped = []
    for value in model.graph.initializers.values():
        tensor = value.const_value
        if tensor is not None and _large(tensor):
            swapped.append((value, tensor))  # a stand-in that serialises as a reference, no data
            value.const_value = ir.ExternalTensor("", 0, tensor.nbytes, tensor.dtype, shape=tensor.shape,
                                                  name=value.name)
    try:
        proto = ir.serde.serialize_model(model)
    finally:
        for value, tensor in swapped:
            value.const_value = tensor
    initializers = list(proto.graph.initializer)
    del proto.graph.initializer[:]
    _add_initializers(proto.graph, initializers)
    return proto


def proto_skeleton(proto: onnx.ModelProto) -> onnx.ModelProto:
    """The skeleton of a ModelProto, as a new message (``proto`` is left as it was)."""
    skeleton = onnx.ModelProto()
    for field, value in proto.ListFields():
        if field.name != "graph":
            _copy_field(skeleton, field, value)
    for field, value in proto.graph.ListFields():
        if field.name != "initializer":
            _copy_field(skeleton.graph, field, value)
    _add_initializers(skeleton.graph, proto.graph.initializer)
    return skeleton


def _add_initializers(graph: onnx.GraphProto, initializers: Iterable[onnx.TensorProto]) -> None:
    """Give ``graph`` the small ``initializers`` as they are and the others as typed inputs."""
    inputs = {value.name for value in graph.input}
    for tensor in initializers:
        if tensor.data_location != onnx.TensorProto.EXTERNAL and _elements(tensor) <= LARGE_ELEMENTS:
            graph.initializer.append(tensor)
        elif tensor.name not in inputs:
            graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))


def _large(tensor: ir.TensorProtocol) -> bool:
    return isinstance(tensor, ir.ExternalTensor) or tensor.size > LARGE_ELEMENTS


def _elements(tensor: onnx.TensorProto) -> int:
    count = 1
    for dim in tensor.dims:
        count *= dim
    return count


def _copy_field(target: Any, field: Any, value: Any) -> None:
    """Set ``field`` of the message ``target`` to ``value`` (a copy), whatever its kind."""
    repeated = getattr(field, "is_repeated", None)  # protobuf 5+; older ones say it with the label
    if repeated if repeated is not None else field.label == field.LABEL_REPEATED:
        getattr(target, field.name).extend(value)
    elif field.type == field.TYPE_MESSAGE:
        getattr(target, field.name).CopyFrom(value)
    else:
        setattr(target, field.name, value)
