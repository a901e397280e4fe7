"""Upward opset conversion with onnx's version converter, without handing it the weights.

The converter gets the graph with every large or external tensor swapped for a placeholder
(:mod:`optimizer.placeholders`), so it reads and copies no weights; the very same tensor
objects are put back into its result. Two gaps of the converter are closed here:

- it drops model-local functions: each function body is converted on its own (its nodes as a
  graph) and kept;
- it turns Resize-10 (and Upsample, through Resize-10) into Resize-11 without setting
  ``coordinate_transformation_mode``, whose default changed from 'asymmetric' to 'half_pixel':
  such nodes are hidden from it in a private domain and rebuilt as Resize-11 with the old
  coordinate mapping afterwards.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnx_ir as ir

from optimizer.errors import UserError
from optimizer.graph_walk import own_subgraphs
from optimizer.opset_nodes import convert_nodes, run_converter
from optimizer.opset_schema import since_version
from optimizer.opset_steps import converter_changes
from optimizer.passapi import all_graphs, const_tensor, names_in, subgraphs_of, unique_name, walk
from optimizer.placeholders import Placeholders

_HIDDEN = "onnx_opt.opset_hidden"  # domain of nodes kept away from onnx's converter


def convert_graph_up(
    model: ir.Model, opset: int, target: int, placeholders: Placeholders, skeleton: onnx.ModelProto | None = None
) -> ir.Model:
    """``model``'s main graph (and subgraphs) converted from ``opset`` up to ``target``: ``model``
    itself, or a new model when the whole graph had to go through the converter.

    Only the nodes the converter changes (:func:`optimizer.opset_steps.converter_changes`) go
    through it, each on its own with its inputs' types, and what it makes of each is put in
    its place; the others are relabelled by the new opset alone. When one of those nodes holds
    a subgraph, the whole graph goes through. ``model`` must already have its tensors swapped
    out into ``placeholders``; its functions are carried over as they are (convert them with
    :func:`convert_function_up`). ``skeleton``: the model's, if the caller has it (see
    :func:`optimizer.shape_inference.infer_value_shapes`).
    """
    hidden = _hide_resizes(model.graph, opset, target)
    changing = [node for node in walk(model.graph) if converter_changes(node, opset, target)]
    result = model
    if any(own_subgraphs(node) for node in changing) or not convert_nodes(model, changing, opset, target, skeleton):
        result = _convert_whole(model, target, hidden)
    placeholders.swap_in(all_graphs(result))
    if hidden:
        result.opset_imports.pop(_HIDDEN, None)
        names = names_in(all_graphs(result))
        for graph in all_graphs(result):
            _rebuild_resizes(graph, names)
    return result


def _convert_whole(model: ir.Model, target: int, hidden: bool) -> ir.Model:
    """A new model: ``model``'s graph through onnx's converter, its functions carried over."""
    if hidden:
        model.opset_imports[_HIDDEN] = 1
    proto = ir.serde.serialize_model(model)
    model.opset_imports.pop(_HIDDEN, None)
    del proto.functions[:]
    result = ir.serde.deserialize_model(run_converter(proto, target, "the model"))
    for function in model.functions.values():
        result.functions[function.identifier()] = function
    return result


def convert_function_up(function: ir.Function, opset: int, target: int, placeholders: Placeholders) -> ir.Function:
    """A new function: ``function``'s body converted from ``opset`` up to ``target``."""
    _check_attribute_references(function, opset, target)
    hidden = _hide_resizes(function.graph, opset, target)
    proto = ir.serde.serialize_function(function)
    graph = onnx.helper.make_graph(
        list(proto.node),
        proto.name,
        [onnx.ValueInfoProto(name=name) for name in proto.input],
        [onnx.ValueInfoProto(name=name) for name in proto.output],
    )
    imports = {entry.domain: entry.version for entry in proto.opset_import}
    imports[""] = opset
    if hidden:
        imports[_HIDDEN] = 1
    body = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid(domain, version) for domain, version in imports.items()]
    )
    converted = run_converter(body, target, f"function {function.domain}::{function.name}")
    del proto.node[:]
    proto.node.extend(converted.graph.node)
    imports[""] = target
    imports.pop(_HIDDEN, None)
    del proto.opset_import[:]
    proto.opset_import.extend(onnx.helper.make_opsetid(domain, version) for domain, version in imports.items())
    result = ir.serde.deserialize_function(proto)
    graphs = [result.graph, *subgraphs_of(result.graph)]
    placeholders.swap_in(graphs)
    if hidden:
        names = names_in(graphs)
        for graph in graphs:
            _rebuild_resizes(graph, names)
    return result


