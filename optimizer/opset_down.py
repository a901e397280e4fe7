"""Downward opset conversion in onnx-ir, one opset at a time, scope by scope.

Each scope (the main graph with its If / Loop / Scan bodies, each model-local function with
its bodies) goes from its own default-domain opset down to the target. At every step ``v`` the
nodes whose op got a new version at ``v`` are brought to the previous version by the adapter
registered for ``(op, v)``; where only type support changed nothing is rewritten. Inputs an
adapter needs as constants are first folded when they are computed from constants alone.
Finally every node is checked against the target's schemas (arity, attributes, types) so
nothing invalid is written. The input model is not changed.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import onnx
import onnx_ir as ir

from optimizer import opset_adapters, opset_decompose
from optimizer.graph_walk import walk
from optimizer.opset_rewrite import Adapter, Rewriter
from optimizer.opset_schema import TypeChecker, same_form, schema_at, since_version
from optimizer.passapi import all_graphs, scope_labels
from optimizer.placeholders import Placeholders
from optimizer.shape_inference import infer_value_shapes

ADAPTERS: dict[tuple[str, int], Adapter] = {**opset_adapters.ADAPTERS, **opset_decompose.ADAPTERS}
# A constant input computed by more nodes than this is left alone (the adapter then refuses it).
_FOLD_LIMIT = 64

Scope = tuple[ir.Graph, int]  # a root graph (main graph or function body) and its opset


def convert_down(model: ir.Model, scopes: list[Scope], target: int) -> None:
    """Convert the default-domain nodes of ``scopes`` (roots of ``model``) down to ``target``, in place."""
    types = TypeChecker()
    for root, opset in scopes:
        types.walk(root, opset, lambda node, reason: None)  # learn types at the original opsets
    rw = Rewriter(model, target, {}, types, scope_labels(model))
    needs_shapes = False
    for root, opset in scopes:
        for node, adapter in list(_pending(root, opset, target)):
            if node.graph is not None:
                _fold_inputs(node, adapter.constant_inputs(node), opset, rw)
            needs_shapes = needs_shapes or adapter.shapes
    if needs_shapes:
        rw.shapes = _inferred_shapes(model)
    for root, opset in scopes:
        for version in range(opset, target, -1):
            for node in list(walk(root)):
                if node.graph is not None and node.domain == "" and since_version(node.op_type, version) == version:
                    _step_down(node, version, rw)
    checker = TypeChecker()
    for root, _ in scopes:
        checker.walk(root, target, rw.refuse)


def _pending(root: ir.Graph, opset: int, target: int) -> Iterator[tuple[ir.Node, Adapter]]:
    """Every (node, adapter) the conversion of ``root`` from ``opset`` to ``target`` will apply."""
    for node in walk(root):
        if node.domain != "":
            continue
        for version in range(opset, target, -1):
            adapter = ADAPTERS.get((node.op_type, version))
            if adapter is not None and since_version(node.op_type, version) == version:
                yield node, adapter


def _step_down(node: ir.Node, version: int, rw: Rewriter) -> None:
    """Bring ``node`` from the version introduced at ``version`` to the previous one."""
    adapter = ADAPTERS.get((node.op_type, version))
    if adapter is not None:
        adapter.convert(node, rw)
        return
    older = schema_at(node.op_type, version - 1)
    if older is None:
        rw.refuse(node, f"{node.op_type} exists only from opset {version}, and onnx-opt has no equivalent for it")
    if not same_form(schema_at(node.op_type, version), older):
        rw.refuse(node, f"onnx-opt cannot convert {node.op_type} from its opset {version} form to opset "
                  f"{older.since_version}")


def _fold_inputs(node: ir.Node, indices, opset: int, rw: Rewriter) -> None:
    """Replace inputs ``indices`` of ``node`` computed from constants only by Constant nodes."""
    for index in indices:
        value = node.inputs[index] if index < len(node.inputs) else None
        if value is None or rw.array(value) is not None:
            continue
        data = _evaluate(value, opset, rw)
        if data is not None:
            rw.set_input(node, index, rw.constant(node, data, "folded"))


def _evaluate(value: ir.Value, opset: int, rw: Rewriter) -> np.ndarray | None:
    """The data of ``value`` when it is computed from constants only by a few plain nodes, else None."""
    cone: list[ir.Node] = []
    leaves: dict[str, ir.Value] = {}

    def visit(current: ir.Value) -> bool:
        if current.const_value is not None and not current.is_graph_input():
            leaves[current.name] = current
            return True
        producer = current.producer()
        if producer is None or producer in cone:
            return producer is not None
        if producer.domain != "" or producer.op_type.startswith("Random") or len(cone) >= _FOLD_LIMIT:
            return False
        if any(attr.type in (ir.AttributeType.GRAPH, ir.AttributeType.GRAPHS) for attr in producer.attributes.values()):
            return False
        if not all(visit(source) for source in producer.inputs if source is not None):
            return False
        cone.append(producer)
        return True

    if not visit(value):
        return None
    initializers = []
    for name, leaf in leaves.items():
        tensor = ir.serde.serialize_tensor(leaf.const_value)
        tensor.name = name
        initializers.append(tensor)
    graph = onnx.helper.make_graph(
        [ir.serde.serialize_node(node) for node in cone], "fold", [], [onnx.ValueInfoProto(name=value.name)],
        initializer=initializers,
    )
    proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    from onnx.reference import ReferenceEvaluator  # 24 ms of imports, needed only to fold

    try:
        (result,) = ReferenceEvaluator(proto).run(None, {})
    except Exception:  # not foldable after all: the adapter reports the input as computed at run time
        return None
    return np.asarray(result)


def _inferred_shapes(model: ir.Model) -> dict[ir.Value, tuple]:
    """Dims of every value onnx shape inference finds, without serialising the weights."""
    placeholders = Placeholders()
    placeholders.swap_out(model)
    try:
        return infer_value_shapes(model)
    finally:
        placeholders.swap_in(all_graphs(model))
