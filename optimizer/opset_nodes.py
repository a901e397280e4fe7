"""onnx's version converter on chosen nodes only, each on its own, spliced back in place.

onnx's converter infers the shapes of the whole model, then adapts one node at a time from
the node's own attributes and its inputs' types (convert.cc), so a node converted alone, with
its inputs typed as inference types them in the model, comes out as it would from the whole
model. The nodes go through in one small model: node ``i`` reads
graph inputs ``PREFIX i/iJ`` and writes graph outputs ``PREFIX i/oK``; whatever the converter
makes of it is told apart by those names (a helper node it adds belongs to the node whose
values it touches). Nodes of one form go through once. A node that came out as it went in
stays; one whose attributes alone changed gets them; any other is replaced by what came
out, its output values keeping their names and uses.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

import onnx
import onnx_ir as ir

from optimizer.errors import UserError, error_line
from optimizer.passapi import all_graphs, names_in, unique_name
from optimizer.shape_inference import Dims, infer_value_shapes

PREFIX = "onnx_opt_up/"


def run_converter(proto: onnx.ModelProto, target: int, what: str) -> onnx.ModelProto:
    """``onnx.version_converter.convert_version``, its failures a :class:`UserError` about ``what``."""
    source = next((entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx")), None)
    try:
        return onnx.version_converter.convert_version(proto, target)
    except Exception as exc:  # onnx raises bare RuntimeErrors and assertion texts
        reason = error_line(exc, last=True)
        raise UserError(f"onnx cannot convert {what} from opset {source} to {target}: {reason}") from None


def convert_nodes(
    model: ir.Model, nodes: list[ir.Node], opset: int, target: int, skeleton: onnx.ModelProto | None = None
) -> bool:
    """Convert ``nodes`` (of ``model``'s graphs, none holding a subgraph) from ``opset`` up to
    ``target`` in place. False, with the model untouched, when what the converter returned
    cannot be told apart by node (then convert the whole graph instead). ``skeleton``: the
    model's, if the caller has it (see :func:`optimizer.shape_inference.infer_value_shapes`).

    Nodes of one form (operator, attributes, input types; names aside) come out alike, so
    each form goes through the converter once.
    """
    if not nodes:
        return True
    types: dict[ir.Value, int] = {}
    untyped = {value for node in nodes for value in node.inputs if value is not None and _untyped(value)}
    shapes = infer_value_shapes(model, types, untyped, skeleton) if untyped else {}
    forms: dict[Hashable, int] = {}  # a form -> its index among the samples
    samples: list[Alone] = []
    form_of = []
    for node in nodes:
        form_of.append(forms.setdefault(_form(node, shapes, types), len(samples)))
        if form_of[-1] == len(samples):
            samples.append(_alone(node, len(samples), lambda value, name: _info(value, name, shapes, types)))
    given = _small_model(samples, opset, model.ir_version)
    converted = run_converter(given, target, "the model").graph
    groups = _groups(converted.node, len(samples))
    if groups is None or len(converted.initializer):
        return False
    taken: set[str] | None = None  # every name of the model, once a node is replaced
    unchanged = [made == [before] for made, before in zip(groups, given.graph.node, strict=False)]
    kept = [None if same else _kept_attributes(made, before)
            for same, made, before in zip(unchanged, groups, given.graph.node, strict=False)]
    for node, form in zip(nodes, form_of, strict=True):
        if unchanged[form]:
            continue
        if kept[form] is not None:
            _set_attributes(node, kept[form])
            continue
        taken = names_in(all_graphs(model)) if taken is None else taken
        _replace(node, form, groups[form], given.graph, taken)
    return True


def _kept_attributes(made: list[onnx.NodeProto], before: onnx.NodeProto) -> list[ir.Attr] | None:
    """The attributes the converter gave a form's node when it kept the node (the same operator
    and wiring), read once for all the form's nodes; None when it made something else of it."""
    if len(made) != 1 or not _same_wiring(made[0], before):
        return None
    return [ir.serde.deserialize_attribute(attr) for attr in made[0].attribute]