def _check_attribute_references(function: ir.Function, opset: int, target: int) -> None:
    """onnx's converter loses attributes a function body takes from its caller: refuse those nodes."""
    for node in walk(function.graph):
        if node.domain != "" or not any(attr.is_ref() for attr in node.attributes.values()):
            continue
        if since_version(node.op_type, opset) != since_version(node.op_type, target):
            raise UserError(
                f"cannot convert function {function.domain}::{function.name} to opset {target}: node "
                f"'{node.name or node.op_type}' ({node.op_type}) takes attributes from the function's caller, "
                "which onnx's converter drops"
            )


def _hide_resizes(root: ir.Graph, opset: int, target: int) -> bool:
    """Move Resize-10 and Upsample nodes into the private domain when the conversion crosses opset 11."""
    if not opset < 11 <= target:
        return False
    hidden = False
    for node in walk(root):
        if node.domain == "" and node.op_type in ("Resize", "Upsample"):
            node.domain = _HIDDEN
            hidden = True
    return hidden


def _rebuild_resizes(graph: ir.Graph, names: set[str]) -> None:
    """Turn hidden Resize-10 / Upsample nodes into Resize-11 with the coordinate mapping they had.

    Before opset 11, 'nearest' takes ``floor(i / scale)`` on axes that grow and ``ceil`` on axes
    that shrink (onnxruntime; the spec leaves it open). Resize-11 has one ``nearest_mode``, so a
    nearest resize that grows some axes and shrinks others becomes two: the shrinking axes first,
    then the growing ones (nearest resizing is separable). Scales computed at run time are taken
    to grow (floor), which is what upsampling models do.
    """
    for node in list(graph):
        if node.domain != _HIDDEN:
            continue
        mode = node.attributes.get_string("mode", "nearest")
        mode = "linear" if mode == "bilinear" else mode
        if len(node.inputs) > 1:
            scales = node.inputs[1]
        else:
            scales = _constant(node, list(node.attributes.get_floats("scales")), "scales", names)
        node.domain, node.op_type = "", "Resize"
        node.attributes.clear()
        data = const_tensor(scales)
        data = None if data is None else data.numpy().astype(np.float32)
        if mode == "nearest" and data is not None and (data < 1).any() and (data > 1).any():
            shrink = _resize_11(node, np.minimum(data, 1), "ceil", names)
            node.replace_input_with(0, shrink.outputs[0])
            scales = _constant(node, np.maximum(data, 1).tolist(), "scales", names)
        rounding = "ceil" if data is not None and (data <= 1).all() else "floor"
        _make_resize_11(node, scales, mode, rounding, names)


def _resize_11(near: ir.Node, scales: np.ndarray, rounding: str, names: set[str]) -> ir.Node:
    """A nearest Resize-11 of ``near``'s input by ``scales``, inserted before ``near``."""
    name = unique_name(f"{near.name or 'Resize'}_shrink", names)
    node = ir.node("Resize", [near.inputs[0]], name=name, outputs=[ir.Value(name=name)])
    near.graph.insert_before(near, node)
    _make_resize_11(node, _constant(node, scales.tolist(), "scales", names), "nearest", rounding, names)
    return node


def _make_resize_11(node: ir.Node, scales: ir.Value, mode: str, rounding: str, names: set[str]) -> None:
    """Give ``node`` (a Resize) the inputs x, roi, scales and the attributes of the pre-11 mapping."""
    roi = _constant(node, [], "roi", names)
    node.resize_inputs(1)
    node.resize_inputs(3)
    node.replace_input_with(1, roi)
    node.replace_input_with(2, scales)
    attributes = {"mode": mode, "coordinate_transformation_mode": "asymmetric"}
    if mode == "nearest":
        attributes["nearest_mode"] = rounding
    for name, value in attributes.items():
        node.attributes[name] = ir.AttrString(name, value)


def _constant(near: ir.Node, values: list[float], what: str, names: set[str]) -> ir.Value:
    name = unique_name(f"{near.name or near.op_type}_{what}", names)
    node = ir.node("Constant", [], {"value": ir.tensor(np.array(values, dtype=np.float32))}, name=name,
                   outputs=[ir.Value(name=name)])
    near.graph.insert_before(near, node)
    return node.outputs[0]
