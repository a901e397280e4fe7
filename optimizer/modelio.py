"""Load ONNX files into onnx-ir with checked external data, and save them atomically."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir

from optimizer.errors import UserError, error_line
from optimizer.graph_walk import all_graphs
from optimizer.proto_stream import write_model
from optimizer.skeleton import proto_skeleton, skeleton_proto
from profiles.atomic import is_stream, place_new, remove_stale, replace_atomic, staging_folder, write_problem

# Protobuf cannot serialise a message above 2 GiB: past this the weights must go to external data.
EXTERNAL_DATA_THRESHOLD = 2 * 1024**3
# Tensors at least this large go to the external data file when one is written.
EXTERNAL_TENSOR_MIN_BYTES = 1024
STAGING_PREFIX = ".onnx-opt-"  # staging folders beside an output: .onnx-opt-<pid>-<random>
VERIFY_PREFIX = "onnx-opt-verify-"  # copies for onnxruntime in the temporary folder, named alike


def load_model(path: str | os.PathLike) -> ir.Model:
    """Load ``path`` into onnx-ir, refusing anything that is not a complete ONNX model.

    External data is resolved relative to the model's folder; locations that escape it
    (absolute paths, ``..``, symlinks out of the folder) and missing or short data files
    are refused with a :class:`UserError`.
    """
    return load_model_and_skeleton(path)[0]


def load_model_and_skeleton(path: str | os.PathLike) -> tuple[ir.Model, onnx.ModelProto]:
    """:func:`load_model`, and the skeleton (:mod:`optimizer.skeleton`) of the proto it was read
    from, which the checker saw: what shape inference of the unchanged model can use instead of
    serialising it again."""
    path = Path(path)
    proto = load_proto(path)
    parts = proto_parts(proto)
    check_supported(proto, path, parts)
    external = check_external_data(path.parent, parts)
    skeleton = proto_skeleton(proto)
    try:
        onnx.checker.check_model(skeleton)  # the graph: no weight is copied or read again
        model = ir.serde.deserialize_model(proto)
    except Exception as exc:
        raise UserError(f"{path}: invalid ONNX model, or truncated ({error_line(exc)})") from None
    if external:
        ir.external_data.set_base_dir(model.graph, path.parent)
    return model, skeleton


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


def check_supported(proto: onnx.ModelProto, path: Path, parts: ProtoParts) -> None:
    """Refuse what onnx-ir and onnxruntime cannot take: sparse initializers and sparse tensor
    attributes (anywhere), and negative dims in the declared shapes of the main graph's inputs.
    ``parts`` are the proto's (:func:`proto_parts`)."""
    for graph in parts.graphs:
        for sparse in graph.sparse_initializer:
            raise UserError(
                f"{path}: '{sparse.values.name}' is a sparse initializer, which onnx-opt cannot load; "
                "store it as a dense initializer"
            )
    for node, attr in parts.sparse:
        if attr.HasField("sparse_tensor") or len(attr.sparse_tensors):
            raise UserError(
                f"{path}: node '{node.name}' ({node.op_type}) has a sparse tensor attribute '{attr.name}', "
                "which onnx-opt cannot load; use a dense one"
            )
    for value in proto.graph.input:
        dims = value.type.tensor_type.shape.dim if value.type.HasField("tensor_type") else []
        for axis, dim in enumerate(dims):
            if dim.HasField("dim_value") and dim.dim_value < 0:
                raise UserError(
                    f"{path}: input '{value.name}' declares dim {dim.dim_value} on axis {axis}; a size cannot be "
                    "negative (a dynamic dim is a name, e.g. 'batch')"
                )


def check_external_data(folder: Path, parts: ProtoParts) -> bool:
    """Refuse external-data locations outside ``folder``, and missing or short data files; say
    whether the model has any external tensor. ``parts`` are the model's (:func:`proto_parts`)."""
    root = folder.resolve()
    external = False
    for tensor in parts.tensors:
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        external = True
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
    return external


