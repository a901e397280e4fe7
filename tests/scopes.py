"""Put a pattern in each scope a pass must handle: the main graph, a model-local function, both
branches of an If, a Loop body. A pattern reads the value ``x`` and defines ``y``; the inner
values keep their names in every copy, so two scopes (the If's branches, the main graph and a
function) hold same-named values."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from helpers import make_model
from onnx import TensorProto, helper

SCOPES = ("main", "function", "if", "loop")


@dataclass
class Pattern:
    """Nodes reading ``x`` (shape ``x_shape``) and writing ``y`` (shape ``y_shape``)."""

    nodes: list[onnx.NodeProto]
    x_shape: list[int]
    y_shape: list[int]
    opset: int = 13
    decoys: list[tuple[str, list[int]]] = field(default_factory=list)  # same-named values elsewhere


def place(pattern: Pattern, scope: str) -> onnx.ModelProto:
    """A model holding ``pattern`` in ``scope``, plus same-named decoy values in the main graph."""
    return {"main": _in_main, "function": _in_function, "if": _in_if, "loop": _in_loop}[scope](pattern)


def feeds(model: onnx.ModelProto, seed: int = 0, cond: bool | None = None) -> dict[str, np.ndarray]:
    """Random inputs for a placed model; ``cond`` fixes the If's condition."""
    rng = np.random.default_rng(seed)
    result = {}
    for value in model.graph.input:
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        if value.type.tensor_type.elem_type == TensorProto.BOOL:
            result[value.name] = np.array(bool(rng.integers(2)) if cond is None else cond)
        else:
            result[value.name] = rng.standard_normal(dims).astype(np.float32)
    return result


def _decoys(pattern: Pattern) -> tuple[list[onnx.NodeProto], list[tuple[str, list[int]]], list[tuple[str, list[int]]]]:
    """Main-graph nodes defining values named like the pattern's inner values, with other shapes."""
    nodes, inputs, outputs = [], [], []
    for index, (name, shape) in enumerate(pattern.decoys):
        source = f"decoy_in{index}"
        inputs.append((source, shape))
        nodes.append(helper.make_node("Relu", [source], [name], name=f"decoy{index}"))
        outputs.append((name, shape))
    return nodes, inputs, outputs


def _in_main(pattern: Pattern) -> onnx.ModelProto:
    return make_model(pattern.nodes, [("x", pattern.x_shape)], [("y", pattern.y_shape)], opset=pattern.opset)


def _in_function(pattern: Pattern) -> onnx.ModelProto:
    function = helper.make_function(
        "local", "pattern", ["x"], ["y"], pattern.nodes, [helper.make_opsetid("", pattern.opset)]
    )
    nodes, inputs, outputs = _decoys(pattern)
    call = helper.make_node("pattern", ["a"], ["out"], domain="local", name="call")
    return make_model(
        [call, *nodes],
        [("a", pattern.x_shape), *inputs],
        [("out", pattern.y_shape), *outputs],
        opset=pattern.opset,
        functions=[function],
        extra_opsets=[helper.make_opsetid("local", 1)],
    )


def _branch(pattern: Pattern, name: str) -> onnx.GraphProto:
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, pattern.y_shape)
    return helper.make_graph(list(pattern.nodes), name, [], [out])


def _in_if(pattern: Pattern) -> onnx.ModelProto:
    """Both branches hold the pattern (same value names in two sibling scopes); else negates after."""
    other = _branch(pattern, "else")
    other.node.append(helper.make_node("Neg", ["y"], ["y_neg"], name="neg"))
    other.output[0].name = "y_neg"
    node = helper.make_node("If", ["cond"], ["out"], then_branch=_branch(pattern, "then"), else_branch=other, name="if")
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    return make_model([node], [cond, ("x", pattern.x_shape)], [("out", pattern.y_shape)], opset=pattern.opset)


def _in_loop(pattern: Pattern) -> onnx.ModelProto:
    """A Loop of 2 trips with an empty ``cond``; the body applies the pattern to the outer ``x``."""
    body = helper.make_graph(
        [
            *pattern.nodes,
            helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep_going"),
            helper.make_node("Add", ["carried", "carried"], ["carried_out"], name="double"),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("carried", TensorProto.FLOAT, [1]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("carried_out", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("y", TensorProto.FLOAT, pattern.y_shape),
        ],
    )
    trips = helper.make_node("Constant", [], ["trips"], value=helper.make_tensor("", TensorProto.INT64, [], [2]))
    seed = helper.make_node("Constant", [], ["seed"], value=helper.make_tensor("", TensorProto.FLOAT, [1], [1.0]))
    loop = helper.make_node("Loop", ["trips", "", "seed"], ["total", "out"], body=body, name="loop")
    return make_model(
        [trips, seed, loop],
        [("x", pattern.x_shape)],
        [("total", [1]), ("out", [2, *pattern.y_shape])],
        opset=pattern.opset,
    )


def shape_in_main_reshape_in_branches(x_dims):
    """s = [b, h*w] computed in the main graph from Shape(x); each If branch reshapes x by it (a value
    used in scopes below the one that computes it)."""

    def branch(name, op):
        return helper.make_graph(
            [helper.make_node("Reshape", ["x", "s"], [f"{name}_r"], name=f"{name}_reshape"),
             helper.make_node(op, [f"{name}_r"], [f"{name}_y"], name=f"{name}_{op.lower()}")],
            name, [], [helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, [x_dims[0], 12])],
        )

    def const(name, values):
        tensor = helper.make_tensor(name, TensorProto.INT64, [len(values)], values)
        return helper.make_node("Constant", [], [name], value=tensor)

    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], name="shape"),
        const("i0", [0]), const("i1", [1]), const("i2", [2]),
        helper.make_node("Gather", ["shape", "i0"], ["b"], name="b"),
        helper.make_node("Gather", ["shape", "i1"], ["h"], name="h"),
        helper.make_node("Gather", ["shape", "i2"], ["w"], name="w"),
        helper.make_node("Mul", ["h", "w"], ["hw"], name="hw"),
        helper.make_node("Concat", ["b", "hw"], ["s"], axis=0, name="s"),
        helper.make_node("If", ["c"], ["y"], then_branch=branch("then", "Relu"), else_branch=branch("else", "Neg"),
                         name="if"),
    ]
    inputs = [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
              helper.make_tensor_value_info("x", TensorProto.FLOAT, x_dims)]
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, [x_dims[0], 12])
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, [output]),
                              opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    return model
