"""Per-operator adapters that bring a node one version down where its form or meaning changed.

An adapter registered for ``(op, since)`` rewrites a node of the version introduced at opset
``since`` into the previous version of the op, keeping its meaning: inputs that became
attributes go back (from constants), attributes added later must hold the value that means
the old behaviour, and semantic changes (Softmax's axis, negative axes, Resize's coordinate
modes) are rewritten or refused with the reason. Versions that changed type support only
need no adapter: the final check validates the types at the target opset. Ops that do not
exist before some opset are in :mod:`optimizer.opset_decompose`.
"""

from __future__ import annotations

import math

import numpy as np
import onnx_ir as ir

from optimizer.opset_rewrite import AdapterTable, Rewriter

ADAPTERS = AdapterTable()

REDUCE_OPS = (
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceMax",
    "ReduceMean",
    "ReduceMin",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
)
SOFTMAX_OPS = ("Softmax", "LogSoftmax", "Hardmax")
# Ops with one 'axis' attribute that counts from the back only from opset 11 on.
_SINGLE_AXIS_OPS = ("ArgMax", "ArgMin", "Compress", "Concat", "Flatten", "Scatter", "Split", *SOFTMAX_OPS)


def set_attribute(node: ir.Node, name: str, value: int | float | str | list[int] | list[float]) -> None:
    """Set attribute ``name`` of ``node`` from a Python value (a list of ints or of floats)."""
    if isinstance(value, list):
        kind = ir.AttributeType.FLOATS if any(isinstance(v, float) for v in value) else ir.AttributeType.INTS
        node.attributes[name] = ir.Attr(name, kind, value)
    else:
        node.attributes[name] = ir.convenience.convert_attribute(name, value)


# -- attributes added later, which must hold the value meaning the old behaviour ---------------------
_DEFAULTS: dict[tuple[str, int], dict[str, object]] = {
    ("ArgMax", 12): {"select_last_index": 0},
    ("ArgMin", 12): {"select_last_index": 0},
    ("AveragePool", 10): {"ceil_mode": 0},
    ("AveragePool", 19): {"dilations": "ones"},
    ("DepthToSpace", 11): {"mode": "DCR"},
    ("SpaceToDepth", 28): {"mode": "DCR"},
    ("GRU", 14): {"layout": 0},
    ("LSTM", 14): {"layout": 0},
    ("RNN", 14): {"layout": 0},
    ("GatherND", 12): {"batch_dims": 0},
    ("LpPool", 18): {"ceil_mode": 0, "dilations": "ones"},
    ("MaxPool", 10): {"ceil_mode": 0, "dilations": "ones"},
    ("ScatterElements", 16): {"reduction": "none"},
    ("ScatterND", 16): {"reduction": "none"},
    ("RoiAlign", 16): {"coordinate_transformation_mode": "output_half_pixel"},
    ("TopK", 11): {"largest": 1, "sorted": 1},
    ("DequantizeLinear", 21): {"block_size": 0},
    ("DequantizeLinear", 23): {"output_dtype": 0},
    ("QuantizeLinear", 21): {"block_size": 0, "output_dtype": 0},
    ("QuantizeLinear", 23): {"precision": 0},
    # Only meaningful for float8 types, which the type check refuses before opset 19 / 24.
    ("Cast", 19): {"saturate": "any"},
    ("CastLike", 19): {"saturate": "any"},
    ("QuantizeLinear", 19): {"saturate": "any"},
    ("Cast", 24): {"round_mode": "any"},
    ("CastLike", 24): {"round_mode": "any"},
    # Only meaningful for float16 / bfloat16, which Range takes from opset 27 on.
    ("Range", 27): {"stash_type": "any"},
}


def _defaults_adapter(defaults: dict[str, object]):
    def convert(node: ir.Node, rw: Rewriter) -> None:
        for name, default in defaults.items():
            if default == "any":
                node.attributes.pop(name, None)
            elif default == "ones":
                values = node.attributes.get_ints(name)
                if values is not None and any(v != 1 for v in values):
                    rw.refuse(node, f"{name}={list(values)} has no equivalent at opset {rw.target}")
                node.attributes.pop(name, None)
            else:
                rw.keep_default(node, name, default)

    return convert