def save_model(
    model: ir.Model,
    path: str | os.PathLike,
    *,
    external_data: bool | None = None,
    skeleton: onnx.ModelProto | None = None,
) -> list[Path]:
    """Save ``model`` to ``path`` atomically and return the files written (the model first).

    Everything is written into a staging folder beside ``path`` (``.onnx-opt-<pid>-*``, removed
    on every exit path) and renamed into place. External data is used when ``external_data`` is
    True, or, when it is None, when the model already holds external tensors or its weights
    exceed protobuf's 2 GiB limit. The model and its data are replaced as one unit: the data goes
    to ``<name>.data`` when no such file exists, else to a new ``<name>.<random>.data``; the model
    that references it is renamed into place last, and only then is the data file the old model
    referenced removed (when onnx-opt named it). At every instant ``path`` is the old pair or the
    new one. A symbolic link ``path`` is followed. ``skeleton``: the model's, when the caller has
    one made since the model last changed (:func:`check_model`'s); it is used up, and saves
    serialising the graph again when the weights are written inline.
    """
    with staged_save(model, path, external_data=external_data, skeleton=skeleton) as staged:
        return staged.commit()


class StagedSave:
    """A model written into a staging folder beside its output, not yet in place: ``model`` is
    the staged file (its external data beside it), which can be read, e.g. by onnxruntime."""

    def __init__(self, given: Path, path: Path, model: Path, data_name: str | None) -> None:
        self.given, self.path, self.model, self.data_name = given, path, model, data_name
        self.old_data = own_data_files(path)

    def commit(self) -> list[Path]:
        """Put the staged files in place, the model last, and return them (the model first)."""
        written = [self.given]
        folder = self.path.parent
        if self.data_name is not None:
            try:
                place_new(self.model.parent / self.data_name, folder / self.data_name)
            except FileExistsError:
                raise UserError(
                    f"{folder / self.data_name} appeared while saving (another process writing {self.path}?); "
                    "nothing was replaced"
                ) from None
            self.old_data.discard(folder / self.data_name)
            written.append((folder if self.given.is_symlink() else self.given.parent) / self.data_name)
        replace_atomic(self.model, self.path)
        for data in self.old_data:
            with contextlib.suppress(OSError):  # the new pair is in place: a leftover is no failure
                data.unlink(missing_ok=True)
        return written


@contextlib.contextmanager
def staged_save(
    model: ir.Model,
    path: str | os.PathLike,
    *,
    external_data: bool | None = None,
    skeleton: onnx.ModelProto | None = None,
) -> Iterator[StagedSave]:
    """Write ``model`` for ``path`` as :func:`save_model` does, but put it in place only when the
    caller calls ``commit()`` on what this yields; on leaving, whatever is still staged is removed."""
    given = Path(path)
    path = Path(os.path.realpath(given))  # a symbolic link is followed: its file is replaced
    check_output(path)
    folder = path.parent
    if external_data is None:
        external_data = has_external_data(model) or weight_bytes(model) > EXTERNAL_DATA_THRESHOLD
    with staging_folder(folder, STAGING_PREFIX) as tmp:
        staged = tmp / path.name
        name = None
        if external_data:
            name = path.name + ".data"
            if os.path.lexists(folder / name):
                name = f"{path.name}.{secrets.token_hex(4)}.data"
            ir.save(model, staged, external_data=name, size_threshold_bytes=EXTERNAL_TENSOR_MIN_BYTES)
        else:
            inline = _with_inline_weights(model)
            with open(staged, "wb") as file:
                write_model(inline, file, skeleton if inline is model else None)
        yield StagedSave(given, path, staged, name)


def check_output(path: str | os.PathLike, option: str = "-o") -> None:
    """Refuse, with a :class:`UserError` naming ``option``, a model output that cannot be written: a
    missing or read-only folder, a directory, a device, a FIFO or a socket (a model is only ever a
    regular file)."""
    problem = write_problem(path, streams=False)
    if problem:
        raise UserError(f"{option} {path}: {problem}")


