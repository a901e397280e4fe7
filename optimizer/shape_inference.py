"""Static shapes of every value, scope by scope, by onnx shape inference on a copy.

A name means something only inside its scope: the main graph, an If / Loop / Scan body, or a
model-local function. Results are therefore keyed by the onnx-ir :class:`~onnx_ir.Value`
itself, never by name. The main graph and its subgraphs are inferred together; a function's
body is inferred once per call site, from the shapes its caller passes in, and a dim is kept
only where every call site agrees (a rewrite inside a function must be right for each call).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import onnx
import onnx_ir as ir

from optimizer.errors import error_line
from optimizer.graph_walk import iter_nodes, own_subgraphs, walk
from optimizer.skeleton import skeleton_proto

Dims = tuple[Any, ...]  # int, or str / None for a dynamic dim


def infer_value_shapes(
    model: ir.Model,
    types: dict[ir.Value, int] | None = None,
    wanted: set[ir.Value] | None = None,
    skeleton: onnx.ModelProto | None = None,
) -> dict[ir.Value, Dims]:
    """Map every value whose shape could be inferred to its dims, in every scope; ``types``, when
    given, receives the element types inferred (inside a function: those all call sites agree on).
    With ``wanted``, only those values of the main graph and its subgraphs are looked up.
    ``skeleton`` is the model's skeleton when the caller has one that matches it (the proto the
    model was read from, unchanged since: same nodes, in the same order, with the same names).

    The model is not changed. Inference failures are tolerated: what could be inferred is
    returned, the rest stays unknown (:func:`inference_error` says why, when it matters).
    """
    proto = skeleton_proto(model) if skeleton is None else skeleton
    with contextlib.suppress(Exception):  # best effort: unknown shapes stay unknown
        proto = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    shapes: dict[ir.Value, Dims] = {}
    types = {} if types is None else types
    _collect(model.graph, proto.graph, shapes, types, wanted)
    _infer_functions(model, shapes, types)
    return shapes


def inference_error(model: ir.Model) -> str | None:
    """The first error onnx's shape inference meets in ``model`` (strict mode), as one line, or None."""
    proto = skeleton_proto(model)
    try:
        onnx.shape_inference.infer_shapes(proto, strict_mode=True, data_prop=True)
    except Exception as exc:  # onnx raises several types; the first error is the cause of the rest
        return error_line(exc).removeprefix("[ShapeInferenceError] Inference error(s): ")
    return None


def not_static(value: ir.Value) -> str | None:
    """Why graph input ``value`` has no static shape (missing, or its first dynamic dim), or None."""
    if value.shape is None:
        return f"input '{value.name}' has no shape"
    for axis, dim in enumerate(value.shape):
        if not isinstance(dim, int):
            return f"input '{value.name}' has dynamic dimension '{dim}' (axis {axis})"
    return None


def _collect(
    graph: ir.Graph,
    proto: onnx.GraphProto,
    shapes: dict[ir.Value, Dims],
    types: dict[ir.Value, int],
    wanted: set[ir.Value] | None = None,
) -> None:
    """Record the inferred dims (and element types) of ``graph``'s own values (those in
    ``wanted``, when given), then recurse into its subgraphs.

    ``proto`` is the serialised form of ``graph`` (same node order), so nodes pair up by position.
    """
    if wanted is None:
        infos = {info.name: info for info in _infos(proto)}
        found = ((value, infos.get(value.name)) for value in _own_values(graph))
    else:  # the infos of a few values of a large graph: look at no other value
        mine = {value.name: value for value in wanted if _scope(value) is graph}
        found = ((mine[info.name], info) for info in _infos(proto) if info.name in mine)
    for value, info in found:
        if info is None:
            continue
        dims = _dims(info)
        if dims is not None:
            shapes[value] = dims
        if info.type.tensor_type.elem_type:
            types[value] = info.type.tensor_type.elem_type
    for index, node in enumerate(graph):  # the proto's nodes only where one holds a graph: a large
        if not own_subgraphs(node):      # graph's protos are slow to step through
            continue
        attrs = {attr.name: attr for attr in proto.node[index].attribute}
        for name, attr in node.attributes.items():
            if attr.type == ir.AttributeType.GRAPH and name in attrs:
                _collect(attr.as_graph(), attrs[name].g, shapes, types, wanted)
            elif attr.type == ir.AttributeType.GRAPHS and name in attrs:
                for sub, sub_proto in zip(attr.as_graphs(), attrs[name].graphs, strict=False):
                    _collect(sub, sub_proto, shapes, types, wanted)


def _scope(value: ir.Value) -> ir.Graph | None:
    """The graph ``value`` belongs to."""
    producer = value.producer()
    return value.graph if producer is None else producer.graph


