import warnings

import numpy as np
import onnx
import pytest
from helpers import assert_fires_often, make_model, op_types
from hypothesis import reject
from hypothesis import strategies as st
from onnx import TensorProto, helper

from optimizer.passapi import const_ints
from optimizer.testing import check_pass, pattern_model
from passes.merge_slices import MergeSlices

BIG = 2**63 - 1


def slice_op(op, x, starts, ends, axes=None, steps=None, *, opset):
    """A Slice in the form of ``opset``: attributes below 10 (no steps), constant inputs from 10."""
    if opset < 10:
        assert steps is None or set(steps) == {1}
        return op.Slice(x, starts=starts, ends=ends, **({} if axes is None else {"axes": axes}))
    extra = [None if axes is None else np.array(axes)] + ([] if steps is None else [np.array(steps)])
    if extra == [None]:
        extra = []
    return op.Slice(x, np.array(starts), np.array(ends), *extra)


def two_slices(shape, first, second, *, opset=13, dtype="float32"):
    def pattern(op, x):
        return slice_op(op, slice_op(op, x, *first, opset=opset), *second, opset=opset)

    return pattern_model(pattern, {"x": (shape, dtype)}, opset=opset)


def merged(result):
    [node] = [n for n in result.model.graph if n.op_type == "Slice"]
    if node.attributes.get_ints("starts", None) is not None:
        return [list(node.attributes.get_ints(k)) for k in ("starts", "ends", "axes")]
    return [const_ints(value) for value in node.inputs[1:]]


@pytest.mark.parametrize("opset", [9, 10, 11, 13, 18])
def test_slices_on_different_axes_merge(opset):
    model = two_slices([2, 4, 5], ([1], [BIG], [1]), ([2], [4], [2]), opset=opset)
    result = check_pass(MergeSlices, model, expect_changes=1)
    assert merged(result)[:3] == [[1, 2], [BIG, 4], [1, 2]]
    assert op_types(result.model).count("Slice") == 1


def test_steps_and_default_axes_are_kept():
    model = two_slices([4, 6], ([3], [0], None, [-1]), ([5], [0], [1], [-2]))  # axes default to [0]
    assert merged(check_pass(MergeSlices, model, expect_changes=1)) == [[3, 5], [0, 0], [0, 1], [-1, -2]]


def test_negative_axes_are_counted_from_the_rank():
    model = two_slices([2, 4, 5], ([0], [1], [-3]), ([1], [3], [-1]), opset=11)
    assert merged(check_pass(MergeSlices, model, expect_changes=1))[2] == [0, 2]


@pytest.mark.parametrize(
    "first, second, expected",
    [
        (([1], [BIG], [0], [1]), ([2], [BIG], [0], [1]), [[3], [7], [0], [1]]),  # x[1:][2:] = x[3:7]
        (([-5], [-1], [0], [1]), ([1], [2], [0], [1]), [[3], [4], [0], [1]]),
        (([0], [7], [0], [2]), ([1], [BIG], [0], [2]), [[2], [7], [0], [4]]),  # x[::2][1::2] = x[2::4]
        (([6], [-BIG], [0], [-1]), ([1], [-BIG], [0], [-2]), [[5], [6], [0], [1]]),  # one index left
        (([0], [BIG], [0], [1]), ([-1], [-BIG], [0], [-1]), [[6], [-8], [0], [-1]]),  # down to index 0
        (([-1], [-BIG], [0], [-1]), ([0], [BIG], [0], [1]), [[6], [-8], [0], [-1]]),  # x[::-1][:] = x[::-1]
        (([2], [5], [0], [1]), ([3], [BIG], [0], [1]), [[0], [0], [0], [1]]),  # empty
        (([1], [6], [0], [2]), ([-1], [-BIG], [0], [-1]), [[5], [0], [0], [-2]]),  # x[1:6:2][::-1]
        (([10], [20], [0], [1]), ([0], [1], [0], [1]), [[0], [0], [0], [1]]),  # clamped away
    ],
)
def test_one_axis_twice_composes_exactly_with_a_static_dim(first, second, expected):
    result = check_pass(MergeSlices, two_slices([7, 3], first, second), expect_changes=1)
    assert merged(result) == expected