def check_outputs(
    outputs: Mapping[str, Path | None],
    *,
    inputs: Mapping[str, Path | None] | None = None,
    models: Mapping[str, Path | None] | None = None,
) -> None:
    """Refuse, with a :class:`UserError` and before any work, files a verb would write (``outputs``,
    keyed by the option that names them) that cannot be written (a missing or read-only folder,
    a directory, a socket) or that would destroy another file of the run: one of ``inputs``, one
    of ``models`` (the input and the output model), an external-data file such a model references
    or a save of it would write, or another of ``outputs``. Paths are compared after following
    symbolic links; a character device or a FIFO clashes with nothing (it is written through).
    """
    for label, path in outputs.items():
        if path is not None and (problem := write_problem(path)):
            raise UserError(f"{label} {path}: {problem}")
    protected: dict[Path, str] = {}
    for label, path in (inputs or {}).items():
        if path is not None:
            protected.setdefault(_real(path), f"{label} {path}")
    models = {label: path for label, path in (models or {}).items() if path is not None}
    for label, path in models.items():
        protected.setdefault(_real(path), f"{label} {path}")
    existing = any(_real(path).is_file() for path in outputs.values() if path is not None)
    for label, path in models.items() if existing else ():  # only a file that exists can be data
        for data in referenced_files(path):
            protected.setdefault(data, f"{data}, the external data of {label} {path}")
    seen: dict[Path, str] = {}
    for label, path in outputs.items():
        if path is None or is_stream(path):
            continue
        target = _real(path)
        if target in protected:
            raise UserError(f"{label} {path} would overwrite {protected[target]}; give another file name")
        for model_label, model in models.items():
            if is_data_name(_real(model), target):
                raise UserError(
                    f"{label} {path} is where {model_label} {model} keeps its external data; give another file name"
                )
        if target in seen:
            raise UserError(f"{label} {path} and {seen[target]} are the same file; give two names")
        seen[target] = f"{label} {path}"


def referenced_files(path: str | os.PathLike) -> list[Path]:
    """The external-data files the ONNX model at ``path`` references (resolved), or [] when it is
    missing or unreadable. Locations that escape the model's folder are left out."""
    path = Path(os.path.realpath(path))
    if not path.is_file():
        return []
    try:
        proto = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # not a model: it references nothing
        return []
    files = []
    for tensor in proto_parts(proto).tensors:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next((entry.value for entry in tensor.external_data if entry.key == "location"), "")
            data = Path(os.path.realpath(path.parent / location)) if location and not os.path.isabs(location) else None
            if data is not None and data.parent == path.parent and data not in files:
                files.append(data)
    return files


def clean_stale_staging(folder: str | os.PathLike) -> list[str]:
    """Remove the staging folders a killed onnx-opt left in ``folder`` (and its verification copies
    in the temporary folder); one line saying so, if any."""
    removed = remove_stale(folder, STAGING_PREFIX) + remove_stale(tempfile.gettempdir(), VERIFY_PREFIX)
    if not removed:
        return []
    names = ", ".join(str(path) for path in removed)
    return [f"removed {len(removed)} staging folder(s) left by onnx-opt runs that were killed: {names}"]


def own_data_files(path: str | os.PathLike) -> set[Path]:
    """The external-data files of the model at ``path`` that onnx-opt named (``<name>.data``,
    ``<name>.<random>.data``): the files a save to ``path`` removes once the new model is in place."""
    path = Path(os.path.realpath(path))
    try:
        if not any(is_data_name(path, Path(entry.path)) for entry in os.scandir(path.parent)):
            return set()  # nothing to remove: no need to read the model
    except OSError:
        return set()
    return {data for data in referenced_files(path) if is_data_name(path, data)}


def is_data_name(model: Path, data: Path) -> bool:
    """Whether ``data`` is a name a save of ``model`` gives its external data: ``<name>.data`` or
    ``<name>.<8 hex digits>.data`` in the model's folder."""
    pattern = re.escape(model.name) + r"(\.[0-9a-f]{8})?\.data"
    return data.parent == model.parent and re.fullmatch(pattern, data.name) is not None


