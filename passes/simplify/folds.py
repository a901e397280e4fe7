"""onnx-opt's own folds for ``simplify`` (rule 3 of the pass's docstring), on onnx-ir, in every scope."""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping

import numpy as np
import onnx_ir as ir

from optimizer.passapi import PassContext, all_graphs, const_tensor, constant, iter_nodes, names_in, unique_name
from passes.simplify.simplifiers import (
    ONNX_DOMAINS,
    SimplifierError,
    one_line,
    quiet,
    restore_model_fields,
)

# Constants of at most this many elements are compared by value when merging subexpressions.
CSE_CONSTANT_ELEMENTS = 64


# Ops that may give different results for the same inputs: never merged.
_NONDETERMINISTIC = frozenset(
    {"RandomNormal", "RandomNormalLike", "RandomUniform", "RandomUniformLike", "Multinomial", "Bernoulli", "Dropout"}
)




# Concats of at most this many elements are followed through element-moving ops.
SHUFFLE_ELEMENTS = 64


def run_folds(model: ir.Model, ctx: PassContext) -> ir.Model:
    """onnx-opt's folds (see the module docstring) on a clone. Dims come from ``ctx`` (onnx shape
    inference, a function's body inferred from its call sites)."""
    from onnx_ir.passes.common import RemoveUnusedNodesPass

    result = model.clone()
    ctx.forget()
    try:
        with quiet("onnx_ir"):
            folds = Folds(result, ctx)
            fold_static_shape_reads(folds)
            merge_common_subexpressions(result)
            cancel_squeeze_unsqueeze(result)
            RemoveUnusedNodesPass()(result)
            fold_element_shuffles(folds)
            drop_unused_if_outputs(result)
            RemoveUnusedNodesPass()(result)
    except Exception as exc:  # a fold that does not understand the model must not stop the others
        raise SimplifierError(f"{type(exc).__name__}: {one_line(exc)}") from None
    finally:
        ctx.forget()
    restore_model_fields(result, model)
    return result


class Folds:
    """What onnx-opt's folds share: the model, its dims, fresh value names and new constants."""

    def __init__(self, model: ir.Model, ctx: PassContext) -> None:
        self.model, self.ctx = model, ctx
        self.used = names_in(all_graphs(model))
        self.function_graphs = {id(graph) for function in model.functions.values() for graph in
                                (function.graph, *function.graph.subgraphs())}

    def dims(self, value: ir.Value) -> list[int | None] | None:
        """The dims of ``value`` (None for a dynamic one), or None when its rank is unknown."""
        return self.ctx.dims_of(value, self.model)

    def fresh(self, base: str) -> str:
        """A value name used nowhere in the model, derived from ``base``."""
        return unique_name(base, self.used)

    def constant(self, array: np.ndarray, base: str, before: ir.Node) -> ir.Value:
        """A constant for a node placed before ``before``: an initializer of the main graph
        (visible in every body), or a Constant node in a function, which has no initializers."""
        name = self.fresh(base)
        if id(before.graph) in self.function_graphs:
            node = constant(name, array)
            before.graph.insert_before(before, node)
            return node.outputs[0]
        tensor = ir.tensor(array, name=name)
        value = ir.Value(name=name, const_value=tensor, type=ir.TensorType(tensor.dtype), shape=ir.Shape(array.shape))
        self.model.graph.register_initializer(value)
        return value


def fold_static_shape_reads(folds: Folds) -> int:
    """``Gather`` / ``Slice`` of ``Shape(x)`` that read only static dims of ``x`` -> constants.

    onnxscript folds a ``Shape`` only when every dim it reads is static, and a ``Gather`` of it
    only with 1-D indices; torch exports ``x.size(1)`` as ``Gather(Shape(x), scalar)``, so a
    static channel count next to a symbolic batch stays a computation. The constant becomes an
    initializer of the main graph (visible in every body), or a Constant node in a function.
    """
    folded = 0
    for node in list(iter_nodes(folds.model)):
        if node.domain not in ONNX_DOMAINS or node.op_type not in ("Gather", "Slice") or not node.inputs:
            continue
        dims = _shape_dims(node.inputs[0], folds)
        if dims is None:
            continue
        read = _gather_dims(node, dims) if node.op_type == "Gather" else _slice_dims(node, dims)
        if read is None or not all(isinstance(dim, int) for dim in read.reshape(-1).tolist()):
            continue
        output = node.outputs[0]
        if output.is_graph_output():
            continue
        array = read.astype(np.int64)
        replacement = folds.constant(array, f"{output.name or 'shape'}_static", node)
        ir.convenience.replace_all_uses_with(output, replacement)
        node.graph.remove(node, safe=True)
        folded += 1
    return folded