def _set_attributes(node: ir.Node, attributes: list[ir.Attr]) -> None:
    """Give ``node`` copies of ``attributes`` in place of its own."""
    names = {attr.name for attr in attributes}
    for name in [name for name in node.attributes if name not in names]:
        del node.attributes[name]
    for attr in attributes:
        node.attributes[attr.name] = ir.Attr(attr.name, attr.type, attr.value, doc_string=attr.doc_string)


def _untyped(value: ir.Value) -> bool:
    return value.type is None or value.shape is None


def _tensor_type(value: ir.Value, shapes: dict[ir.Value, Dims], types: dict[ir.Value, int]
                 ) -> tuple[int | None, Dims | None] | None:
    """``value``'s element type and dims, its own or the inferred ones where it has none (the
    converter infers shapes in the whole model before it adapts a node, and its adapters read
    them); None for a value that is no tensor."""
    if value.type is not None and not isinstance(value.type, ir.TensorType):
        return None
    dtype = value.dtype.value if value.dtype is not None else types.get(value)
    if value.shape is None:
        return dtype, shapes.get(value)
    return dtype, tuple(dim if isinstance(dim, int) else dim.value for dim in value.shape)


def _info(value: ir.Value, name: str, shapes: dict[ir.Value, Dims], types: dict[ir.Value, int]) -> onnx.ValueInfoProto:
    """``value``'s type as the value ``name`` of the small model (:func:`_tensor_type`)."""
    tensor = _tensor_type(value, shapes, types)
    if tensor is None or tensor == (None, None):
        return ir.serde.serialize_value(value, name=name)
    dtype, dims = tensor
    return onnx.helper.make_tensor_value_info(name, dtype or 0, None if dims is None else list(dims))


@dataclass
class Alone:
    """A node on its own: its proto reading and writing graph values of its own
    (``PREFIX index/iJ``, ``PREFIX index/oK``), and those values' types."""

    node: onnx.NodeProto
    inputs: list[onnx.ValueInfoProto]
    outputs: list[onnx.ValueInfoProto]


def _form(node: ir.Node, shapes: dict[ir.Value, Dims], types: dict[ir.Value, int]) -> Hashable:
    """What the converter sees of ``node``, names aside: its operator, attributes and input
    types (the node itself when an attribute holds a tensor)."""
    attributes = []
    for name, attr in node.attributes.items():
        value = attr.value
        if isinstance(value, list | tuple):
            value = tuple(value)
        elif not isinstance(value, int | float | str):
            return node
        attributes.append((name, attr.type, value))
    inputs = tuple(None if value is None else _tensor_type(value, shapes, types) or str(value.type)
                   for value in node.inputs)
    outputs = tuple(value.name == "" for value in node.outputs)
    return node.op_type, node.domain, node.overload, tuple(attributes), inputs, outputs


def _alone(node: ir.Node, index: int, info: Callable[[ir.Value, str], onnx.ValueInfoProto]) -> Alone:
    """``node`` on its own as the ``index``-th sample, its values typed by ``info``; without its
    name and doc string."""
    proto = ir.serde.serialize_node(node)
    proto.name, proto.doc_string = "", ""
    del proto.input[:], proto.output[:]
    inputs, outputs = [], []
    for position, value in enumerate(node.inputs):
        name = "" if value is None else f"{PREFIX}{index}/i{position}"
        proto.input.append(name)
        if value is not None:
            inputs.append(info(value, name))
    for position, value in enumerate(node.outputs):
        name = f"{PREFIX}{index}/o{position}" if value.name != "" else ""
        proto.output.append(name)
        if name:
            outputs.append(ir.serde.serialize_value(value, name=name))
    return Alone(proto, inputs, outputs)


