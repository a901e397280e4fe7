"""Write a model with its weights inline without building it in memory first.

``onnx.save`` and ``onnx_ir.save`` build the whole ModelProto (a copy of every weight) and then
its bytes (a second copy) before writing. Protobuf's wire format lets a message be written in
parts instead: fields may come in any order and a repeated field is its entries one after the
other. So the model is written as its skeleton (everything but the large weights of the main
graph, serialised by onnx-ir: :mod:`optimizer.skeleton`) followed by each weight as one
``GraphProto.initializer`` entry whose ``raw_data`` bytes go from the tensor's own buffer to the
file. Parsers read the result as the same ModelProto.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
import onnx
import onnx_ir as ir

from optimizer.skeleton import skeleton_proto

MODEL_GRAPH = 7  # ModelProto.graph
GRAPH_INITIALIZER = 5  # GraphProto.initializer
TENSOR_RAW_DATA = 9  # TensorProto.raw_data
LENGTH_DELIMITED = 2


def write_model(model: ir.Model, file: BinaryIO, skeleton: onnx.ModelProto | None = None) -> None:
    """Write ``model`` (weights inline) to ``file`` as a binary ModelProto.

    What is written is the model's skeleton (:func:`optimizer.skeleton.skeleton_proto`) without
    its initializers and the typed inputs that stand for its large weights, then every
    initializer in the model's order: the small ones as the skeleton holds them, the large ones
    streamed. ``skeleton``, when given, is that skeleton, made since the model last changed (the
    checker's), and is used up: the graph is then not serialised again. Either way the bytes are
    the same, and a model read back is written the same again.
    """
    proto = skeleton_proto(model) if skeleton is None else skeleton
    entries = _initializer_entries(proto, list(model.graph.initializers.values()))
    graph = proto.graph.SerializeToString()
    proto.ClearField("graph")
    sizes = [len(head) + (0 if tensor is None else _field_size(TENSOR_RAW_DATA, tensor.nbytes))
             for head, tensor in entries]
    graph_size = len(graph) + sum(_field_size(GRAPH_INITIALIZER, size) for size in sizes)
    file.write(proto.SerializeToString())
    file.write(_key(MODEL_GRAPH) + _varint(graph_size))
    file.write(graph)
    for (head, tensor), size in zip(entries, sizes, strict=True):
        file.write(_key(GRAPH_INITIALIZER) + _varint(size))
        file.write(head)
        if tensor is not None:
            file.write(_key(TENSOR_RAW_DATA) + _varint(tensor.nbytes))
            file.write(_raw(tensor))


def _initializer_entries(
    skeleton: onnx.ModelProto, initializers: list[ir.Value]
) -> list[tuple[bytes, ir.TensorProtocol | None]]:
    """Take the initializers out of the skeleton, and the typed inputs that stand for the large
    ones (declared after the model's own inputs); return, in the model's order, each
    initializer's TensorProto bytes, with the tensor whose ``raw_data`` follows when it is
    streamed (a large numeric one; a packed 4-bit one is serialised by onnx-ir instead)."""
    small = {tensor.name: tensor.SerializeToString() for tensor in skeleton.graph.initializer}
    del skeleton.graph.initializer[:]
    stand_ins = {value.name for value in initializers if value.name not in small and not value.is_graph_input()}
    while skeleton.graph.input and skeleton.graph.input[-1].name in stand_ins:
        del skeleton.graph.input[-1]
    entries: list[tuple[bytes, ir.TensorProtocol | None]] = []
    for value in initializers:
        tensor = value.const_value
        if value.name in small:
            entries.append((small[value.name], None))
        elif tensor is not None and _streamable(tensor):
            entries.append((_header(value), tensor))
        elif tensor is not None:
            entries.append((ir.serde.serialize_tensor(tensor).SerializeToString(), None))
    return entries


def _streamable(tensor: ir.TensorProtocol) -> bool:
    """Whether ``tensor`` is written as raw little-endian bytes: a numeric tensor of whole bytes."""
    return (
        tensor.dtype not in (ir.DataType.STRING, ir.DataType.UNDEFINED)
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