def _shape_dims(value: ir.Value | None, folds: Folds) -> list[int | None] | None:
    """The dims a ``Shape`` node's output holds (None for a dynamic one), or None."""
    if value is None:
        return None
    producer = value.producer()
    if producer is None or producer.op_type != "Shape" or producer.domain not in ONNX_DOMAINS:
        return None
    source = producer.inputs[0] if producer.inputs else None
    dims = None if source is None else folds.dims(source)
    if dims is None:
        return None
    return dims[producer.attributes.get_int("start", 0) : producer.attributes.get_int("end", None)]


def _gather_dims(node: ir.Node, dims: list) -> np.ndarray | None:
    if len(node.inputs) < 2 or node.attributes.get_int("axis", 0) not in (0, -1):
        return None
    indices = _const_array(node.inputs[1])
    if indices is None or not np.issubdtype(indices.dtype, np.integer):
        return None
    if indices.size and (indices.min() < -len(dims) or indices.max() >= len(dims)):
        return None  # out of range: an error at run time, not ours to fold
    table = np.array(dims, dtype=object)
    return np.asarray(table[indices.astype(np.int64)], dtype=object).reshape(indices.shape)


def _slice_dims(node: ir.Node, dims: list) -> np.ndarray | None:
    if len(node.inputs) < 3:
        return None  # Slice-1 (attributes) is rare in shape arithmetic
    parts = [_const_array(value) if index < len(node.inputs) else None for index, value in
             enumerate(node.inputs[1:5], start=1)]
    starts, ends = parts[0], parts[1]
    axes = parts[2] if len(node.inputs) > 3 and node.inputs[3] is not None else np.array([0])
    steps = parts[3] if len(node.inputs) > 4 and node.inputs[4] is not None else np.array([1])
    if any(part is None for part in (starts, ends, axes, steps)) or not (starts.size == ends.size == 1):
        return None
    if axes.reshape(-1).tolist() not in ([0], [-1]) or steps.reshape(-1).tolist() == [0]:
        return None
    start, end, step = (int(np.asarray(part).reshape(-1)[0]) for part in (starts, ends, steps))
    return np.array(dims, dtype=object)[slice(start, end, step)]


def _const_array(value: ir.Value | None) -> np.ndarray | None:
    """The data of a constant (initializer that is not a graph input, or Constant output)."""
    tensor = const_tensor(value)
    return None if tensor is None else tensor.numpy()


def merge_common_subexpressions(model: ir.Model) -> int:
    """Merge nodes that repeat an earlier node (same op, attributes and inputs), across scopes:
    a node in a body may reuse a node of an enclosing scope that comes before the body's node
    (so it is computed whenever the body runs). Subgraph-carrying and random ops never merge;
    a node whose output is a graph output stays."""
    merged = _merge_in(model.graph, {})
    for function in model.functions.values():
        merged += _merge_in(function.graph, {})
    return merged


def _merge_in(graph: ir.Graph, outer: Mapping) -> int:
    seen = ChainMap({}, outer)
    merged = 0
    for node in list(graph):
        subgraphs = [graph for attr in node.attributes.values() for graph in _attrgraphs_of(attr)]
        for body in subgraphs:
            merged += _merge_in(body, seen)
        key = None if subgraphs else _node_key(node)
        if key is None:
            continue
        earlier = seen.get(key)
        if earlier is None:
            seen[key] = node
            continue
        if any(output.is_graph_output() for output in node.outputs):
            continue
        ir.convenience.replace_all_uses_with(list(node.outputs), list(earlier.outputs))
        graph.remove(node, safe=True)
        merged += 1
    return merged


def _attrgraphs_of(attr: ir.Attr) -> list[ir.Graph]:
    if attr.is_ref():
        return []
    if attr.type == ir.AttributeType.GRAPH:
        return [attr.as_graph()]
    if attr.type == ir.AttributeType.GRAPHS:
        return list(attr.asgraphs_of())
    return []