for (_op, _since), _values in _DEFAULTS.items():
    ADAPTERS.register([_op], _since)(_defaults_adapter(_values))


# -- axes that count from the back (allowed from opset 11 on) ----------------------------------------
@ADAPTERS.register(_SINGLE_AXIS_OPS, 11, shapes=True)
def _axis_from_front(node: ir.Node, rw: Rewriter) -> None:
    axis = node.attributes.get_int("axis")
    if axis is not None and axis < 0:
        set_attribute(node, "axis", rw.positive_axes(node, [axis], rw.rank(node.inputs[0]), "axis")[0])


@ADAPTERS.register([*REDUCE_OPS, "Squeeze", "Unsqueeze"], 11, shapes=True)
def _axes_from_front(node: ir.Node, rw: Rewriter) -> None:
    axes = node.attributes.get_ints("axes")
    if axes is None or all(axis >= 0 for axis in axes):
        return
    rank = rw.rank(node.inputs[0])
    if rank is not None and node.op_type == "Unsqueeze":
        rank += len(axes)  # Unsqueeze's axes index the output
    set_attribute(node, "axes", rw.positive_axes(node, list(axes), rank))


@ADAPTERS.register(["OneHot"], 11, shapes=True)
def _one_hot_from_front(node: ir.Node, rw: Rewriter) -> None:
    indices = rw.array(node.inputs[0])
    if indices is None or (indices < 0).any():
        rw.refuse(node, f"negative indices count from the back only from opset 11; at opset {rw.target} they "
                  "give an all-off row, and its indices are not constants known to be non-negative")
    axis = node.attributes.get_int("axis", -1)
    if axis < -1:
        rank = rw.rank(node.inputs[0])
        set_attribute(node, "axis", rw.positive_axes(node, [axis], None if rank is None else rank + 1, "axis")[0])


@ADAPTERS.register(["Gather"], 11, shapes=True)
def _gather_indices_from_front(node: ir.Node, rw: Rewriter) -> None:
    indices = rw.array(node.inputs[1])
    if indices is None or not (indices < 0).any():
        return  # indices computed at run time: onnxruntime counts negative ones from the back at every opset
    axis = node.attributes.get_int("axis", 0)
    dims = rw.dims(node.inputs[0])
    size = None if dims is None else dims[axis]
    if size is None:
        rw.refuse(node, f"its indices count from the back, and the size of axis {axis} is unknown; "
                  f"opset {rw.target} needs non-negative indices")
    fixed = np.where(indices < 0, indices + size, indices).astype(indices.dtype)
    rw.set_input(node, 1, rw.constant(node, fixed, "indices"))


@ADAPTERS.register(["Slice"], 11, constants=(3,), shapes=True)
def _slice_axes_from_front(node: ir.Node, rw: Rewriter) -> None:
    axes = rw.const_ints(node, 3, "axes")
    if axes is None or all(axis >= 0 for axis in axes):
        return
    fixed = rw.positive_axes(node, axes, rw.rank(node.inputs[0]))
    rw.set_input(node, 3, rw.constant(node, np.array(fixed, dtype=rw.array(node.inputs[3]).dtype), "axes"))


@ADAPTERS.register(["Scan"], 11)
def _scan_axes_from_front(node: ir.Node, rw: Rewriter) -> None:
    for name in ("scan_input_axes", "scan_output_axes"):
        if any(axis < 0 for axis in node.attributes.get_ints(name, ())):
            rw.refuse(node, f"its {name} count from the back; opset {rw.target} needs non-negative axes")


@ADAPTERS.register(["ScatterElements"], 11, shapes=True)
def _scatter_elements_to_scatter(node: ir.Node, rw: Rewriter) -> None:
    _axis_from_front(node, rw)
    node.op_type = "Scatter"  # the same operator under its old name