def test_an_end_of_int_max_on_a_negative_step_is_not_composed():
    """The spec clamps that end to dim - 1 (nothing picked), onnxruntime reads it as "to index 0"."""
    model = two_slices([7, 3], ([0], [BIG], [0], [1]), ([-2], [BIG], [0], [-1]))
    # onnxruntime refuses to run it nested: the output shape onnx infers is not the one it computes
    result = check_pass(MergeSlices, model, expect_changes=0, expect_skips=1, scopes=())
    assert "means index 0 to onnxruntime but dim - 1 to the ONNX spec" in result.record.skips[0]["reason"]


def test_one_axis_twice_at_opset_9():
    model = two_slices([7, 3], ([1], [BIG], [0]), ([-3], [BIG], [0]), opset=9)
    assert merged(check_pass(MergeSlices, model, expect_changes=1)) == [[4], [7], [0]]


def test_one_axis_twice_with_a_dynamic_dim_is_refused():
    model = two_slices(["n", 3], ([1], [BIG], [0]), ([1], [BIG], [0]))
    result = check_pass(MergeSlices, model, expect_changes=0, expect_skips=1)
    assert "both Slices cut axis 0, whose dim is not static" in result.record.skips[0]["reason"]


def test_a_dynamic_dim_elsewhere_does_not_matter():
    check_pass(MergeSlices, two_slices(["n", 4], ([1], [BIG], [1]), ([0], [1], [0])), expect_changes=1)


def test_non_constant_parameters_are_refused():
    def pattern(op, x, start):
        return slice_op(op, op.Slice(x, start, np.array([BIG]), np.array([1])), [1], [2], [0], opset=13)

    model = pattern_model(pattern, {"x": [3, 4], "start": ([1], "int64")})
    result = check_pass(MergeSlices, model, expect_changes=0, expect_skips=1)
    assert "the starts or ends of 'slice0' are not constant" in result.record.skips[0]["reason"]


def test_non_constant_axes_are_refused():
    def pattern(op, x):
        zero = op.Sub(op.Shape(x), op.Shape(x))  # [0, 0] at run time, but no constant
        axes = op.Slice(zero, np.array([0]), np.array([1]))
        return slice_op(op, op.Slice(x, np.array([1]), np.array([3]), axes), [0], [1], [1], opset=13)

    result = check_pass(MergeSlices, pattern_model(pattern, {"x": [3, 4]}), expect_changes=0, expect_skips=1)
    assert "the axes of 'slice4' are not constant" in result.record.skips[0]["reason"]


def test_a_shared_inner_slice_is_refused():
    def pattern(op, x):
        inner = slice_op(op, x, [1], [3], [0], opset=13)
        return slice_op(op, inner, [0], [2], [1], opset=13), op.Relu(inner)

    result = check_pass(MergeSlices, pattern_model(pattern, {"x": [3, 4]}), expect_changes=0, expect_skips=1)
    assert "has another consumer or is a graph output" in result.record.skips[0]["reason"]


def test_a_negative_axis_of_unknown_rank_is_refused():
    """x comes from an If whose branches differ in rank, so its rank is unknown."""
    def branch(name, node, shape):
        output = helper.make_tensor_value_info(f"{name}_x", TensorProto.FLOAT, shape)
        return helper.make_graph([node], name, [], [output])

    then = branch("then", helper.make_node("Identity", ["a"], ["then_x"], name="then_id"), [3, 4])
    other = branch("else", helper.make_node("Reshape", ["a", "shape3"], ["else_x"], name="else_r"), [1, 3, 4])
    nodes = [
        helper.make_node("If", ["cond"], ["x"], then_branch=then, else_branch=other, name="if"),
        helper.make_node("Slice", ["x", "s1", "e1", "a1"], ["t"], name="inner"),
        helper.make_node("Slice", ["t", "s1", "e1", "a2"], ["u"], name="outer"),
        helper.make_node("Flatten", ["u"], ["y"], axis=0, name="flatten"),
    ]
    ints = {"shape3": [1, 3, 4], "s1": [1], "e1": [3], "a1": [-1], "a2": [-2]}
    model = make_model(nodes, [helper.make_tensor_value_info("cond", TensorProto.BOOL, []), ("a", [3, 4])],
                       [("y", [1, None])], initializers=[(k, np.array(v, dtype=np.int64)) for k, v in ints.items()])
    result = check_pass(MergeSlices, model, expect_changes=0, expect_skips=1)
    assert "a negative axis needs the rank, which is unknown" in result.record.skips[0]["reason"]