def _node_key(node: ir.Node) -> tuple | None:
    """What makes two nodes compute the same thing, or None when ``node`` must never merge."""
    if node.domain not in (*ONNX_DOMAINS, "ai.onnx.ml") or node.op_type in _NONDETERMINISTIC:
        return None
    attributes = []
    for name, attr in sorted(node.attributes.items()):
        if attr.is_ref():
            attributes.append((name, "ref", attr.ref_attr_name))
        elif attr.type == ir.AttributeType.TENSOR:
            tensor = attr.as_tensor()
            if tensor.size > CSE_CONSTANT_ELEMENTS:
                return None
            attributes.append((name, str(tensor.dtype), tuple(tensor.shape), tensor.tobytes()))
        elif attr.type in (ir.AttributeType.INTS, ir.AttributeType.FLOATS, ir.AttributeType.STRINGS):
            attributes.append((name, attr.type, tuple(attr.value)))
        elif attr.type in (ir.AttributeType.INT, ir.AttributeType.FLOAT, ir.AttributeType.STRING):
            attributes.append((name, attr.type, attr.value))
        else:
            return None  # tensors lists, types, sparse tensors: rare, and not worth comparing
    inputs = tuple(_input_key(value) for value in node.inputs)
    return (node.domain or "", node.op_type, node.overload, len(node.outputs), inputs, tuple(attributes))


def _input_key(value: ir.Value | None) -> object:
    if value is None:
        return None
    tensor = value.const_value
    if tensor is not None and not value.is_graph_input() and value.producer() is None and (
        tensor.size <= CSE_CONSTANT_ELEMENTS
    ):
        return ("constant", str(tensor.dtype), tuple(tensor.shape), tensor.tobytes())
    return value


def cancel_squeeze_unsqueeze(model: ir.Model) -> int:
    """``Unsqueeze(Squeeze(x, a), a)`` and ``Squeeze(Unsqueeze(x, a), a)`` -> ``x`` (explicit,
    constant, equal axes; the second node's output not a graph output). Unsqueeze after
    Squeeze restores exactly the unit dims removed (both axes count in the rank of ``x``)."""
    cancelled = 0
    for node in list(iter_nodes(model)):
        if node.domain not in ONNX_DOMAINS or node.op_type not in ("Squeeze", "Unsqueeze") or not node.inputs:
            continue
        inner = node.inputs[0].producer() if node.inputs[0] is not None else None
        pair = {"Squeeze": "Unsqueeze", "Unsqueeze": "Squeeze"}[node.op_type]
        if inner is None or inner.op_type != pair or inner.domain not in ONNX_DOMAINS or not inner.inputs:
            continue
        axes, inner_axes = _axes(node), _axes(inner)
        output, source = node.outputs[0], inner.inputs[0]
        if axes is None or axes != inner_axes or source is None or output.is_graph_output():
            continue
        ir.convenience.replace_all_uses_with(output, source)
        cancelled += 1
    return cancelled


def _axes(node: ir.Node) -> tuple[int, ...] | None:
    """The constant axes of a Squeeze / Unsqueeze (attribute before opset 13, input after), sorted."""
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        array = _const_array(node.inputs[1])
        return None if array is None else tuple(sorted(int(axis) for axis in array.reshape(-1)))
    attr = node.attributes.get("axes")
    if attr is None or attr.is_ref():
        return None
    return tuple(sorted(int(axis) for axis in attr.as_ints()))


def drop_unused_if_outputs(model: ir.Model) -> int:
    """Outputs of an ``If`` that nothing uses (and that are no graph output) leave the node and
    both branches, so what only they needed dies."""
    dropped = 0
    for node in list(iter_nodes(model)):
        if node.op_type != "If" or node.domain not in ONNX_DOMAINS or node.graph is None:
            continue
        keep = [index for index, output in enumerate(node.outputs) if output.uses() or output.is_graph_output()]
        if not keep or len(keep) == len(node.outputs):
            continue  # all unused: the whole node is dead code
        branches = [node.attributes[name].as_graph() for name in ("then_branch", "else_branch")]
        if any(len(branch.outputs) != len(node.outputs) for branch in branches):
            continue
        for branch in branches:
            kept = [branch.outputs[index] for index in keep]
            branch.outputs.clear()
            branch.outputs.extend(kept)
        replacement = ir.Node(
            node.domain,
            node.op_type,
            list(node.inputs),
            list(node.attributes.values()),
            overload=node.overload,
            num_outputs=len(keep),
            name=node.name,
            doc_string=node.doc_string,
            metadata_props=dict(node.metadata_props),
        )
        old = [node.outputs[index] for index in keep]
        for new_output, old_output in zip(replacement.outputs, old, strict=True):
            name, old_output.name = old_output.name, None
            new_output.name, new_output.type, new_output.shape = name, old_output.type, old_output.shape
        node.graph.insert_before(node, replacement)
        ir.convenience.replace_all_uses_with(old, list(replacement.outputs), replace_graph_outputs=True)
        node.graph.remove(node, safe=True)
        dropped += len(node.outputs) - len(keep)
    return dropped