def _own_values(graph: ir.Graph) -> Iterator[ir.Value]:
    yield from graph.inputs
    yield from graph.initializers.values()
    for node in graph:
        yield from node.outputs


def _infer_functions(model: ir.Model, shapes: dict[ir.Value, Dims], types: dict[ir.Value, int]) -> None:
    """Infer each function body per call site (callers first) and keep what all sites agree on."""
    done: set[ir.OperatorIdentifier] = set()
    pending = dict(model.functions)
    sites_of: dict[ir.OperatorIdentifier, list[ir.Node]] = {}
    if pending:
        for node in iter_nodes(model):
            sites_of.setdefault(node.op_identifier(), []).append(node)
    while pending:
        ready = [key for key in pending if not _called_from(pending, key)]
        if not ready:  # recursion is not allowed in ONNX; stop rather than loop
            return
        for key in ready:
            function = pending.pop(key)
            results = [_infer_call(model, function, site, shapes, types) for site in sites_of.get(key, [])]
            _keep_agreed(results, shapes, types)
            done.add(key)


def _called_from(pending: dict[ir.OperatorIdentifier, ir.Function], key: ir.OperatorIdentifier) -> bool:
    """Whether a function still waiting to be inferred calls ``key`` (so its shapes are not known yet)."""
    return any(
        node.op_identifier() == key
        for other, function in pending.items()
        if other != key
        for node in walk(function.graph)
    )


def _infer_call(
    model: ir.Model, function: ir.Function, site: ir.Node, shapes: dict[ir.Value, Dims], types: dict[ir.Value, int]
) -> tuple[dict[ir.Value, Dims], dict[ir.Value, int]] | None:
    """Dims and element types of the function's values for one call site, or None when the call
    cannot be inferred."""
    if len(site.inputs) > len(function.inputs) or _uses_attribute_references(function):
        return None
    body = ir.serde.serialize_function(function)
    inputs = []
    for formal, actual in zip(function.inputs, site.inputs, strict=False):
        dims = _dims_of(actual, shapes)
        dtype = None if actual is None else (actual.dtype.value if actual.dtype is not None else types.get(actual))
        if dtype is None or dims is None:
            return None
        inputs.append(onnx.helper.make_tensor_value_info(formal.name, dtype, list(dims)))
    graph = onnx.helper.make_graph(list(body.node), "call", inputs, [onnx.ValueInfoProto(name=o) for o in body.output])
    opsets = [onnx.helper.make_opsetid(domain, version) for domain, version in function.opset_imports.items()]
    proto = onnx.helper.make_model(
        graph,
        opset_imports=opsets,
        ir_version=model.ir_version,
        functions=[ir.serde.serialize_function(f) for f in model.functions.values()],
    )
    try:
        proto = onnx.shape_inference.infer_shapes(proto, data_prop=True)
    except Exception:
        return None
    found: dict[ir.Value, Dims] = {}
    found_types: dict[ir.Value, int] = {}
    _collect(function.graph, proto.graph, found, found_types)
    return found, found_types


def _uses_attribute_references(function: ir.Function) -> bool:
    return any(
        attr.is_ref() for node in walk(function.graph) for attr in node.attributes.values()
    )


def _dims_of(value: ir.Value | None, shapes: dict[ir.Value, Dims]) -> Dims | None:
    if value is None:
        return None
    if value in shapes:
        return shapes[value]
    return None if value.shape is None else tuple(value.shape)


def _keep_agreed(
    results: list[tuple[dict[ir.Value, Dims], dict[ir.Value, int]] | None],
    shapes: dict[ir.Value, Dims],
    types: dict[ir.Value, int],
) -> None:
    """Store, for each value, the dims every call site agrees on (dynamic where they differ), and
    the element type when every site agrees on it."""
    if not results or any(result is None for result in results):
        return
    (first, first_types), *others = results
    for value, dims in first.items():
        merged = list(dims)
        for other, _ in others:
            theirs = other.get(value)
            if theirs is None or len(theirs) != len(merged):
                merged = None
                break
            merged = [d if d == t else None for d, t in zip(merged, theirs, strict=True)]
        if merged is not None:
            shapes[value] = tuple(merged)
    for value, dtype in first_types.items():
        if all(other_types.get(value) == dtype for _, other_types in others):
            types[value] = dtype


def _infos(graph: onnx.GraphProto) -> Iterator[onnx.ValueInfoProto]:
    """The value infos of ``graph`` itself (not of its subgraphs)."""
    yield from graph.input
    yield from graph.output
    yield from graph.value_info


def _dims(info: onnx.ValueInfoProto) -> Dims | None:
    tensor_type = info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    return tuple(_dim(d) for d in tensor_type.shape.dim)


def _dim(dim: onnx.TensorShapeProto.Dimension) -> int | str | None:
    if dim.HasField("dim_value"):
        return dim.dim_value
    return dim.dim_param or None