def _small_model(samples: list[Alone], opset: int, ir_version: int) -> onnx.ModelProto:
    """A model of the sample nodes side by side."""
    graph = onnx.GraphProto(name="nodes")
    for sample in samples:
        graph.node.append(sample.node)
        graph.input.extend(sample.inputs)
        graph.output.extend(sample.outputs)
    return onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)], ir_version=ir_version)


def _tag(name: str) -> int | None:
    """The index of the given node a value name of the small model belongs to, if it says."""
    if not name.startswith(PREFIX):
        return None
    index, _, _ = name[len(PREFIX) :].partition("/")
    return int(index) if index.isdigit() else None


def _groups(made: list[onnx.NodeProto], count: int) -> list[list[onnx.NodeProto]] | None:
    """The converter's nodes by the given node they came from, in order; None when a node
    belongs to none or to several."""
    owner: dict[str, int] = {}  # value name -> index of the given node it belongs to
    of: list[int | None] = [None] * len(made)
    for _ in range(3):  # a helper is at most two hops from a named value (a Constant feeding a new node)
        for position, proto in enumerate(made):
            names = [name for name in (*proto.input, *proto.output) if name]
            found = {owner[name] for name in names if name in owner}
            found.update(index for index in map(_tag, names) if index is not None)
            if len(found) > 1:
                return None
            if found:
                of[position] = found.pop()
                owner.update(dict.fromkeys(names, of[position]))
    groups: list[list[onnx.NodeProto]] = [[] for _ in range(count)]
    for position, proto in enumerate(made):
        index = of[position]
        if index is None:
            return None
        groups[index].append(proto)
    return groups


def _same_wiring(made: onnx.NodeProto, before: onnx.NodeProto) -> bool:
    """Whether a node came out as it went in but for its attributes."""
    return (made.op_type, made.domain, list(made.input), list(made.output)) == (
        before.op_type, before.domain, list(before.input), list(before.output)
    )


def _replace(node: ir.Node, form: int, made: list[onnx.NodeProto], given: onnx.GraphProto, taken: set[str]) -> None:
    """Put what the converter made of ``node``'s form in ``node``'s place: new values get names
    of their own, the node's outputs keep theirs and their uses, the node of its operator its name."""
    prefix = f"{PREFIX}{form}/"
    graph = onnx.GraphProto(name="made", node=made)
    graph.input.extend(info for info in given.input if info.name.startswith(prefix))
    graph.output.extend(info for info in given.output if info.name.startswith(prefix))
    result = ir.serde.deserialize_graph(graph)
    outputs = {value.name: value for value in result.outputs}
    inputs = {value.name: value for value in result.inputs}
    result.outputs.clear()
    new_nodes = list(result)
    result.remove(new_nodes)
    for new in new_nodes:
        if new.op_type == node.op_type and new.domain == node.domain:
            new.name = node.name
        for position, value in enumerate(new.inputs):
            if value is not None and value.name in inputs:
                new.replace_input_with(position, node.inputs[int(value.name.rpartition("/i")[2])])
        for value in new.outputs:
            if value.name and value.name not in outputs:
                value.name = unique_name(_readable(value.name, node), taken)
    old_values = [value for value in node.outputs if value.name != ""]
    new_values = [outputs[f"{prefix}o{position}"] for position, value in enumerate(node.outputs) if value.name != ""]
    ir.convenience.replace_nodes_and_values(node.graph, node, [node], new_nodes, old_values, new_values)


def _readable(name: str, node: ir.Node) -> str:
    """A name for a value the converter added: after the node's output it stands for."""
    tag = f"{PREFIX}{_tag(name)}/o"
    if name.startswith(tag):
        position, _, rest = name[len(tag) :].partition("_")
        if position.isdigit() and int(position) < len(node.outputs):
            return f"{node.outputs[int(position)].name}_{rest}" if rest else node.outputs[int(position)].name
    base = node.outputs[0].name if node.outputs and node.outputs[0].name else (node.name or node.op_type)
    return f"{base}_{name.rpartition('/')[2]}"