# -- Softmax, LogSoftmax, Hardmax: one axis from opset 13 on, flattening from 'axis' before ----------
@ADAPTERS.register(SOFTMAX_OPS, 13, shapes=True)
def _softmax_one_axis(node: ir.Node, rw: Rewriter) -> None:
    axis = node.attributes.get_int("axis", -1)
    dims = rw.dims(node.inputs[0])
    if dims is None:
        if axis != -1:
            rw.refuse(node, f"its input rank is unknown; before opset 13 {node.op_type} flattens every axis from "
                      "'axis' on, so only the last axis converts without it")
        set_attribute(node, "axis", -1)
        return
    rank = len(dims)
    axis = axis + rank if axis < 0 else axis
    if axis == rank - 1 or all(dim == 1 for dim in dims[axis + 1 :]):
        set_attribute(node, "axis", axis)
        return
    perm = list(range(rank))
    perm[axis], perm[-1] = perm[-1], perm[axis]
    before = rw.node("Transpose", [node.inputs[0]], {"perm": perm}, node)
    inner = rw.node(node.op_type, [before.outputs[0]], {"axis": rank - 1}, node)
    after = rw.node("Transpose", [inner.outputs[0]], {"perm": perm}, node)
    rw.replace(node, [before, inner, after], [after.outputs[0]])


# -- inputs that were attributes -----------------------------------------------------------------
@ADAPTERS.register(["Slice"], 10, constants=(1, 2, 3, 4), shapes=True)
def _slice_attributes(node: ir.Node, rw: Rewriter) -> None:
    starts = rw.const_ints(node, 1, "starts")
    ends = rw.const_ints(node, 2, "ends")
    axes = rw.const_ints(node, 3, "axes")
    steps = rw.const_ints(node, 4, "steps")
    if steps is not None and any(step != 1 for step in steps):
        rw.refuse(node, f"it slices with steps {steps}; Slice has steps only from opset 10")
    rw.drop_inputs(node, 1)
    set_attribute(node, "starts", starts)
    set_attribute(node, "ends", ends)
    if axes is not None:
        set_attribute(node, "axes", rw.positive_axes(node, axes, rw.rank(node.inputs[0])))


@ADAPTERS.register(["Squeeze", "Unsqueeze"], 13, constants=(1,))
@ADAPTERS.register(["ReduceSum"], 13, constants=(1,))
@ADAPTERS.register([op for op in REDUCE_OPS if op != "ReduceSum"], 18, constants=(1,))
def _axes_attribute(node: ir.Node, rw: Rewriter) -> None:
    axes = rw.const_ints(node, 1, "axes")
    keep_input = node.attributes.pop("noop_with_empty_axes", None)
    rw.drop_inputs(node, 1)
    if axes:
        set_attribute(node, "axes", axes)
    elif keep_input is not None and keep_input.value:
        identity = rw.node("Identity", [node.inputs[0]], {}, node)
        rw.replace(node, [identity], identity.outputs)


@ADAPTERS.register(["Split"], 13, constants=(1,))
def _split_attribute(node: ir.Node, rw: Rewriter) -> None:
    sizes = rw.const_ints(node, 1, "split sizes")
    rw.drop_inputs(node, 1)
    if sizes is not None:
        set_attribute(node, "split", sizes)


@ADAPTERS.register(["Split"], 18, shapes=True)
def _split_without_count(node: ir.Node, rw: Rewriter) -> None:
    count = node.attributes.pop("num_outputs", None)
    if count is None or (len(node.inputs) > 1 and node.inputs[1] is not None):
        return
    dims = rw.dims(node.inputs[0])
    axis = node.attributes.get_int("axis", 0)
    length = None if dims is None or not -len(dims) <= axis < len(dims) else dims[axis]
    if length is None:
        rw.refuse(node, "it splits into num_outputs parts, the last one smaller when the axis length is not a "
                  f"multiple; that length is unknown, and opset {rw.target} splits evenly or by sizes only")
    if length % count.value:
        chunk = math.ceil(length / count.value)
        sizes = [chunk] * (count.value - 1) + [length - chunk * (count.value - 1)]
        rw.set_input(node, 1, rw.constant(node, np.array(sizes, dtype=np.int64), "split"))


@ADAPTERS.register(["Pad"], 11, constants=(1, 2))
def _pad_attributes(node: ir.Node, rw: Rewriter) -> None:
    pads = rw.const_ints(node, 1, "pads")
    value = rw.const_input(node, 2, "constant value", plural=False)
    rw.drop_inputs(node, 1)
    set_attribute(node, "pads", pads)
    if value is not None and value.size:
        set_attribute(node, "value", float(value.reshape(-1)[0]))