def fold_element_shuffles(folds: Folds) -> int:
    """A ``Concat`` of short 1-D pieces (constants, or values of static length) followed by
    ops that only move its elements (Reshape, Transpose, Slice, Squeeze, Unsqueeze, Flatten,
    Identity), each the sole user of the last: the element each output position takes is
    computed once, on indices, and the chain becomes one ``Concat`` of the pieces and merged
    constants (or, when the pieces come out split or reordered, one ``Gather``).

    torch exports ``F.pad`` with computed pads as exactly such a chain
    (Concat -> Reshape -> Slice -> Transpose -> Reshape), one per pad.
    """
    folded = 0
    for node in list(iter_nodes(folds.model)):
        if node.op_type != "Concat" or node.domain not in ONNX_DOMAINS or node.graph is None:
            continue
        pieces = _concat_pieces(node, folds)
        if pieces is None:
            continue
        indices = np.arange(sum(length for _, _, length in pieces))
        chain, value = [], node.outputs[0]
        while not value.is_graph_output() and len(value.uses()) == 1:
            user, position = value.uses()[0]
            if position != 0 or user.graph is not node.graph or user.domain not in ONNX_DOMAINS:
                break
            moved = _move_elements(user, indices)
            if moved is None:
                break
            chain.append(user)
            indices, value = moved, user.outputs[0]
        if not chain or value.is_graph_output():
            continue
        graph, last = node.graph, chain[-1]
        inputs = _regroup(pieces, indices) if indices.ndim == 1 else None
        dtype = node.outputs[0].dtype
        if inputs is not None:
            values = [folds.constant(item, f"{value.name}_part", last) if isinstance(item, np.ndarray) else item
                      for item in inputs]
            if len(values) == 1:
                replacement = values[0]
            else:
                merged = ir.node("Concat", values, {"axis": 0}, name=folds.fresh(f"{node.name or 'concat'}_folded"))
                merged.outputs[0].name = folds.fresh(f"{value.name}_folded")
                _set_type(merged.outputs[0], dtype, [indices.size])
                graph.insert_before(last, merged)
                replacement = merged.outputs[0]
            removed = [node, *chain]
        elif len(chain) >= 2:
            gather = ir.node(
                "Gather",
                [node.outputs[0], folds.constant(indices.astype(np.int64), f"{value.name}_indices", last)],
                {"axis": 0},
                name=folds.fresh(f"{last.name or 'gather'}_folded"),
            )
            gather.outputs[0].name = folds.fresh(f"{value.name}_folded")
            _set_type(gather.outputs[0], dtype, indices.shape)
            graph.insert_before(last, gather)
            replacement, removed = gather.outputs[0], chain
        else:
            continue
        ir.convenience.replace_all_uses_with(value, replacement)
        graph.remove(removed, safe=True)
        folded += 1
    return folded


def _set_type(value: ir.Value, dtype: ir.DataType | None, dims) -> None:
    if dtype is not None:  # a value in a function may have no type: it then gets none
        value.dtype, value.shape = dtype, ir.Shape(list(dims))


def _concat_pieces(node: ir.Node, folds: Folds) -> list[tuple[ir.Value, np.ndarray | None, int]] | None:
    """The 1-D inputs of a Concat on axis 0, those of nested such Concats in their place:
    (value, its data if constant, its length); None when one is not a short 1-D tensor. (The
    inputs of a Concat share one type, so constants merged from them keep it.)"""
    if node.attributes.get_int("axis", 0) not in (0, -1) or not node.inputs:
        return None
    pieces = []
    for value in node.inputs:
        if value is None:
            return None
        data = _const_array(value)
        inner = value.producer()
        dims = None
        if data is not None:
            if data.ndim != 1:
                return None
            pieces.append((value, data, data.size))
        elif inner is not None and inner.op_type == "Concat" and inner.domain in ONNX_DOMAINS and (
            inner.graph is node.graph
        ):
            nested = _concat_pieces(inner, folds)
            if nested is None:
                return None
            pieces += nested
        elif (dims := folds.dims(value)) is not None and len(dims) == 1 and dims[0] is not None:
            pieces.append((value, None, dims[0]))
        else:
            return None
    if sum(length for _, _, length in pieces) > SHUFFLE_ELEMENTS:
        return None
    return pieces


