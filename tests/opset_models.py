"""Small models whose ops changed form between opsets, for the opset conversion tests.

Every builder returns a checked ``onnx.ModelProto`` at its source opset, with the lowest IR
version that opset needs. Constants are initializers or Constant nodes (``const``); ``folded``
computes one by a small constant subgraph, which the converter must fold.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from helpers import make_model
from onnx import TensorProto, helper, numpy_helper

Dims = list[int]


def ir_for(opset: int) -> int:
    """The lowest IR version a model of default-domain ``opset`` needs."""
    return helper.find_min_ir_version_for([helper.make_opsetid("", opset)])


def floats(name: str, shape: Dims | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def ints(name: str, shape: Dims | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.INT64, shape)


def const(name: str, values, dtype=np.int64) -> onnx.NodeProto:
    """A Constant node ``name`` holding ``values``."""
    return helper.make_node(
        "Constant", [], [name], name=f"{name}_const", value=numpy_helper.from_array(np.array(values, dtype=dtype))
    )


def folded(name: str, values, dtype=np.int64) -> list[onnx.NodeProto]:
    """Nodes computing ``values`` into ``name`` from constants: Concat(Add(c - 1, 1)) per element."""
    values = np.array(values, dtype=dtype).reshape(-1)
    nodes = [const(f"{name}_one", [1], dtype)]
    parts = []
    for index, value in enumerate(values):
        nodes.append(const(f"{name}_c{index}", [value - 1], dtype))
        nodes.append(helper.make_node("Add", [f"{name}_c{index}", f"{name}_one"], [f"{name}_p{index}"],
                                      name=f"{name}_add{index}"))
        parts.append(f"{name}_p{index}")
    nodes.append(helper.make_node("Concat", parts, [name], axis=0, name=f"{name}_concat"))
    return nodes


@dataclass
class Case:
    """A model at ``opset`` and the opsets it converts down to (or is refused at)."""

    nodes: list[onnx.NodeProto]
    x: Dims
    y: list[tuple[str, Dims]]
    opset: int
    targets: tuple[int, ...]
    initializers: list[tuple[str, np.ndarray]] = field(default_factory=list)
    inputs: list[onnx.ValueInfoProto] = field(default_factory=list)
    feeds: dict[str, np.ndarray] = field(default_factory=dict)  # for ``inputs`` besides x

    def model(self) -> onnx.ModelProto:
        return make_model(
            self.nodes,
            [floats("x", self.x), *self.inputs],
            [floats(name, shape) for name, shape in self.y],
            initializers=self.initializers,
            opset=self.opset,
            ir_version=ir_for(self.opset),
        )


def i64(*values) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def f32(*values) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def node(op: str, inputs: list[str], outputs: list[str] | None = None, **attributes) -> onnx.NodeProto:
    return helper.make_node(op, inputs, outputs or ["y"], name=op.lower(), **attributes)


def below(opset: int) -> tuple[int, ...]:
    """The ATC target opsets 9-13 below ``opset``."""
    return tuple(t for t in range(9, 14) if t < opset)


# -- each op family in the forms it had -------------------------------------------------------------
def _cases() -> dict[str, Case]:
    x3 = [4, 6, 8]
    return {
        # Slice: inputs -> attributes below 10; negative axes below 11
        "slice-13": Case(
            [node("Slice", ["x", "starts", "ends", "axes"])], x3, [("y", [2, 6, 5])], 13, below(13),
            [("starts", i64(1, -5)), ("ends", i64(3, 100)), ("axes", i64(0, 2))],
        ),
        "slice-11-negative-axes": Case(
            [node("Slice", ["x", "starts", "ends", "axes"])], x3, [("y", [4, 3, 7])], 11, below(11),
            [("starts", i64(0, 1)), ("ends", i64(-1, 4)), ("axes", i64(-1, -2))],
        ),
        "slice-13-steps": Case(
            [node("Slice", ["x", "starts", "ends", "axes", "steps"])], x3, [("y", [4, 3, 8])], 13, (10, 11, 12),
            [("starts", i64(0, -1)), ("ends", i64(6, -1000)), ("axes", i64(1, -1)), ("steps", i64(2, -1))],
        ),
        "slice-10-no-axes": Case(
            [const("starts", [1, 2]), const("ends", [3, 5]), node("Slice", ["x", "starts", "ends"])],
            x3, [("y", [2, 3, 8])], 10, (9,),
        ),
        "slice-int32-folded": Case(
            [*folded("starts", [1], np.int32), *folded("ends", [-1], np.int32), const("axes", [-1], np.int32),
             node("Slice", ["x", "starts", "ends", "axes"])],
            x3, [("y", [4, 6, 6])], 13, below(13),
        ),
        # Squeeze / Unsqueeze: axes input from 13
        "squeeze-13": Case(
            [node("Squeeze", ["x", "axes"])], [1, 3, 1, 4], [("y", [3, 4])], 13, below(13), [("axes", i64(0, -2))],
        ),
        "squeeze-13-all": Case([node("Squeeze", ["x"])], [1, 3, 1, 4], [("y", [3, 4])], 13, below(13)),
        "unsqueeze-13": Case(
            [node("Unsqueeze", ["x", "axes"])], [3, 4], [("y", [1, 3, 4, 1])], 13, below(13), [("axes", i64(0, -1))],
        ),
        "unsqueeze-13-folded": Case(
            [*folded("axes", [1, 3]), node("Unsqueeze", ["x", "axes"])], [3, 4], [("y", [3, 1, 4, 1])], 13,
            below(13),
        ),
        # Reshape: allowzero from 14
        "reshape-14": Case(
            [node("Reshape", ["x", "shape"], allowzero=0)], x3, [("y", [4, 48])], 14, below(14),
            [("shape", i64(0, -1))],
        ),
        "reshape-14-allowzero-no-zero": Case(
            [node("Reshape", ["x", "shape"], allowzero=1)], x3, [("y", [8, 24])], 14, below(14),
            [("shape", i64(8, -1))],
        ),
        # Split: sizes input from 13, num_outputs from 18
        "split-11-negative-axis": Case(
            [node("Split", ["x"], ["a", "b"], axis=-1, split=[3, 5])], x3, [("a", [4, 6, 3]), ("b", [4, 6, 5])], 11,
            below(11),
        ),
        "split-13": Case(
            [node("Split", ["x", "split"], ["a", "b"], axis=1)], x3, [("a", [4, 2, 8]), ("b", [4, 4, 8])], 13,
            below(13), [("split", i64(2, 4))],
        ),
        "split-18-even": Case(
            [node("Split", ["x"], ["a", "b", "c"], axis=1, num_outputs=3)], x3,
            [("a", [4, 2, 8]), ("b", [4, 2, 8]), ("c", [4, 2, 8])], 18, below(18),
        ),
        "split-18-uneven": Case(
            [node("Split", ["x"], ["a", "b", "c"], axis=-1, num_outputs=3)], x3,
            [("a", [4, 6, 3]), ("b", [4, 6, 3]), ("c", [4, 6, 2])], 18, below(18),
        ),
        "split-18-sizes": Case(
            [node("Split", ["x", "split"], ["a", "b"], axis=0)], x3, [("a", [1, 6, 8]), ("b", [3, 6, 8])], 18,
            below(18), [("split", i64(1, 3))],
        ),
        # Resize: 18 / 13 / 11 / 10 forms, Upsample below 10
        "resize-18-nearest": Case(
            [node("Resize", ["x", "", "scales"], mode="nearest", coordinate_transformation_mode="asymmetric",
                  nearest_mode="floor")],
            [1, 2, 3, 4], [("y", [1, 2, 6, 12])], 18, below(18), [("scales", f32(1, 1, 2, 3))],
        ),
        "resize-18-sizes": Case(
            [node("Resize", ["x", "", "", "sizes"], mode="nearest", coordinate_transformation_mode="asymmetric",
                  nearest_mode="floor", antialias=0, keep_aspect_ratio_policy="stretch")],
            [1, 2, 3, 4], [("y", [1, 2, 6, 8])], 18, below(18), [("sizes", i64(1, 2, 6, 8))],
        ),
        "resize-18-axes-scales": Case(
            [node("Resize", ["x", "", "scales"], axes=[3, -2], mode="nearest", nearest_mode="floor",
                  coordinate_transformation_mode="asymmetric")],
            [1, 2, 3, 4], [("y", [1, 2, 6, 12])], 18, below(18), [("scales", f32(3, 2))],
        ),
        "resize-18-axes-sizes": Case(
            [node("Resize", ["x", "", "", "sizes"], axes=[-1], mode="linear",
                  coordinate_transformation_mode="asymmetric")],
            [1, 2, 3, 4], [("y", [1, 2, 3, 8])], 18, below(18), [("sizes", i64(8))],
        ),
        "resize-13-linear": Case(
            [node("Resize", ["x", "", "scales"], mode="linear", coordinate_transformation_mode="asymmetric")],
            [1, 2, 3, 4], [("y", [1, 2, 6, 8])], 13, below(13), [("scales", f32(1, 1, 2, 2))],
        ),
        "resize-13-linear-runtime-scales": Case(
            [node("Resize", ["x", "", "scales"], mode="linear", coordinate_transformation_mode="asymmetric")],
            [1, 2, 3, 4], [("y", ["n", "c", "h", "w"])], 13, below(13), inputs=[floats("scales", [4])],
            feeds={"scales": f32(1, 1, 2, 1.5)},
        ),
        "resize-13-half-pixel": Case(
            [node("Resize", ["x", "", "scales"], mode="linear")],
            [1, 2, 3, 4], [("y", [1, 2, 6, 8])], 13, (11, 12), [("scales", f32(1, 1, 2, 2))],
        ),
        "resize-13-cubic": Case(
            [node("Resize", ["x", "roi", "", "sizes"], mode="cubic", coordinate_transformation_mode="align_corners")],
            [1, 2, 3, 4], [("y", [1, 2, 5, 7])], 13, (11, 12), [("roi", f32()), ("sizes", i64(1, 2, 5, 7))],
        ),
        "resize-10": Case(
            [node("Resize", ["x", "scales"], mode="nearest")], [1, 2, 3, 4], [("y", [1, 2, 6, 8])], 10, (9,),
            [("scales", f32(1, 1, 2, 2))],
        ),
        # Pad: pads input from 11, axes from 18
        "pad-11": Case(
            [node("Pad", ["x", "pads", "value"])], x3, [("y", [4, 7, 11])], 11, below(11),
            [("pads", i64(0, 1, 2, 0, 0, 1)), ("value", f32(1.5))],
        ),
        "pad-13-reflect-folded": Case(
            [*folded("pads", [1, 0, 2, 2, 0, 1]), node("Pad", ["x", "pads"], mode="reflect")], x3,
            [("y", [7, 6, 11])], 13, below(13),
        ),
        "pad-18-axes": Case(
            [node("Pad", ["x", "pads", "", "axes"], mode="edge")], x3, [("y", [4, 9, 9])], 18, below(18),
            [("pads", i64(1, 2, 0, 1)), ("axes", i64(-1, 1))],
        ),
        # ReduceX: axes input (ReduceSum from 13, the rest from 18), noop_with_empty_axes
        "reducesum-13": Case(
            [node("ReduceSum", ["x", "axes"], keepdims=0)], x3, [("y", [6])], 13, below(13),
            [("axes", i64(0, -1))],
        ),
        "reducesum-13-noop": Case(
            [node("ReduceSum", ["x", "axes"], noop_with_empty_axes=1)], x3, [("y", x3)], 13, below(13),
            [("axes", np.zeros(0, np.int64))],
        ),
        "reducesum-13-all": Case(
            [node("ReduceSum", ["x"], keepdims=0)], x3, [("y", [])], 13, below(13),
        ),
        "reducemean-18": Case(
            [node("ReduceMean", ["x", "axes"])], x3, [("y", [4, 6, 1])], 18, below(18), [("axes", i64(-1))],
        ),
        "reducemax-18-noop": Case(
            [node("ReduceMax", ["x"], noop_with_empty_axes=1)], x3, [("y", x3)], 18, below(18),
        ),
        "reducel2-18-empty-axes": Case(
            [node("ReduceL2", ["x", "axes"], keepdims=0)], x3, [("y", [])], 18, below(18),
            [("axes", np.zeros(0, np.int64))],
        ),
        "reducelogsumexp-18-folded": Case(
            [*folded("axes", [1]), node("ReduceLogSumExp", ["x", "axes"], keepdims=1)], x3, [("y", [4, 1, 8])],
            18, below(18),
        ),
        # Softmax / LogSoftmax / Hardmax: one axis from 13, flattening from 'axis' before
        "softmax-13-middle-axis": Case(
            [node("Softmax", ["x"], axis=1)], x3, [("y", x3)], 13, below(13),
        ),
        "logsoftmax-13-first-axis": Case(
            [node("LogSoftmax", ["x"], axis=-3)], x3, [("y", x3)], 13, below(13),
        ),
        "hardmax-13-middle-axis": Case(
            [node("Hardmax", ["x"], axis=1)], x3, [("y", x3)], 13, below(13),
        ),
        "softmax-13-trailing-ones": Case(
            [node("Softmax", ["x"], axis=1)], [2, 5, 1, 1], [("y", [2, 5, 1, 1])], 13, below(13),
        ),
        "softmax-13-behind-computed-reshape": Case(  # onnx infers no rank for Reshape-13 of a computed shape
            [helper.make_node("Shape", ["x"], ["shape_x"], name="shape"),
             helper.make_node("Slice", ["shape_x", "zero", "two"], ["head"], name="head"),
             helper.make_node("Concat", ["head", "minus_one"], ["target"], axis=0, name="target"),
             helper.make_node("Reshape", ["x", "target"], ["r"], name="reshape"),
             node("Softmax", ["r"], axis=1)],
            x3, [("y", x3)], 13, below(13), [("zero", i64(0)), ("two", i64(2)), ("minus_one", i64(-1))],
        ),
        "softmax-13-default-axis": Case([node("Softmax", ["x"])], x3, [("y", x3)], 13, below(13)),
        # Clip: min / max inputs from 11
        "clip-11": Case(
            [node("Clip", ["x", "low", "high"])], x3, [("y", x3)], 11, below(11),
            [("low", f32(-0.5).reshape(())), ("high", f32(0.7).reshape(()))],
        ),
        "clip-13-max-only-folded": Case(
            [const("half", 0.25, np.float32), const("two", 2.0, np.float32),
             helper.make_node("Mul", ["half", "two"], ["high"], name="mul"), node("Clip", ["x", "", "high"])],
            x3, [("y", x3)], 13, below(13),
        ),
    }


CASES = _cases()


# -- what the target opset cannot express -----------------------------------------------------------
def _refusals() -> dict[str, tuple[Case, int, str]]:
    """Models, the target they cannot go to, and what the one-line refusal must say."""
    x3 = [4, 6, 8]
    axes_input = [ints("axes", [1])]
    # Reshape to a shape given at run time: "r" has an unknown rank, even to shape inference
    reshape = helper.make_node("Reshape", ["x", "shape"], ["r"], name="reshape_x")
    shape_input = [ints("shape", ["k"])]
    return {
        "slice-steps-to-9": (
            Case([node("Slice", ["x", "starts", "ends", "axes", "steps"])], x3, [("y", [4, 3, 8])], 13, (),
                 [("starts", i64(0)), ("ends", i64(6)), ("axes", i64(1)), ("steps", i64(2))]),
            9, "steps [2]",
        ),
        "slice-negative-axes-unknown-rank-to-10": (
            Case([reshape, node("Slice", ["r", "starts", "ends", "axes"])], x3, [("y", ["a", "b", "c"])], 11, (),
                 [("starts", i64(0)), ("ends", i64(2)), ("axes", i64(-1))], shape_input),
            10, "count from the back and the rank is unknown",
        ),
        "squeeze-runtime-axes-to-12": (
            Case([node("Squeeze", ["x", "axes"])], [1, 3], [("y", [3])], 13, (), inputs=axes_input),
            12, "axes are computed at run time",
        ),
        "reducemean-runtime-axes-to-13": (
            Case([node("ReduceMean", ["x", "axes"])], x3, [("y", ["a", "b", "c"])], 18, (), inputs=axes_input),
            13, "axes are computed at run time",
        ),
        "reshape-allowzero-zero-to-13": (
            Case([node("Reshape", ["x", "shape"], allowzero=1)], [0, 6, 8], [("y", [0, 48])], 14, (),
                 [("shape", i64(0, 48))]),
            13, "allowzero=1 with a 0 in its shape",
        ),
        "split-num-outputs-dynamic-to-13": (
            Case([node("Split", ["x"], ["a", "b"], axis=1, num_outputs=2)], [4, "n"],
                 [("a", [4, "m"]), ("b", [4, "m"])], 18, ()),
            13, "that length is unknown",
        ),
        "resize-half-pixel-to-10": (
            Case([node("Resize", ["x", "", "scales"], mode="linear")], [1, 2, 3, 4], [("y", [1, 2, 6, 8])], 13, (),
                 [("scales", f32(1, 1, 2, 2))]),
            10, "coordinate_transformation_mode 'half_pixel' exists only from opset 11",
        ),
        "resize-round-prefer-floor-to-10": (
            Case([node("Resize", ["x", "", "scales"], coordinate_transformation_mode="asymmetric")], [1, 2, 3, 4],
                 [("y", [1, 2, 6, 8])], 13, (), [("scales", f32(1, 1, 2, 2))]),
            10, "nearest_mode 'round_prefer_floor' exists only from opset 11",
        ),
        "resize-axes-unknown-rank-to-13": (
            Case([reshape, node("Resize", ["r", "", "scales"], axes=[2, 3], mode="nearest")], x3,
                 [("y", ["a", "b", "c"])], 18, (), [("scales", f32(2, 2))], shape_input),
            13, "it resizes the listed axes only and its input rank is unknown",
        ),
        "resize-symmetric-to-13": (
            Case([node("Resize", ["x", "", "scales"], mode="linear",
                       coordinate_transformation_mode="half_pixel_symmetric")],
                 [1, 2, 3, 4], [("y", [1, 2, 6, 8])], 19, (), [("scales", f32(1, 1, 2, 2))]),
            13, "'half_pixel_symmetric' exists only from opset 19",
        ),
        "resize-nearest-runtime-scales-to-10": (
            Case([node("Resize", ["x", "", "scales"], mode="nearest", coordinate_transformation_mode="asymmetric",
                       nearest_mode="floor")],
                 [1, 2, 3, 4], [("y", ["a", "b", "c", "d"])], 13, (), inputs=[floats("scales", [4])]),
            10, "its scales are computed at run time; with mode 'nearest'",
        ),
        "resize-runtime-sizes-to-10": (
            Case([node("Resize", ["x", "", "", "sizes"], mode="linear", coordinate_transformation_mode="asymmetric")],
                 [1, 2, 3, 4], [("y", ["a", "b", "c", "d"])], 13, (), inputs=[ints("sizes", [4])]),
            10, "it resizes to sizes, which opset 10 takes as scales only",
        ),
        "resize-cubic-to-10": (
            Case([node("Resize", ["x", "", "scales"], mode="cubic", coordinate_transformation_mode="asymmetric")],
                 [1, 2, 3, 4], [("y", [1, 2, 6, 8])], 13, (), [("scales", f32(1, 1, 2, 2))]),
            10, "mode 'cubic' exists only from opset 11",
        ),
        "resize-shrink-to-9": (
            Case([node("Resize", ["x", "scales"], mode="linear")], [1, 2, 4, 4], [("y", [1, 2, 2, 2])], 10, (),
                 [("scales", f32(1, 1, 0.5, 0.5))]),
            9, "it shrinks",
        ),
        "pad-runtime-pads-to-10": (
            Case([node("Pad", ["x", "pads"])], x3, [("y", ["a", "b", "c"])], 11, (), inputs=[ints("pads", [6])]),
            10, "pads are computed at run time",
        ),
        "pad-wrap-to-13": (
            Case([node("Pad", ["x", "pads"], mode="wrap")], x3, [("y", [4, 6, 10])], 19, (),
                 [("pads", i64(0, 0, 1, 0, 0, 1))]),
            13, "mode 'wrap' exists only from opset 19",
        ),
        "softmax-unknown-rank-to-12": (
            Case([reshape, node("Softmax", ["r"], axis=1)], x3, [("y", ["a", "b", "c"])], 13, (), inputs=shape_input),
            12, "its input rank is unknown",
        ),
        "clip-runtime-min-to-10": (
            Case([node("Clip", ["x", "low"])], x3, [("y", x3)], 11, (),
                 inputs=[helper.make_tensor_value_info("low", TensorProto.FLOAT, [])]),
            10, "minimum is computed at run time",
        ),
    }


REFUSALS = _refusals()


# -- the same pattern in every scope ---------------------------------------------------------------
SCOPES = ("main", "if", "loop", "function")
PATTERN_X, PATTERN_Y = [2, 3, 4], [1, 3, 3]


def pattern(prefix: str = "", opset: int = 13) -> list[onnx.NodeProto]:
    """x [2, 3, 4] -> Unsqueeze(axes 0) -> Softmax(axis 2) -> Slice(last axis 1:4) -> ReduceSum(axes 1) -> y.

    Every op changed form at opset 13 or before; the nodes have the form of ``opset``, with
    constants as Constant nodes of the scope. Below opset 13 the Softmax means a softmax over
    the flattened axes 2 and 3 (the converter must keep that meaning, up or down).
    """
    p = prefix
    if opset >= 13:
        head = [
            const(f"{p}uaxes", [0]),
            helper.make_node("Unsqueeze", ["x", f"{p}uaxes"], [f"{p}u"], name=f"{p}unsqueeze"),
        ]
    else:
        head = [helper.make_node("Unsqueeze", ["x"], [f"{p}u"], axes=[0], name=f"{p}unsqueeze")]
    if opset >= 10:
        axis = -1 if opset >= 11 else 3
        cut = [
            const(f"{p}starts", [1]), const(f"{p}ends", [4]), const(f"{p}axes", [axis]),
            helper.make_node("Slice", [f"{p}s", f"{p}starts", f"{p}ends", f"{p}axes"], [f"{p}sl"], name=f"{p}slice"),
        ]
    else:
        cut = [helper.make_node("Slice", [f"{p}s"], [f"{p}sl"], starts=[1], ends=[4], axes=[3], name=f"{p}slice")]
    if opset >= 13:
        tail = [const(f"{p}raxes", [1]),
                helper.make_node("ReduceSum", [f"{p}sl", f"{p}raxes"], ["y"], keepdims=0, name=f"{p}reducesum")]
    else:
        tail = [helper.make_node("ReduceSum", [f"{p}sl"], ["y"], axes=[1], keepdims=0, name=f"{p}reducesum")]
    softmax = [helper.make_node("Softmax", [f"{p}u"], [f"{p}s"], axis=2, name=f"{p}softmax")]
    return [*head, *softmax, *cut, *tail]


def scoped(scope: str, opset: int = 13, function_opset: int | None = None) -> onnx.ModelProto:
    """The :func:`pattern` in ``scope``: the main graph, both branches of an If, a Loop body, a function."""
    y = floats("y", PATTERN_Y)
    if scope == "main":
        nodes, inputs, outputs = pattern("", opset), [floats("x", PATTERN_X)], [y]
    elif scope == "if":
        then = helper.make_graph(pattern("then_", opset), "then", [], [y])
        other = helper.make_graph(
            [*pattern("else_", opset), helper.make_node("Neg", ["y"], ["y_neg"], name="else_neg")], "else", [],
            [floats("y_neg", PATTERN_Y)],
        )
        nodes = [helper.make_node("If", ["cond"], ["out"], then_branch=then, else_branch=other, name="if")]
        inputs = [helper.make_tensor_value_info("cond", TensorProto.BOOL, []), floats("x", PATTERN_X)]
        outputs = [floats("out", PATTERN_Y)]
    elif scope == "loop":
        nodes, inputs, outputs = _loop(opset), [floats("x", PATTERN_X)], [floats("out", [2, *PATTERN_Y])]
    else:
        inner = function_opset or opset
        function = helper.make_function(
            "local", "pattern", ["x"], ["y"], pattern("f_", inner), [helper.make_opsetid("", inner)]
        )
        call = helper.make_node("pattern", ["a"], ["out"], domain="local", name="call")
        return make_model(
            [call], [floats("a", PATTERN_X)], [floats("out", PATTERN_Y)], opset=opset, ir_version=ir_for(opset),
            functions=[function], extra_opsets=[helper.make_opsetid("local", 1)],
        )
    return make_model(nodes, inputs, outputs, opset=opset, ir_version=ir_for(opset))


def _loop(opset: int) -> list[onnx.NodeProto]:
    """A Loop of 2 trips applying the pattern to the outer ``x``; it carries a value only below opset 11,
    where a Loop must carry one (from 11 the converter adds a dummy one going down)."""
    carried = opset < 11
    body = helper.make_graph(
        [
            *pattern("body_", opset),
            helper.make_node("Identity", ["cond_in"], ["cond_out"], name="body_keep_going"),
            *([helper.make_node("Neg", ["state"], ["state_out"], name="body_flip")] if carried else []),
        ],
        "body",
        [ints("i", []), helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         *([floats("state", [1])] if carried else [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         *([floats("state_out", [1])] if carried else []), floats("y", PATTERN_Y)],
    )
    state = [const("seed", [1.0], np.float32)] if carried else []
    inputs, outputs = (["trips", "", "seed"], ["state_final", "out"]) if carried else (["trips", ""], ["out"])
    return [const("trips", 2), *state, helper.make_node("Loop", inputs, outputs, body=body, name="loop")]


# -- a real export -----------------------------------------------------------------------------------
MIXED_INPUT = (1, 4, 6, 6)


def export_mixed(path, opset: int):
    """Export (TorchScript exporter) a small net using every family above: Pad (pads computed by a
    constant subgraph), Slice, Split, Softmax over a middle axis, ReduceSum / ReduceMean,
    Unsqueeze / Squeeze, Resize (nearest), Clip, LogSoftmax behind a computed Reshape."""
    import torch
    from torch.nn import functional
    from torch_models import export

    class Mixed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(4, 8, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = functional.pad(self.conv(x), (1, 2, 0, 1), mode="reflect")[:, 1:7, :, 2:]
            a, b = torch.split(y, [2, 4], dim=1)
            u = a.sum(dim=1, keepdim=True).unsqueeze(-1).squeeze(-1)
            z = functional.interpolate(u * torch.softmax(b, dim=1).mean(dim=1, keepdim=True), scale_factor=2)
            return torch.clamp(z, -0.5, 0.5) + torch.log_softmax(z.flatten(2), dim=-1).reshape(z.shape)

    return export(Mixed(), path, MIXED_INPUT, opset)


# -- upward: Resize before opset 11 maps coordinates as onnxruntime did -----------------------------
def _ups() -> dict[str, Case]:
    """Old resizes and the opsets they go up to. 'nearest' takes floor(i / scale) on growing axes and
    ceil on shrinking ones before opset 11 (onnxruntime)."""
    x = [1, 2, 5, 5]
    up = (11, 13, 18)
    return {
        f"{op.lower()}-{opset}-{mode}-{'-'.join(map(str, scales))}": Case(
            [node(op, ["x", "scales"], mode=mode)], x, [("y", [1, 2, int(5 * scales[0]), int(5 * scales[1])])],
            opset, up, [("scales", f32(1, 1, *scales))],
        )
        for op, opset in (("Resize", 10), ("Upsample", 9))
        for mode in ("nearest", "linear")
        for scales in ((2, 3), (0.6, 0.6), (0.6, 2), (1.5, 1))
        if op == "Resize" or min(scales) >= 1
    } | {
        "upsample-7-attribute": Case(
            [node("Upsample", ["x"], mode="nearest", scales=[1.0, 1.0, 2.0, 1.5])], x, [("y", [1, 2, 10, 7])], 7, up,
        ),
    }


UPS = _ups()