@ADAPTERS.register(["Pad"], 18, constants=(1, 3), shapes=True)
def _pad_all_axes(node: ir.Node, rw: Rewriter) -> None:
    axes = rw.const_ints(node, 3, "axes")
    if axes is None:
        return
    pads = rw.const_ints(node, 1, "pads")
    rank = rw.rank(node.inputs[0])
    axes = rw.positive_axes(node, axes, rank)
    if rank is None:
        rw.refuse(node, f"it pads some axes only and its input rank is unknown; opset {rw.target} pads every axis")
    full = [0] * (2 * rank)
    for index, axis in enumerate(axes):
        full[axis], full[axis + rank] = pads[index], pads[index + len(axes)]
    rw.set_input(node, 1, rw.constant(node, np.array(full, dtype=np.int64), "pads"))
    rw.drop_inputs(node, 3)


@ADAPTERS.register(["Pad"], 19)
def _pad_no_wrap(node: ir.Node, rw: Rewriter) -> None:
    if node.attributes.get_string("mode", "constant") == "wrap":
        rw.refuse(node, "mode 'wrap' exists only from opset 19")


@ADAPTERS.register(["Clip"], 11, constants=(1, 2))
def _clip_attributes(node: ir.Node, rw: Rewriter) -> None:
    low = rw.const_input(node, 1, "minimum", plural=False)
    high = rw.const_input(node, 2, "maximum", plural=False)
    rw.drop_inputs(node, 1)
    if low is not None:
        set_attribute(node, "min", float(low.reshape(-1)[0]))
    if high is not None:
        set_attribute(node, "max", float(high.reshape(-1)[0]))


@ADAPTERS.register(["TopK"], 10, constants=(1,))
def _topk_attribute(node: ir.Node, rw: Rewriter) -> None:
    (k,) = rw.const_ints(node, 1, "k", plural=False)
    rw.drop_inputs(node, 1)
    set_attribute(node, "k", k)


@ADAPTERS.register(["Dropout"], 12, constants=(1, 2))
def _dropout_attributes(node: ir.Node, rw: Rewriter) -> None:
    ratio = rw.const_input(node, 1, "ratio", plural=False)
    training = rw.const_input(node, 2, "training mode", plural=False)
    if training is not None and bool(training.reshape(-1)[0]):
        rw.refuse(node, f"it runs in training mode, which Dropout at opset {rw.target} cannot express")
    node.attributes.pop("seed", None)
    rw.drop_inputs(node, 1)
    if ratio is not None:
        set_attribute(node, "ratio", float(ratio.reshape(-1)[0]))


@ADAPTERS.register(["Dropout"], 10)
def _dropout_mask_type(node: ir.Node, rw: Rewriter) -> None:
    rw.drop_outputs(node, 1, "its mask output is boolean; before opset 10 the mask has the data's type")


@ADAPTERS.register(["Upsample"], 9, constants=(1,))
def _upsample_scales_attribute(node: ir.Node, rw: Rewriter) -> None:
    scales = rw.const_input(node, 1, "scales")
    rw.drop_inputs(node, 1)
    set_attribute(node, "scales", [float(s) for s in scales.reshape(-1)])


# -- Resize --------------------------------------------------------------------------------------
@ADAPTERS.register(["Resize"], 19)
def _resize_no_symmetric(node: ir.Node, rw: Rewriter) -> None:
    if node.attributes.get_string("coordinate_transformation_mode") == "half_pixel_symmetric":
        rw.refuse(node, "coordinate_transformation_mode 'half_pixel_symmetric' exists only from opset 19")


@ADAPTERS.register(["Resize"], 18, constants=(1, 2, 3), shapes=True)
def _resize_every_axis(node: ir.Node, rw: Rewriter) -> None:
    rw.keep_default(node, "antialias", 0)
    rw.keep_default(node, "keep_aspect_ratio_policy", "stretch")
    axes = node.attributes.pop("axes", None)
    if axes is not None:
        _resize_listed_axes(node, list(axes.value), rw)