def check_model(model: ir.Model) -> onnx.ModelProto:
    """Run the onnx checker on ``model``; raise ``onnx.checker.ValidationError`` if it fails, else
    return the skeleton it checked (which :func:`save_model` can write the model from).

    The checker sees the model's skeleton (:mod:`optimizer.skeleton`): the large weights of the
    main graph are checked as typed inputs, so nothing of their data is copied or read, whatever
    their size or location.
    """
    skeleton = skeleton_proto(model)
    onnx.checker.check_model(skeleton)
    return skeleton


def has_external_data(model: ir.Model) -> bool:
    """Whether any initializer of the model lives in an external data file."""
    return any(True for _ in external_tensors(model))


def weight_bytes(model: ir.Model) -> int:
    """Total size in bytes of every initializer, subgraphs included."""
    return sum(v.const_value.nbytes for v in _initializers(model) if v.const_value is not None)


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(path))


def _with_inline_weights(model: ir.Model) -> ir.Model:
    """Return ``model`` with external tensors read into memory (a shallow copy when needed)."""
    if not has_external_data(model):
        return model
    inline = model.clone()
    return ir.external_data.load_to_model(inline)


def _initializers(model: ir.Model) -> Iterator[ir.Value]:
    for graph in all_graphs(model):
        yield from graph.initializers.values()


def external_tensors(model: ir.Model) -> Iterator[ir.ExternalTensor]:
    """Every initializer of ``model`` (subgraphs included) that lives in an external data file."""
    for value in _initializers(model):
        if isinstance(value.const_value, ir.ExternalTensor):
            yield value.const_value


_A = onnx.AttributeProto
_SUBGRAPHS = (_A.GRAPH, _A.GRAPHS, _A.UNDEFINED)  # an untyped attribute may hold anything
_TENSORS = (_A.TENSOR, _A.TENSORS, _A.UNDEFINED)
_SPARSE = (_A.SPARSE_TENSOR, _A.SPARSE_TENSORS, _A.UNDEFINED)


@dataclass
class ProtoParts:
    """What the load's checks look at in a ModelProto: every graph (the main one first, then every
    subgraph of a node attribute, in functions too), every tensor (initializers, the values of
    sparse initializers, tensor attributes) and every sparse tensor attribute with its node."""

    graphs: list[onnx.GraphProto] = field(default_factory=list)
    tensors: list[onnx.TensorProto] = field(default_factory=list)
    sparse: list[tuple[onnx.NodeProto, onnx.AttributeProto]] = field(default_factory=list)


def proto_parts(proto: onnx.ModelProto) -> ProtoParts:
    """The :class:`ProtoParts` of ``proto``, from one walk over every node's attributes, told
    apart by type (fast on 100k nodes; an untyped attribute may hold anything)."""
    parts = ProtoParts()
    pending = [proto.graph]

    def visit(nodes: Iterable[onnx.NodeProto]) -> None:
        for node in nodes:
            for attr in node.attribute:
                kind = attr.type
                if kind in _SUBGRAPHS:
                    if attr.HasField("g"):
                        pending.append(attr.g)
                    pending.extend(attr.graphs)
                if kind in _TENSORS:
                    if attr.HasField("t"):
                        parts.tensors.append(attr.t)
                    parts.tensors.extend(attr.tensors)
                if kind in _SPARSE:
                    parts.sparse.append((node, attr))

    for function in proto.functions:
        visit(function.node)
    while pending:
        graph = pending.pop(0)
        parts.graphs.append(graph)
        parts.tensors.extend(graph.initializer)
        parts.tensors.extend(sparse.values for sparse in graph.sparse_initializer)
        visit(graph.node)
    return parts


def _tensor_nbytes(tensor: onnx.TensorProto) -> int:
    itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
    return int(np.prod(tensor.dims, dtype=np.int64)) * itemsize
