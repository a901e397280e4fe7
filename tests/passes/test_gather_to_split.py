import warnings

import numpy as np
import onnx
import pytest
from helpers import assert_fires_often, make_model, op_types
from hypothesis import strategies as st
from onnx import TensorProto, helper

from optimizer.passapi import const_ints
from optimizer.testing import check_pass, pattern_model
from passes.gather_to_split import GatherToSplit


def gathers(shape, index_sets, *, axis=0, opset=13, combine=False):
    """x -> one Gather per entry of ``index_sets`` (an int: a scalar index); each is an output."""
    def pattern(op, x):
        outputs = [op.Gather(x, np.array(indices, dtype=np.int64), axis=axis) for indices in index_sets]
        return op.Add(outputs[0], outputs[1]) if combine else tuple(outputs)

    return pattern_model(pattern, {"x": shape}, opset=opset)


def split_sizes(result):
    [split] = [n for n in result.model.graph if n.op_type == "Split"]
    sizes = split.attributes.get_ints("split", None)
    return list(sizes) if sizes is not None else const_ints(split.inputs[1])


@pytest.mark.parametrize("opset", [9, 11, 13, 18])
def test_runs_covering_the_axis_become_a_split(opset):
    model = gathers([2, 5], [[0, 1], [2], [3, 4]], axis=1, opset=opset)
    result = check_pass(GatherToSplit, model, expect_changes=1)
    assert [t for t in op_types(result.model) if t != "Constant"] == ["Split"]
    assert split_sizes(result) == [2, 1, 2]
    assert [v.name for v in result.model.graph.outputs] == ["y0", "y1", "y2"]


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_scalar_indices_drop_the_axis_with_a_squeeze(opset):
    model = gathers([3, 4], [2, [0, 1]], opset=opset)  # out of order on purpose
    result = check_pass(GatherToSplit, model, expect_changes=1)
    assert [t for t in op_types(result.model) if t != "Constant"] == ["Split", "Squeeze"]
    assert split_sizes(result) == [2, 1]


def test_negative_indices_and_axis_are_normalised():
    model = gathers([2, 3, 4], [[-4, -3], -2, [3]], axis=-1)
    assert split_sizes(check_pass(GatherToSplit, model, expect_changes=1)) == [2, 1, 1]


def test_the_gathers_may_feed_other_nodes():
    result = check_pass(GatherToSplit, gathers([2, 3], [0, 1], combine=True), expect_changes=1)
    assert [t for t in op_types(result.model) if t != "Constant"] == ["Split", "Squeeze", "Squeeze", "Add"]


def test_a_single_gather_is_no_candidate():
    check_pass(GatherToSplit, gathers([3, 4], [[0, 1, 2]]), expect_changes=0)


@pytest.mark.parametrize(
    "index_sets, reason",
    [
        ([[0], [2]], "'gather1' leaves indices 1..1 out"),
        ([[0, 1], [2]], "the Gathers leave indices 3..3 of axis 0 out"),
        ([[0, 1], [1, 2, 3]], "'gather1' overlaps the run before it"),
        ([[0, 2], [1], [3]], "the indices of 'gather0' are not consecutive and increasing"),
        ([[[0, 1]], [2, 3]], "not a scalar or a 1-D integer tensor"),
        ([[1, 0], [2, 3]], "are not consecutive and increasing"),
    ],
)
def test_runs_that_do_not_partition_the_axis_are_refused(index_sets, reason):
    result = check_pass(GatherToSplit, gathers([4, 2], index_sets), expect_changes=0, expect_skips=1)
    assert reason in result.record.skips[0]["reason"]


def test_an_empty_run_is_refused():
    result = check_pass(GatherToSplit, gathers([2, 2], [[0, 1], []]), expect_changes=0, expect_skips=1)
    assert "'gather1' gathers no index" in result.record.skips[0]["reason"]


def test_a_negative_axis_of_unknown_rank_is_refused():
    """x comes from an If whose branches differ in rank, so its rank is unknown."""
    def branch(name, node, shape):
        output = helper.make_tensor_value_info(f"{name}_x", TensorProto.FLOAT, shape)
        return helper.make_graph([node], name, [], [output])

    then = branch("then", helper.make_node("Identity", ["a"], ["then_x"], name="then_id"), [2, 2])
    other = branch("else", helper.make_node("Reshape", ["a", "shape3"], ["else_x"], name="else_r"), [1, 2, 2])
    nodes = [
        helper.make_node("If", ["cond"], ["x"], then_branch=then, else_branch=other, name="if"),
        *(helper.make_node("Gather", ["x", f"i{k}"], [f"g{k}"], axis=-1, name=f"gather{k}") for k in (0, 1)),
        helper.make_node("Concat", ["g0", "g1"], ["c"], axis=0, name="concat"),
        helper.make_node("Flatten", ["c"], ["y"], axis=0, name="flatten"),
    ]
    initializers = [("shape3", np.array([1, 2, 2])), ("i0", np.array([0])), ("i1", np.array([1]))]
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    model = make_model(nodes, [cond, ("a", [2, 2])], [("y", [1, None])], initializers=initializers)
    result = check_pass(GatherToSplit, model, expect_changes=0, expect_skips=2)
    assert "a negative axis needs the rank, which is unknown" in result.record.skips[0]["reason"]