def _resize_listed_axes(node: ir.Node, axes: list[int], rw: Rewriter) -> None:
    """Spell roi, scales and sizes given for ``axes`` only for every axis (the others keep their size)."""
    dims = rw.dims(node.inputs[0])
    if dims is None:
        rw.refuse(node, f"it resizes the listed axes only and its input rank is unknown; opset {rw.target} takes "
                  "scales or sizes for every axis")
    axes = rw.positive_axes(node, axes, len(dims))
    roi = rw.const_input(node, 1, "roi", plural=False)
    if roi is not None and roi.size:
        full = np.concatenate([np.zeros(len(dims)), np.ones(len(dims))]).astype(roi.dtype)
        full[axes], full[[axis + len(dims) for axis in axes]] = roi[: len(axes)], roi[len(axes) :]
        rw.set_input(node, 1, rw.constant(node, full, "roi"))
    scales = rw.const_input(node, 2, "scales")
    if scales is not None and scales.size:
        full = np.ones(len(dims), dtype=scales.dtype)
        full[axes] = scales
        rw.set_input(node, 2, rw.constant(node, full, "scales"))
        return
    sizes = rw.const_ints(node, 3, "sizes")
    kept = [axis for axis in range(len(dims)) if axis not in axes]
    if sizes is None or any(dims[axis] is None for axis in kept):
        rw.refuse(node, f"it resizes the listed axes only and the sizes of the others are not static; opset "
                  f"{rw.target} takes sizes for every axis")
    full = list(dims)
    for axis, size in zip(axes, sizes, strict=True):
        full[axis] = size
    rw.set_input(node, 3, rw.constant(node, np.array(full, dtype=np.int64), "sizes"))


@ADAPTERS.register(["Resize"], 13)
def _resize_roi_and_scales_present(node: ir.Node, rw: Rewriter) -> None:
    for index, what in ((1, "roi"), (2, "scales")):
        if len(node.inputs) <= index or node.inputs[index] is None:
            rw.set_input(node, index, rw.constant(node, np.zeros(0, dtype=np.float32), what))


@ADAPTERS.register(["Resize"], 11, constants=(2, 3), shapes=True)
def _resize_scales_only(node: ir.Node, rw: Rewriter) -> None:
    mode = node.attributes.get_string("mode", "nearest")
    coordinates = node.attributes.get_string("coordinate_transformation_mode", "half_pixel")
    if mode not in ("nearest", "linear"):
        rw.refuse(node, f"mode '{mode}' exists only from opset 11")
    if coordinates != "asymmetric":
        rw.refuse(node, f"coordinate_transformation_mode '{coordinates}' exists only from opset 11 "
                  "(before, Resize maps coordinates as 'asymmetric')")
    rounding = node.attributes.get_string("nearest_mode", "round_prefer_floor")
    if mode == "nearest" and rounding != "floor":
        rw.refuse(node, f"nearest_mode '{rounding}' exists only from opset 11 (before, nearest rounds down)")
    rw.keep_default(node, "exclude_outside", 0)
    scales = _resize_scales(node, rw, mode)
    if isinstance(scales, np.ndarray):
        if mode == "nearest" and (scales < 1).any():
            rw.refuse(node, "it shrinks with mode 'nearest', whose rounding opset 10 does not define")
        scales = rw.constant(node, scales, "scales")
    rw.set_input(node, 1, scales)
    rw.drop_inputs(node, 2)
    for name in list(node.attributes):
        if name != "mode":
            node.attributes.pop(name)


def _resize_scales(node: ir.Node, rw: Rewriter, mode: str) -> np.ndarray | ir.Value:
    """Resize-10's scales: the constant scales, or the scales computed at run time ('linear' only), or
    constant sizes divided by the static input shape."""
    given = node.inputs[2] if len(node.inputs) > 2 else None
    scales = rw.array(given)
    if scales is not None and scales.size:
        return scales.astype(np.float32)
    if scales is None and given is not None:
        if mode == "nearest":
            rw.refuse(node, "its scales are computed at run time; with mode 'nearest' opset 10 rounds as opset 11's "
                      "'floor' only where they do not shrink, which cannot be known")
        return given
    sizes = rw.array(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] is not None else None
    dims = rw.dims(node.inputs[0])
    if sizes is None or dims is None or any(dim is None for dim in dims):
        rw.refuse(node, f"it resizes to sizes, which opset {rw.target} takes as scales only: that needs constant "
                  "sizes and a static input shape")
    sizes = [int(size) for size in sizes]
    scales = np.array(sizes, dtype=np.float32) / np.array(dims, dtype=np.float32)
    if (np.floor(np.array(dims, dtype=np.float32) * scales) != np.array(sizes)).any():
        rw.refuse(node, f"its sizes {sizes} are not exactly reached by float scales from the input shape {dims}")
    return scales


