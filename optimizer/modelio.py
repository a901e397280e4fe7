"""Load ONNX files into onnx-ir with checked external data, and save them atomically."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from optimizer.errors import UserError, error_line

# Protobuf cannot serialise a message above 2 GiB: past this the weights must go to external data.
EXTERNAL_DATA_THRESHOLD = 2 * 1024**3
# Tensors at least this large go to the external data file when one is written.
EXTERNAL_TENSOR_MIN_BYTES = 1024


def load_model(path: str | os.PathLike) -> ir.Model:
    """Load ``path`` into onnx-ir, refusing anything that is not a complete ONNX model.

    External data is resolved relative to the model's folder; locations that escape it
    (absolute paths, ``..``, symlinks out of the folder) and missing or short data files
    are refused with a :class:`UserError`.
    """
    path = Path(path)
    proto = load_proto(path)
    check_external_data(proto, path.parent)
    try:
        onnx.checker.check_model(str(path))
    except Exception as exc:
        raise UserError(f"{path}: invalid ONNX model, or truncated ({error_line(exc)})") from None
    model = ir.serde.deserialize_model(proto)
    ir.external_data.set_base_dir(model.graph, path.parent)
    return model


def load_proto(path: Path) -> onnx.ModelProto:
    """Read and check the ModelProto of ``path`` without loading external data."""
    if not path.exists():
        raise UserError(f"{path}: no such file")
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not an ONNX file")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file, not an ONNX model")
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types for bad bytes
        raise UserError(f"{path}: not an ONNX model, or truncated ({error_line(exc)})") from None
    if not proto.HasField("graph") or proto.ir_version <= 0 or not proto.opset_import:
        raise UserError(f"{path}: not an ONNX model (no graph, IR version or opset import)")
    return proto


def check_external_data(proto: onnx.ModelProto, folder: Path) -> None:
    """Refuse external-data locations outside ``folder``, and missing or short data files."""
    root = folder.resolve()
    for tensor in _all_tensors(proto):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {entry.key: entry.value for entry in tensor.external_data}
        location = info.get("location", "")
        where = f"external data '{location}' of tensor '{tensor.name}'"
        if not location:
            raise UserError(f"tensor '{tensor.name}' is external but names no location")
        if os.path.isabs(location) or ".." in Path(location).parts or location.startswith("\\"):
            raise UserError(f"{where} escapes the model's folder: only relative paths inside it are allowed")
        data_path = (root / location).resolve()
        if not data_path.is_relative_to(root):
            raise UserError(f"{where} escapes the model's folder through a symbolic link")
        if not data_path.is_file():
            raise UserError(f"{where} is missing: expected {root / location}")
        offset = int(info.get("offset", 0))
        length = int(info["length"]) if "length" in info else _tensor_nbytes(tensor)
        if offset + length > data_path.stat().st_size:
            raise UserError(f"{where} is truncated: needs bytes {offset}..{offset + length}")


def save_model(model: ir.Model, path: str | os.PathLike, *, external_data: bool | None = None) -> list[Path]:
    """Save ``model`` to ``path`` atomically and return the files written.

    Everything is written into a temporary folder beside ``path`` and renamed into place,
    so a failure never leaves a half-written file. External data (``<name>.data`` beside
    the model) is used when ``external_data`` is True, or, when it is None, when the model
    already holds external tensors or its weights exceed protobuf's 2 GiB limit.
    """
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        raise UserError(f"{path}: output folder {folder} does not exist")
    if external_data is None:
        external_data = has_external_data(model) or weight_bytes(model) > EXTERNAL_DATA_THRESHOLD
    written = []
    with tempfile.TemporaryDirectory(dir=folder, prefix=".onnx-opt-") as tmp:
        staged = Path(tmp) / path.name
        if external_data:
            data_name = path.name + ".data"
            ir.save(model, staged, external_data=data_name, size_threshold_bytes=EXTERNAL_TENSOR_MIN_BYTES)
            os.replace(Path(tmp) / data_name, folder / data_name)
            written.append(folder / data_name)
        else:
            ir.save(_with_inline_weights(model), staged)
        if path.exists():
            os.chmod(staged, stat.S_IMODE(path.stat().st_mode))
        os.replace(staged, path)
    written.insert(0, path)
    return written


def check_model(model: ir.Model) -> None:
    """Run the onnx checker on ``model``; raise ``onnx.checker.ValidationError`` if it fails.

    External data is checked from its folder (the checker resolves locations against the
    working directory for in-memory models). Models whose in-memory weights exceed
    protobuf's 2 GiB limit cannot be serialised for the checker and are checked on load.
    """
    external = list(_external_tensors(model))
    if weight_bytes(model) - sum(tensor.nbytes for tensor in external) > EXTERNAL_DATA_THRESHOLD:
        return
    proto = ir.serde.serialize_model(model)
    folders = {Path(tensor.base_dir) for tensor in external}
    if not folders:
        onnx.checker.check_model(proto)
        return
    here = os.getcwd()
    os.chdir(folders.pop())
    try:
        onnx.checker.check_model(proto)
    finally:
        os.chdir(here)


def has_external_data(model: ir.Model) -> bool:
    """Whether any initializer of the model lives in an external data file."""
    return any(True for _ in _external_tensors(model))


def weight_bytes(model: ir.Model) -> int:
    """Total size in bytes of every initializer, subgraphs included."""
    return sum(v.const_value.nbytes for v in _initializers(model) if v.const_value is not None)


def _with_inline_weights(model: ir.Model) -> ir.Model:
    """Return ``model`` with external tensors read into memory (a shallow copy when needed)."""
    if not has_external_data(model):
        return model
    inline = model.clone()
    return ir.external_data.load_to_model(inline)


def _initializers(model: ir.Model) -> Iterator[ir.Value]:
    for graph in model.graphs():
        yield from graph.initializers.values()


def _external_tensors(model: ir.Model) -> Iterator[ir.ExternalTensor]:
    for value in _initializers(model):
        if isinstance(value.const_value, ir.ExternalTensor):
            yield value.const_value


def _all_tensors(proto: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    graphs = [proto.graph]
    nodes = [node for function in proto.functions for node in function.node]
    while graphs or nodes:
        if graphs:
            graph = graphs.pop()
            yield from graph.initializer
            yield from (sparse.values for sparse in graph.sparse_initializer)
            nodes.extend(graph.node)
            continue
        for attr in nodes.pop().attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                graphs.append(attr.g)
            graphs.extend(attr.graphs)


def _tensor_nbytes(tensor: onnx.TensorProto) -> int:
    itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    return int(np.prod(tensor.dims, dtype=np.int64)) * itemsize