def test_non_constant_indices_are_refused():
    def pattern(op, x, i):
        return op.Gather(x, i), op.Gather(x, np.array([1, 2]))

    model = pattern_model(pattern, {"x": [3, 2], "i": ([1], "int64")})
    result = check_pass(GatherToSplit, model, expect_changes=0, expect_skips=1)
    assert "the indices of 'gather0' are not constant" in result.record.skips[0]["reason"]


def test_a_dynamic_dim_is_refused():
    result = check_pass(GatherToSplit, gathers(["n", 2], [0, 1]), expect_changes=0, expect_skips=1,
                        verify_shapes={"x": [2, 2]})
    assert "the dim of axis 0 is not static" in result.record.skips[0]["reason"]


def test_gathers_along_other_axes_are_separate_groups():
    def pattern(op, x):
        rows = [op.Gather(x, np.array(i), axis=0) for i in (0, 1)]
        cols = [op.Gather(x, np.array([0, 1, 2]), axis=1), op.Gather(x, np.array([2]), axis=1)]
        return (*rows, *cols)

    result = check_pass(GatherToSplit, pattern_model(pattern, {"x": [2, 3]}), expect_changes=1, expect_skips=1)
    assert "'gather3' overlaps the run before it" in result.record.skips[0]["reason"]


@pytest.fixture(scope="module")
def torch_gathers(tmp_path_factory):
    """x[0] + x[1] * x[2]: the exporter writes three scalar Gathers of x."""
    import torch

    class Model(torch.nn.Module):
        def forward(self, x):
            return x[0] + x[1] * x[2]

    folder = tmp_path_factory.mktemp("gather-to-split")
    paths = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for opset in (11, 13, 18):
            paths[opset] = folder / f"gathers{opset}.onnx"
            torch.onnx.export(Model(), (torch.randn(3, 4),), str(paths[opset]), opset_version=opset, dynamo=False)
    return paths


@pytest.mark.parametrize("opset", [11, 13, 18])
def test_torch_exported_gathers_become_a_split(torch_gathers, opset):
    assert op_types(onnx.load(str(torch_gathers[opset]))).count("Gather") == 3
    result = check_pass(GatherToSplit, torch_gathers[opset], expect_changes=1)
    assert [t for t in op_types(result.model) if t != "Constant"] == ["Split", *["Squeeze"] * 3, "Mul", "Add"]


@st.composite
def partitions(draw):
    """Gathers over a random partition of a random axis (scalar indices for some runs of one,
    negative spellings); now and then a run dropped (a gap) or repeated (an overlap)."""
    opset = draw(st.sampled_from([9, 11, 13, 18]))
    rank = draw(st.integers(1, 3))
    shape = draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank))
    axis = draw(st.integers(0, rank - 1))
    dim = shape[axis] = draw(st.integers(2, 6))
    cuts = sorted(draw(st.sets(st.integers(1, dim - 1), min_size=1, max_size=dim - 1)))
    runs = list(zip([0, *cuts], [*cuts, dim], strict=True))
    miss = draw(st.integers(0, 5))
    if miss == 0 and len(runs) > 2:
        runs.pop(draw(st.integers(0, len(runs) - 1)))
    elif miss == 1:
        runs.append(runs[0])
    order = draw(st.permutations(range(len(runs))))
    index_sets = []
    for start, stop in (runs[i] for i in order):
        indices = [i - dim if opset >= 11 and draw(st.booleans()) else i for i in range(start, stop)]
        index_sets.append(indices[0] if len(indices) == 1 and draw(st.booleans()) else indices)
    spelt = axis - rank if draw(st.booleans()) else axis
    return gathers(shape, index_sets, axis=spelt, opset=opset)


def test_property_partitions_keep_their_outputs_and_split_in_one_run(record_property):
    assert_fires_often(GatherToSplit, partitions(), examples=30, share=0.7, record_property=record_property)