@ADAPTERS.register(["Resize"], 10, constants=(1,))
def _resize_to_upsample(node: ir.Node, rw: Rewriter) -> None:
    scales = rw.array(node.inputs[1])
    if scales is not None and (scales < 1).any():
        rw.refuse(node, f"it shrinks (scales {scales.tolist()}); before opset 10 there is only Upsample")
    node.op_type = "Upsample"  # Resize-10 is Upsample-9 under a new name


# -- control flow ------------------------------------------------------------------------------------
@ADAPTERS.register(["Loop"], 11)
def _loop_carries_a_value(node: ir.Node, rw: Rewriter) -> None:
    """Before opset 11 a Loop carries at least one value: one that carries none gets a dummy scalar."""
    if len(node.inputs) > 2:
        return
    body = node.attributes["body"].as_graph()
    carried = ir.Value(name=rw.fresh(f"{node.name or 'loop'}_carried"), type=ir.TensorType(ir.DataType.BOOL),
                       shape=ir.Shape([]))
    passed = rw.node("Identity", [carried], {}, node)
    body.inputs.insert(2, carried)
    body.append(passed)
    body.outputs.insert(1, passed.outputs[0])
    seed = rw.constant(node, np.array(False), "carried")
    loop = rw.node("Loop", [*node.inputs, seed], {"body": node.attributes.pop("body")}, node, len(node.outputs) + 1)
    name = node.name
    rw.replace(node, [loop], loop.outputs[1:])
    loop.name = name


# -- other attributes and inputs ------------------------------------------------------------------
@ADAPTERS.register(["BatchNormalization"], 14)
def _batch_norm_inference(node: ir.Node, rw: Rewriter) -> None:
    rw.keep_default(node, "training_mode", 0)
    rw.drop_outputs(node, 1, "its running mean and variance outputs exist in training mode only")


@ADAPTERS.register(["BatchNormalization"], 9)
def _batch_norm_spatial(node: ir.Node, rw: Rewriter) -> None:
    """Opset 7's 'spatial' attribute defaults to 1, which is what opset 9 always does."""


@ADAPTERS.register(["Reshape"], 14, constants=lambda node: (1,) if node.attributes.get_int("allowzero", 0) else ())
def _reshape_no_allowzero(node: ir.Node, rw: Rewriter) -> None:
    if node.attributes.get_int("allowzero", 0):
        shape = rw.const_ints(node, 1, "target shape", plural=False)
        if 0 in shape:
            rw.refuse(node, "allowzero=1 with a 0 in its shape keeps a zero-size dimension, which Reshape before "
                      "opset 14 reads as 'copy the input's dimension'")
    node.attributes.pop("allowzero", None)


@ADAPTERS.register(["Shape"], 15)
def _shape_whole(node: ir.Node, rw: Rewriter) -> None:
    start = node.attributes.get_int("start", 0)
    end = node.attributes.get_int("end")
    node.attributes.pop("start", None)
    node.attributes.pop("end", None)
    if start == 0 and end is None:
        return
    whole = rw.node("Shape", [node.inputs[0]], {}, node)
    bounds = [rw.constant(node, np.array([v], dtype=np.int64), what) for v, what in
              ((start, "start"), (2**63 - 1 if end is None else end, "end"), (0, "axis"))]
    part = rw.node("Slice", [whole.outputs[0], *bounds], {}, node)
    rw.replace(node, [whole, part], part.outputs)


_CONSTANT_LISTS = {
    "value_float": np.float32,
    "value_floats": np.float32,
    "value_int": np.int64,
    "value_ints": np.int64,
    "value_string": object,
    "value_strings": object,
}