def test_parameters_shared_by_both_slices_are_dropped_once():
    def pattern(op, x):
        one = op.Constant(value=onnx.numpy_helper.from_array(np.array([1])))
        return op.Slice(op.Slice(x, one, np.array([BIG]), one), one, np.array([BIG]), np.array([0]))

    result = check_pass(MergeSlices, pattern_model(pattern, {"x": [3, 4]}), expect_changes=1)
    assert op_types(result.model) == ["Constant"] * 4 + ["Slice"]


def test_a_chain_merges_in_one_run():
    def pattern(op, x):
        for axis in (0, 1, 0):
            x = slice_op(op, x, [1], [BIG], [axis], opset=13)
        return x

    result = check_pass(MergeSlices, pattern_model(pattern, {"x": [5, 4]}), expect_changes=2)
    assert merged(result) == [[2, 1], [5, BIG], [0, 1], [1, 1]]


@pytest.fixture(scope="module")
def torch_slices(tmp_path_factory):
    """x[:, 1:][:, :, 2:] at opsets 9 and 13: two Slices on different axes."""
    import torch

    class Model(torch.nn.Module):
        def forward(self, x):
            return x[:, 1:][:, :, 2:]

    folder = tmp_path_factory.mktemp("merge-slices")
    paths = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for opset in (9, 13):
            paths[opset] = folder / f"slices{opset}.onnx"
            torch.onnx.export(Model(), (torch.randn(2, 4, 5),), str(paths[opset]), opset_version=opset, dynamo=False)
    return paths


@pytest.mark.parametrize("opset", [9, 13])
def test_torch_exported_slices_merge(torch_slices, opset):
    assert op_types(onnx.load(str(torch_slices[opset]))).count("Slice") == 2
    result = check_pass(MergeSlices, torch_slices[opset], expect_changes=1)
    assert op_types(result.model) == (["Slice"] if opset < 10 else ["Constant"] * 4 + ["Slice"])


@st.composite
def slice_chains(draw):
    """Two or three Slices with random axes, starts, ends ("to the end" spelt as the spec
    recommends: INT_MAX forward, -INT_MAX backward) and steps; now and then a dynamic dim
    (from opset 10: onnx cannot infer Slice-1 of a dynamic dim, and a graph output needs a shape)."""
    opset = draw(st.sampled_from([9, 11, 13]))
    rank = draw(st.integers(1, 3))
    shape = draw(st.lists(st.integers(1, 6), min_size=rank, max_size=rank))
    if opset >= 10 and draw(st.integers(0, 3)) == 0:
        shape[draw(st.integers(0, rank - 1))] = "n"
    bound = st.sampled_from([*range(-8, 9), BIG, -BIG])
    chain = []
    for _ in range(draw(st.integers(2, 3))):
        axes = draw(st.lists(st.integers(0, rank - 1), min_size=1, max_size=rank, unique=True))
        steps = [1] * len(axes) if opset < 10 else [draw(st.sampled_from([-3, -2, -1, 1, 2, 3])) for _ in axes]
        spelt = [a - rank if opset >= 11 and draw(st.booleans()) else a for a in axes]
        ends = [draw(st.sampled_from([*range(-8, 9), BIG if step > 0 else -BIG])) for step in steps]
        chain.append(([draw(bound) for _ in axes], ends, spelt, steps))

    def pattern(op, x):
        for params in chain:
            x = slice_op(op, x, *params, opset=opset)
        return x

    try:
        return pattern_model(pattern, {"x": shape}, opset=opset)
    except onnx.checker.ValidationError:  # onnx infers no shape for some Slice-1 chains: not a model
        reject()


def test_property_slice_chains_keep_their_outputs_and_merge_in_one_run(record_property):
    assert_fires_often(MergeSlices, slice_chains(), examples=40, share=0.7, record_property=record_property)
