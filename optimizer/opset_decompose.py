"""Adapters for ops that do not exist before some opset: each becomes the ops it is defined by.

The decompositions follow the ops' own ONNX function bodies (LayerNormalization computes in
float32 for float16 / bfloat16 inputs, as its ``stash_type`` says), so the numbers stay those
of the original op up to rounding.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from optimizer.opset_rewrite import AdapterTable, Rewriter

ADAPTERS = AdapterTable()

_HALF_TYPES = (ir.DataType.FLOAT16, ir.DataType.BFLOAT16)


def _dtype(node: ir.Node, rw: Rewriter, index: int = 0) -> ir.DataType:
    dtype = rw.dtype(node.inputs[index])
    if dtype is None:
        rw.refuse(node, f"{node.op_type} exists only from opset {_introduced(node)}, and its input type, which "
                  "the decomposition needs, is unknown")
    return dtype


def _introduced(node: ir.Node) -> int:
    return next(since for (op, since) in ADAPTERS if op == node.op_type)


def _scalar(node: ir.Node, rw: Rewriter, value: float, dtype: ir.DataType, what: str) -> ir.Value:
    return rw.constant(node, np.array(value, dtype=dtype.numpy()), what)


@ADAPTERS.register(["LayerNormalization"], 17, shapes=True)
def _layer_norm(node: ir.Node, rw: Rewriter) -> None:
    x, scale = node.inputs[0], node.inputs[1]
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    dtype = _dtype(node, rw)
    axis = node.attributes.get_int("axis", -1)
    rank = rw.rank(x)
    if axis < 0 and rank is not None:
        axis += rank
    if axis >= 0 and rank is None:
        rw.refuse(node, "LayerNormalization exists only from opset 17, and its input rank, which the "
                  "decomposition needs, is unknown")
    axes = list(range(axis, rank)) if axis >= 0 else list(range(axis, 0))
    compute = ir.DataType.FLOAT if node.attributes.get_int("stash_type", 1) == 1 and dtype in _HALF_TYPES else dtype
    epsilon = _scalar(node, rw, node.attributes.get_float("epsilon", 1e-5), compute, "epsilon")
    nodes: list[ir.Node] = []

    def add(op: str, inputs: list[ir.Value | None], **attributes) -> ir.Value:
        nodes.append(rw.node(op, inputs, attributes, node))
        return nodes[-1].outputs[0]

    source = add("Cast", [x], to=int(compute)) if compute != dtype else x
    mean = add("ReduceMean", [source], axes=axes, keepdims=1)
    centred = add("Sub", [source, mean])
    variance = add("ReduceMean", [add("Mul", [centred, centred])], axes=axes, keepdims=1)
    inverse = add("Reciprocal", [add("Sqrt", [add("Add", [variance, epsilon])])])
    normalized = add("Mul", [centred, inverse])
    if compute != dtype:
        normalized = add("Cast", [normalized], to=int(dtype))
    result = add("Mul", [normalized, scale])
    if bias is not None:
        result = add("Add", [result, bias])
    rw.replace(node, nodes, [result, mean, inverse][: len(node.outputs)])


@ADAPTERS.register(["Gelu"], 20)
def _gelu(node: ir.Node, rw: Rewriter) -> None:
    x = node.inputs[0]
    dtype = _dtype(node, rw)
    nodes: list[ir.Node] = []

    def add(op: str, *inputs: ir.Value) -> ir.Value:
        nodes.append(rw.node(op, list(inputs), {}, node))
        return nodes[-1].outputs[0]

    approximate = node.attributes.get_string("approximate", "none")
    if approximate == "tanh":
        cube = add("Mul", add("Mul", x, x), x)
        inner = add("Add", x, add("Mul", cube, _scalar(node, rw, 0.044715, dtype, "coefficient")))
        curve = add("Tanh", add("Mul", inner, _scalar(node, rw, math.sqrt(2 / math.pi), dtype, "scale")))
    else:
        if rw.target < 9:
            rw.refuse(node, "Gelu exists only from opset 20, and its decomposition needs Erf (opset 9)")
        curve = add("Erf", add("Div", x, _scalar(node, rw, math.sqrt(2), dtype, "sqrt2")))
    one_plus = add("Add", curve, _scalar(node, rw, 1.0, dtype, "one"))
    result = add("Mul", add("Mul", x, _scalar(node, rw, 0.5, dtype, "half")), one_plus)
    rw.replace(node, nodes, [result])


@ADAPTERS.register(["HardSwish"], 14)
def _hard_swish(node: ir.Node, rw: Rewriter) -> None:
    gate = rw.node("HardSigmoid", [node.inputs[0]], {"alpha": 1 / 6, "beta": 0.5}, node)
    product = rw.node("Mul", [node.inputs[0], gate.outputs[0]], {}, node)
    rw.replace(node, [gate, product], product.outputs)


@ADAPTERS.register(["Mish"], 18)
def _mish(node: ir.Node, rw: Rewriter) -> None:
    soft = rw.node("Softplus", [node.inputs[0]], {}, node)
    tanh = rw.node("Tanh", soft.outputs, {}, node)
    product = rw.node("Mul", [node.inputs[0], tanh.outputs[0]], {}, node)
    rw.replace(node, [soft, tanh, product], product.outputs)


@ADAPTERS.register(["Swish"], 24)
def _swish(node: ir.Node, rw: Rewriter) -> None:
    x = node.inputs[0]
    alpha = node.attributes.get_float("alpha", 1.0)
    nodes = []
    if alpha != 1.0:
        nodes.append(rw.node("Mul", [x, _scalar(node, rw, alpha, _dtype(node, rw), "alpha")], {}, node))
    nodes.append(rw.node("Sigmoid", [nodes[-1].outputs[0] if nodes else x], {}, node))
    nodes.append(rw.node("Mul", [x, nodes[-1].outputs[0]], {}, node))
    rw.replace(node, nodes, nodes[-1].outputs)


@ADAPTERS.register(["GreaterOrEqual", "LessOrEqual"], 12)
def _or_equal(node: ir.Node, rw: Rewriter) -> None:
    dtype = rw.dtype(node.inputs[0])
    if rw.target < 11 and (dtype is None or dtype.is_floating_point()):
        rw.refuse(node, f"{node.op_type} exists only from opset 12, and Equal on floating-point (or unknown) types, "
                  "which its decomposition needs, only from opset 11")
    strict = rw.node("Greater" if node.op_type == "GreaterOrEqual" else "Less", list(node.inputs), {}, node)
    equal = rw.node("Equal", list(node.inputs), {}, node)
    either = rw.node("Or", [strict.outputs[0], equal.outputs[0]], {}, node)
    rw.replace(node, [strict, equal, either], either.outputs)


@ADAPTERS.register(["CastLike"], 15)
def _cast_like(node: ir.Node, rw: Rewriter) -> None:
    dtype = _dtype(node, rw, 1)
    cast = rw.node("Cast", [node.inputs[0]], {"to": int(dtype)}, node)
    rw.replace(node, [cast], cast.outputs)
