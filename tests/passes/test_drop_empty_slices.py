import warnings

import numpy as np
import onnx
import pytest
from helpers import assert_fires_often, make_model, op_types
from hypothesis import strategies as st
from onnx import helper

from optimizer.testing import check_pass, pattern_model
from passes.drop_empty_slices import DropEmptySlices

BIG = 2**63 - 1


def slice_op(op, x, start, end, axis, step=1, *, opset):
    if opset < 10:
        return op.Slice(x, starts=[start], ends=[end], axes=[axis])
    return op.Slice(x, np.array([start]), np.array([end]), np.array([axis]), np.array([step]))


def concat_of_slice(x_shape, y_shape, start, end, *, axis=1, step=1, opset=13, slice_axis=None):
    def pattern(op, x, z):
        return op.Concat(slice_op(op, x, start, end, axis if slice_axis is None else slice_axis, step, opset=opset), z,
                         axis=axis)

    return pattern_model(pattern, {"x": x_shape, "z": y_shape}, opset=opset)


@pytest.mark.parametrize("opset", [9, 10, 11, 13, 18])
def test_an_empty_slice_leaves_the_concat(opset):
    result = check_pass(DropEmptySlices, concat_of_slice([2, 4], [2, 3], 3, 3, opset=opset), expect_changes=1)
    assert op_types(result.model) == ["Concat"]
    assert [v.name for v in next(iter(result.model.graph)).inputs] == ["z"]


@pytest.mark.parametrize("start, end", [(3, 3), (-1, 1), (7, 9)])
def test_an_empty_slice_at_opset_9(start, end):
    """Built by hand: onnx infers no shape for an empty Slice-1, so the output is declared."""
    nodes = [
        helper.make_node("Slice", ["x"], ["s"], starts=[start], ends=[end], axes=[1], name="slice"),
        helper.make_node("Concat", ["s", "y"], ["out"], axis=1, name="concat"),
    ]
    model = make_model(nodes, [("x", [2, 4]), ("y", [2, 3])], [("out", [2, 3])], opset=9)
    assert op_types(check_pass(DropEmptySlices, model, expect_changes=1).model) == ["Concat"]


@pytest.mark.parametrize(
    "start, end, step",
    [(5, 9, 1), (-1, -3, 1), (1, 3, -1), (2, 2, -2), (-9, -7, 1), (0, -4, 1), (3, 5, -1)],
)
def test_static_dims_prove_emptiness(start, end, step):
    """Static dim 4: each of these picks nothing, as ONNX clamps."""
    model = concat_of_slice([2, 4], [2, 3], start, end, step=step)
    assert op_types(check_pass(DropEmptySlices, model, expect_changes=1).model) == ["Concat"]


@pytest.mark.parametrize("start, end, step", [(5, 2, 1), (-1, -3, 1), (1, 3, -1), (0, 0, 1), (7, 7, -1)])
def test_a_dynamic_dim_is_proof_when_the_bounds_agree_in_sign(start, end, step):
    model = concat_of_slice([2, "n"], [2, 3], start, end, step=step)
    assert op_types(check_pass(DropEmptySlices, model, expect_changes=1).model) == ["Concat"]


@pytest.mark.parametrize(
    "shape, start, end, step",
    [
        (["n"], 1, -1, 1),  # empty only for dims <= 2
        (["n"], -3, -2, -1),  # both negative, negative step: the start clamps to 0 and picks index 0
        ([4], 0, BIG, -1),  # INT_MAX on a negative step: the spec and onnxruntime disagree
        ([4], 1, 3, 1),  # not empty
    ],
)
def test_no_proof_no_change(shape, start, end, step):
    model = concat_of_slice([2, *shape], [2, 3], start, end, step=step)
    check_pass(DropEmptySlices, model, expect_changes=0, scopes=() if end == BIG else ("function", "if", "loop"))


def test_emptiness_along_another_axis_is_not_enough():
    """Concat(axis=1) of x[0:0] ([0, 3]) and y ([0, 4]): the Slice still adds 3 to axis 1."""
    model = concat_of_slice([2, 3], [0, 4], 0, 0, slice_axis=0)
    check_pass(DropEmptySlices, model, expect_changes=0)


def test_a_slice_of_an_axis_that_is_already_empty():
    model = concat_of_slice([2, 0], [2, 3], 0, BIG, slice_axis=0)
    assert op_types(check_pass(DropEmptySlices, model, expect_changes=1).model) == ["Concat"]


