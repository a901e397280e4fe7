"""Write a model with its weights inline without building it in memory first.

``onnx.save`` and ``onnx_ir.save`` build the whole ModelProto (a copy of every weight) and then
its bytes (a second copy) before writing. Protobuf's wire format lets a message be written in
parts instead: fields may come in any order and a repeated field is its entries one after the
other. So the model is written as its skeleton (everything but the large weights of the main
graph, serialised by onnx-ir) followed by each weight as one ``GraphProto.initializer`` entry whose
``raw_data`` bytes go from the tensor's own buffer to the file. Parsers read the result as the
same ModelProto.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
import onnx_ir as ir

MODEL_GRAPH = 7  # ModelProto.graph
GRAPH_INITIALIZER = 5  # GraphProto.initializer
TENSOR_RAW_DATA = 9  # TensorProto.raw_data
LENGTH_DELIMITED = 2
STREAMED_MIN_BYTES = 1024  # smaller weights stay in the skeleton


def write_model(model: ir.Model, file: BinaryIO) -> None:
    """Write ``model`` (weights inline) to ``file`` as a binary ModelProto."""
    initializers = list(model.graph.initializers.values())
    streamed = [value for value in initializers if _streamable(value.const_value)]
    for value in streamed:  # out of the skeleton for the time it is serialised
        model.graph.initializers.pop(value.name)
    try:
        proto = ir.serde.serialize_model(model)
    finally:  # back, in their order
        model.graph.initializers.clear()
        for value in initializers:
            model.graph.initializers.add(value)
    graph = proto.graph.SerializeToString()
    proto.ClearField("graph")
    entries = [(_header(value), value.const_value) for value in streamed]
    sizes = [len(header) + _field_size(TENSOR_RAW_DATA, tensor.nbytes) for header, tensor in entries]
    graph_size = len(graph) + sum(_field_size(GRAPH_INITIALIZER, size) for size in sizes)
    file.write(proto.SerializeToString())
    file.write(_key(MODEL_GRAPH) + _varint(graph_size))
    file.write(graph)
    for (header, tensor), size in zip(entries, sizes, strict=True):
        file.write(_key(GRAPH_INITIALIZER) + _varint(size))
        file.write(header)
        file.write(_key(TENSOR_RAW_DATA) + _varint(tensor.nbytes))
        file.write(_raw(tensor))


def _streamable(tensor: ir.TensorProtocol | None) -> bool:
    """Whether ``tensor`` is written as raw little-endian bytes: a numeric tensor large enough to matter."""
    return (
        tensor is not None
        and tensor.nbytes >= STREAMED_MIN_BYTES
        and tensor.dtype not in (ir.DataType.STRING, ir.DataType.UNDEFINED)
        and tensor.dtype.bitwidth % 8 == 0  # sub-byte types pack two to a byte: left to onnx-ir
    )


def _header(value: ir.Value) -> bytes:
    """The TensorProto of ``value`` without its data: name, dims, type, doc string, metadata."""
    tensor = value.const_value
    stub = ir.ExternalTensor("", 0, tensor.nbytes, tensor.dtype, shape=tensor.shape, name=value.name,
                             doc_string=tensor.doc_string, metadata_props=dict(tensor.metadata_props))
    proto = ir.serde.serialize_tensor(stub)
    proto.ClearField("external_data")
    proto.ClearField("data_location")
    return proto.SerializeToString()


def _raw(tensor: ir.TensorProtocol) -> memoryview | bytes:
    """The tensor's bytes as ``raw_data`` holds them (little-endian), without a copy where it can."""
    if isinstance(tensor, ir.Tensor) and isinstance(tensor.raw, np.ndarray):
        array = tensor.raw
        if array.flags.c_contiguous and array.dtype.byteorder in ("<", "=", "|"):
            return memoryview(array.reshape(-1).view(np.uint8))
    return tensor.tobytes()


def _key(field: int) -> bytes:
    return _varint(field << 3 | LENGTH_DELIMITED)


def _field_size(field: int, length: int) -> int:
    """Bytes a length-delimited field of ``length`` bytes takes: key, length, payload."""
    return len(_key(field)) + len(_varint(length)) + length


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        if number:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)
