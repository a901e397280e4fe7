"""Move a model's main graph into another scope, so a pass can be checked where graphs nest.

``nest(model, "function")`` puts the graph in a model-local function called from the main graph;
``"if"`` puts a copy in each branch of an If on a new bool input; ``"loop"`` puts it in the body
of a two-trip Loop (each output gains a leading axis of 2). Value and node names stay as they
were, so every nested model holds same-named values in two scopes.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

__all__ = ["SCOPES", "nest"]

SCOPES = ("main", "function", "if", "loop")
FUNCTION_DOMAIN = "optimizer.testing"


def nest(model: onnx.ModelProto, scope: str) -> onnx.ModelProto:
    """A new model computing what ``model`` computes, with its main graph moved into ``scope``."""
    if scope == "main":
        return _copy(model)
    nested = {"function": _in_function, "if": _in_if, "loop": _in_loop}[scope](model)
    onnx.checker.check_model(nested)
    return nested


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    result = onnx.ModelProto()
    result.CopyFrom(model)
    return result


def _unique(base: str, model: onnx.ModelProto) -> str:
    taken = {v.name for v in (*model.graph.input, *model.graph.output, *model.graph.initializer)}
    taken |= {name for node in model.graph.node for name in (*node.input, *node.output)}
    name, count = base, 0
    while name in taken:
        count += 1
        name = f"{base}_{count}"
    return name


def _with_graph(model: onnx.ModelProto, graph: onnx.GraphProto) -> onnx.ModelProto:
    result = _copy(model)
    result.graph.CopyFrom(graph)
    return result


def _body(model: onnx.ModelProto, name: str, inputs=(), outputs=None, extra_nodes=()) -> onnx.GraphProto:
    """The main graph as a subgraph: its nodes and initializers, reading the outer inputs."""
    graph = model.graph
    return helper.make_graph(
        [*graph.node, *extra_nodes],
        name,
        list(inputs),
        list(graph.output) if outputs is None else outputs,
        initializer=list(graph.initializer),
        value_info=list(graph.value_info),
    )


def _in_function(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    constants = [
        helper.make_node("Constant", [], [tensor.name], value=tensor, name=f"{tensor.name}_constant")
        for tensor in graph.initializer
    ]
    opsets = [o for o in model.opset_import if o.domain != FUNCTION_DOMAIN]
    function = helper.make_function(
        FUNCTION_DOMAIN,
        "pattern",
        [i.name for i in graph.input],
        [o.name for o in graph.output],
        [*constants, *graph.node],
        opsets,
    )
    call = helper.make_node(
        "pattern", [i.name for i in graph.input], [o.name for o in graph.output], domain=FUNCTION_DOMAIN, name="call"
    )
    main = helper.make_graph([call], graph.name, list(graph.input), list(graph.output))
    result = _with_graph(model, main)
    result.functions.append(function)
    result.opset_import.append(helper.make_opsetid(FUNCTION_DOMAIN, 1))
    return result


def _in_if(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    cond = helper.make_tensor_value_info(_unique("cond", model), TensorProto.BOOL, [])
    node = helper.make_node(
        "If",
        [cond.name],
        [o.name for o in graph.output],
        then_branch=_body(model, "then"),
        else_branch=_body(model, "else"),
        name=_unique("if", model),
    )
    main = helper.make_graph([node], graph.name, [cond, *graph.input], list(graph.output))
    return _with_graph(model, main)


def _in_loop(model: onnx.ModelProto) -> onnx.ModelProto:
    """A two-trip Loop with an empty ``cond`` (and a carried value, so the empty input is not a
    trailing one, which serializers may drop); its body computes the graph's outputs."""
    graph = model.graph
    keys = ("trip", "cond_in", "cond_out", "carried", "carried_out", "trips", "seed", "total", "loop")
    names = {key: _unique(key, model) for key in keys}
    body = _body(
        model,
        "body",
        inputs=[
            helper.make_tensor_value_info(names["trip"], TensorProto.INT64, []),
            helper.make_tensor_value_info(names["cond_in"], TensorProto.BOOL, []),
            helper.make_tensor_value_info(names["carried"], TensorProto.FLOAT, [1]),
        ],
        outputs=[
            helper.make_tensor_value_info(names["cond_out"], TensorProto.BOOL, []),
            helper.make_tensor_value_info(names["carried_out"], TensorProto.FLOAT, [1]),
            *graph.output,
        ],
        extra_nodes=[
            helper.make_node("Identity", [names["cond_in"]], [names["cond_out"]], name=names["cond_out"]),
            helper.make_node("Identity", [names["carried"]], [names["carried_out"]], name=names["carried_out"]),
        ],
    )
    constants = [
        helper.make_node(
            "Constant", [], [names[key]], value=helper.make_tensor("", kind, dims, [value]), name=names[key]
        )
        for key, kind, dims, value in (("trips", TensorProto.INT64, [], 2), ("seed", TensorProto.FLOAT, [1], 1.0))
    ]
    loop = helper.make_node(
        "Loop",
        [names["trips"], "", names["seed"]],
        [names["total"], *(o.name for o in graph.output)],
        body=body,
        name=names["loop"],
    )
    main = helper.make_graph([*constants, loop], graph.name, list(graph.input), [_stacked(o) for o in graph.output])
    return _with_graph(model, main)


def _stacked(output: onnx.ValueInfoProto) -> onnx.ValueInfoProto:
    """The type of a Loop's scan output: the body's output with a leading axis of 2."""
    stacked = onnx.ValueInfoProto()
    stacked.CopyFrom(output)
    if stacked.type.tensor_type.HasField("shape"):
        dims = list(stacked.type.tensor_type.shape.dim)
        stacked.type.tensor_type.shape.ClearField("dim")
        stacked.type.tensor_type.shape.dim.add().dim_value = 2
        for dim in dims:
            stacked.type.tensor_type.shape.dim.add().CopyFrom(dim)
    return stacked