def test_negative_concat_axis():
    def pattern(op, x, z):
        return op.Concat(z, slice_op(op, x, 2, 1, -1, opset=13), z, axis=-1)

    result = check_pass(DropEmptySlices, pattern_model(pattern, {"x": [2, 4], "z": [2, 3]}), expect_changes=1)
    assert [v.name for v in next(iter(result.model.graph)).inputs] == ["z", "z"]


def test_a_shared_empty_slice_is_refused():
    def pattern(op, x, z):
        empty = slice_op(op, x, 3, 3, 1, opset=13)
        return op.Concat(empty, z, axis=1), op.Relu(empty)

    result = check_pass(DropEmptySlices, pattern_model(pattern, {"x": [2, 4], "z": [2, 3]}), expect_changes=0,
                        expect_skips=1)
    assert "has another consumer or is a graph output" in result.record.skips[0]["reason"]


def test_a_concat_of_nothing_but_empty_slices_is_refused():
    def pattern(op, x):
        return op.Concat(slice_op(op, x, 3, 3, 1, opset=13), slice_op(op, x, 4, 1, 1, opset=13), axis=1)

    result = check_pass(DropEmptySlices, pattern_model(pattern, {"x": [2, 4]}), expect_changes=0, expect_skips=1)
    assert "it would be left with none" in result.record.skips[0]["reason"]


def test_non_constant_parameters_are_no_proof():
    def pattern(op, x, z, start):
        return op.Concat(op.Slice(x, start, np.array([3]), np.array([1])), z, axis=1)

    model = pattern_model(pattern, {"x": [2, 4], "z": [2, 3], "start": ([1], "int64")})
    check_pass(DropEmptySlices, model, expect_changes=0)


@pytest.fixture(scope="module")
def torch_empty(tmp_path_factory):
    """torch.cat([x[:, 3:3], y], 1): the exporter keeps the empty Slice."""
    import torch

    class Model(torch.nn.Module):
        def forward(self, x, y):
            return torch.cat([x[:, 3:3], y], 1)

    folder = tmp_path_factory.mktemp("drop-empty-slices")
    paths = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for opset in (9, 13):
            paths[opset] = folder / f"empty{opset}.onnx"
            torch.onnx.export(Model(), (torch.randn(2, 4), torch.randn(2, 3)), str(paths[opset]), opset_version=opset,
                              dynamo=False)
    return paths


@pytest.mark.parametrize("opset", [9, 13])
def test_torch_exported_empty_slice_is_dropped(torch_empty, opset):
    assert "Slice" in op_types(onnx.load(str(torch_empty[opset])))
    result = check_pass(DropEmptySlices, torch_empty[opset], expect_changes=1)
    assert op_types(result.model) == ["Concat"]


@st.composite
def concats(draw):
    """A Concat over plain inputs and Slices along its axis, at least one of them empty by
    construction, with static or dynamic dims along the axis."""
    opset = draw(st.sampled_from([10, 11, 13, 18]))  # opset 9: see test_an_empty_slice_at_opset_9
    rank = draw(st.integers(1, 3))
    axis = draw(st.integers(0, rank - 1))
    shape = draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank))
    others = draw(st.lists(st.sampled_from(["empty", "input", "slice"]), min_size=1, max_size=3))
    pieces = draw(st.permutations(["empty", "input", *others]))
    inputs, specs = {}, []
    for index, piece in enumerate(pieces):
        dims = list(shape)
        dims[axis] = f"n{index}" if opset >= 10 and draw(st.booleans()) else draw(st.integers(0, 5))
        inputs[f"x{index}"] = dims
        step = 1 if opset < 10 else draw(st.sampled_from([-2, -1, 1, 2]))
        if piece == "empty":
            start = draw(st.integers(0, 6))
            end = start - draw(st.integers(0, 3)) if step > 0 else start + draw(st.integers(0, 3))
            if step > 0 and draw(st.booleans()):
                start, end = start - 7, end - 7  # both negative
        else:
            start, end = draw(st.integers(-6, 6)), draw(st.integers(-6, 6))
        spelt = axis - rank if opset >= 11 and draw(st.booleans()) else axis
        specs.append((piece, start, end, spelt, step))

    def pattern(op, *values):
        parts = [value if piece == "input" else slice_op(op, value, start, end, spelt, step, opset=opset)
                 for value, (piece, start, end, spelt, step) in zip(values, specs, strict=True)]
        return op.Concat(*parts, axis=axis - rank if opset >= 11 and draw(st.booleans()) else axis)

    return pattern_model(pattern, inputs, opset=opset)


def test_property_concats_of_slices_keep_their_outputs(record_property):
    assert_fires_often(DropEmptySlices, concats(), examples=30, share=0.7, record_property=record_property)