@ADAPTERS.register(["Constant"], 12)
def _constant_tensor(node: ir.Node, rw: Rewriter) -> None:
    for name, dtype in _CONSTANT_LISTS.items():
        attr = node.attributes.pop(name, None)
        if attr is not None:
            node.attributes["value"] = ir.AttrTensor("value", ir.tensor(np.array(attr.value, dtype=dtype)))


@ADAPTERS.register(["Constant"], 11)
def _constant_dense(node: ir.Node, rw: Rewriter) -> None:
    if "sparse_value" in node.attributes:
        rw.refuse(node, "sparse constants exist only from opset 11")


@ADAPTERS.register(["Gemm"], 11)
def _gemm_with_bias(node: ir.Node, rw: Rewriter) -> None:
    if len(node.inputs) > 2 and node.inputs[2] is not None:
        return
    dtype = rw.dtype(node.inputs[0])
    if dtype is None:
        rw.refuse(node, f"it has no C input, which opset {rw.target} requires, and its type is unknown")
    rw.set_input(node, 2, rw.constant(node, np.zeros((), dtype=dtype.numpy()), "C"))


@ADAPTERS.register(["MaxPool"], 8)
def _maxpool_without_indices(node: ir.Node, rw: Rewriter) -> None:
    rw.keep_default(node, "storage_order", 0)
    rw.drop_outputs(node, 1, "its Indices output exists only from opset 8")


@ADAPTERS.register(["QuantizeLinear", "DequantizeLinear"], 13, shapes=True)
def _per_tensor_quantization(node: ir.Node, rw: Rewriter) -> None:
    dims = rw.dims(node.inputs[1])
    if dims is None or any(dim != 1 for dim in dims):
        rw.refuse(node, f"it quantizes per axis (or its scale's shape is unknown); opset {rw.target} quantizes "
                  "per tensor only")
    node.attributes.pop("axis", None)


@ADAPTERS.register(["ScatterElements", "ScatterND"], 18)
def _scatter_old_reductions(node: ir.Node, rw: Rewriter) -> None:
    reduction = node.attributes.get_string("reduction", "none")
    if reduction in ("max", "min"):
        rw.refuse(node, f"reduction '{reduction}' exists only from opset 18")


@ADAPTERS.register(["GridSample"], 20, shapes=True)
def _grid_sample_old_modes(node: ir.Node, rw: Rewriter) -> None:
    if rw.rank(node.inputs[0]) != 4:
        rw.refuse(node, f"GridSample samples 4-D inputs only at opset {rw.target} (its input rank is not 4)")
    mode = node.attributes.get_string("mode", "linear")
    set_attribute(node, "mode", {"linear": "bilinear", "cubic": "bicubic"}.get(mode, mode))


@ADAPTERS.register(["Mod"], 28)
def _mod_integer_floor(node: ir.Node, rw: Rewriter) -> None:
    dtype = rw.dtype(node.inputs[0])
    if node.attributes.get_int("fmod", 0) == 0 and (dtype is None or dtype.is_floating_point()):
        rw.refuse(node, "fmod=0 on floating-point (or unknown) types exists only from opset 28")


@ADAPTERS.register(["Max", "Min", "Mean", "Sum"], 8, shapes=True)
def _same_shapes(node: ir.Node, rw: Rewriter) -> None:
    shapes = [rw.dims(value) for value in node.inputs]
    if any(dims is None or None in dims for dims in shapes) or any(dims != shapes[0] for dims in shapes):
        rw.refuse(node, f"its inputs broadcast (or their shapes are unknown); opset {rw.target} needs equal shapes")


@ADAPTERS.register(["Pow"], 12)
def _pow_same_types(node: ir.Node, rw: Rewriter) -> None:
    base, exponent = rw.dtype(node.inputs[0]), rw.dtype(node.inputs[1])
    if base is None or exponent is None or base == exponent:
        return
    data = rw.array(node.inputs[1])
    if data is not None:
        rw.set_input(node, 1, rw.constant(node, data.astype(base.numpy()), "exponent"))
        return
    cast = rw.node("Cast", [node.inputs[1]], {"to": int(base)}, node)
    rw.insert_before(node, [cast])
    rw.set_input(node, 1, cast.outputs[0])