def _move_elements(node: ir.Node, indices: np.ndarray) -> np.ndarray | None:
    """Where ``node`` moves the elements of its first input, applied to ``indices``; None when
    it is not a pure element move with constant parameters (or would fail at run time)."""
    op = node.op_type
    try:
        if op == "Identity":
            return indices
        if op == "Transpose":
            perm = node.attributes.get_ints("perm", None)
            return np.transpose(indices, perm)
        if op == "Flatten":
            axis = node.attributes.get_int("axis", 1)
            axis = axis + indices.ndim if axis < 0 else axis
            return indices.reshape(int(np.prod(indices.shape[:axis])), int(np.prod(indices.shape[axis:])))
        if op in ("Squeeze", "Unsqueeze"):
            axes = _axes(node)
            if axes is None:
                return None
            if op == "Unsqueeze":
                return np.expand_dims(indices, axes)
            if any(indices.shape[axis] != 1 for axis in axes):
                return None
            return np.squeeze(indices, axes)
        if op == "Reshape":
            return _reshape(node, indices)
        if op == "Slice":
            return _slice(node, indices)
    except (ValueError, IndexError, TypeError, np.exceptions.AxisError):
        return None
    return None


def _reshape(node: ir.Node, indices: np.ndarray) -> np.ndarray | None:
    shape = _const_array(node.inputs[1]) if len(node.inputs) > 1 else None
    if shape is None:
        return None
    allow_zero = node.attributes.get_int("allowzero", 0)
    dims = [int(dim) for dim in shape.reshape(-1)]
    if not allow_zero:
        dims = [indices.shape[axis] if dim == 0 and axis < indices.ndim else dim for axis, dim in enumerate(dims)]
    if dims.count(-1) > 1:
        return None
    return indices.reshape(dims)


def _slice(node: ir.Node, indices: np.ndarray) -> np.ndarray | None:
    if len(node.inputs) == 1:  # Slice-1: attributes
        starts, ends = node.attributes.get_ints("starts", None), node.attributes.get_ints("ends", None)
        axes = node.attributes.get_ints("axes", None)
        steps = None
    else:
        arrays = [_const_array(value) for value in node.inputs[1:3]]
        if len(arrays) < 2 or any(array is None for array in arrays):
            return None
        starts, ends = (array.reshape(-1).tolist() for array in arrays)
        axes = steps = None
        for position in (3, 4):
            if len(node.inputs) > position and node.inputs[position] is not None:
                array = _const_array(node.inputs[position])
                if array is None:
                    return None
                if position == 3:
                    axes = array.reshape(-1).tolist()
                else:
                    steps = array.reshape(-1).tolist()
    if starts is None or ends is None:
        return None
    axes = list(range(len(starts))) if axes is None else list(axes)
    steps = [1] * len(starts) if steps is None else list(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps) or 0 in steps:
        return None
    where = [slice(None)] * indices.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        where[axis + indices.ndim if axis < 0 else axis] = slice(int(start), int(end), int(step))
    return indices[tuple(where)]


def _regroup(pieces: list[tuple[ir.Value, np.ndarray | None, int]], order: np.ndarray) -> list | None:
    """The inputs of a Concat giving the elements ``order`` picks from the pieces: whole dynamic
    pieces in their own order, runs of constant elements as arrays; None when a dynamic piece is
    split or reordered."""
    owners = [(index, offset) for index, (_, _, length) in enumerate(pieces) for offset in range(length)]
    flat = [int(position) for position in order.reshape(-1)]
    inputs: list = []
    pending: list = []
    position = 0
    while position < len(flat):
        index, offset = owners[flat[position]]
        value, data, length = pieces[index]
        if data is not None:
            pending.append(data[offset])
            position += 1
            continue
        start = flat[position]
        if offset != 0 or flat[position:position + length] != list(range(start, start + length)):
            return None
        if pending:
            inputs.append(np.array(pending))
            pending = []
        inputs.append(value)
        position += length
    if pending:
        inputs.append(np.array(pending))
    return inputs
