import warnings

import onnx
import pytest
from helpers import assert_fires_often, make_model, op_types
from hypothesis import strategies as st
from onnx import TensorProto, helper

from optimizer.testing import check_pass, pattern_model
from passes.merge_concats import MergeConcats


def concat_inputs(result):
    [node] = [n for n in result.model.graph if n.op_type == "Concat"]
    return [value.name for value in node.inputs]


@pytest.mark.parametrize("opset", [11, 13, 18])
@pytest.mark.parametrize("position", [0, 1, 2])
def test_inner_concat_at_any_position_is_flattened(opset, position):
    def pattern(op, a, b, c, d):
        others = [c, d]
        others.insert(position, op.Concat(a, b, axis=1))
        return op.Concat(*others, axis=1)

    model = pattern_model(pattern, {name: [2, 3] for name in "abcd"}, opset=opset)
    result = check_pass(MergeConcats, model, expect_changes=1)
    expected = ["c", "d"]
    expected[position:position] = ["a", "b"]
    assert concat_inputs(result) == expected


def test_a_deep_nest_is_one_change():
    def pattern(op, a, b, c, d, e):
        left = op.Concat(op.Concat(a, b, axis=0), c, axis=0)
        return op.Concat(left, op.Concat(d, op.Concat(e, a, axis=0), axis=0), axis=0)

    model = pattern_model(pattern, {name: [1, 2] for name in "abcde"})
    result = check_pass(MergeConcats, model, expect_changes=1)
    assert concat_inputs(result) == ["a", "b", "c", "d", "e", "a"]


def test_an_inner_concat_read_twice_is_flattened_twice():
    model = pattern_model(lambda op, a, b: op.Concat(*[op.Concat(a, b, axis=0)] * 2, axis=0), {"a": [1], "b": [2]})
    assert concat_inputs(check_pass(MergeConcats, model, expect_changes=1)) == ["a", "b", "a", "b"]


def test_negative_and_positive_axes_agree_with_the_rank():
    model = pattern_model(lambda op, a, b, c: op.Concat(op.Concat(a, b, axis=-1), c, axis=2),
                          {n: [1, 2, 3] for n in "abc"})
    assert concat_inputs(check_pass(MergeConcats, model, expect_changes=1)) == ["a", "b", "c"]


def unknown_rank_model(inner_axis):
    """Concat(Concat(a, b), c) of If outputs whose branches differ in rank (2 or 3), so the rank is unknown."""
    def branch(name, nodes, rank):
        shape = [1, 2, 2][-rank:]
        outputs = [helper.make_tensor_value_info(f"{name}_{v}", TensorProto.FLOAT, shape) for v in "abc"]
        return helper.make_graph(nodes, name, [], outputs)

    then = branch("then", [helper.make_node("Identity", [v], [f"then_{v}"], name=f"then_{v}") for v in "abc"], 2)
    reshapes = [helper.make_node("Reshape", [v, "shape3"], [f"else_{v}"], name=f"else_{v}") for v in "abc"]
    other = branch("else", reshapes, 3)
    nodes = [
        helper.make_node("If", ["cond"], ["p", "q", "r"], then_branch=then, else_branch=other, name="if"),
        helper.make_node("Concat", ["p", "q"], ["t"], axis=inner_axis, name="inner"),
        helper.make_node("Concat", ["t", "r"], ["u"], axis=1, name="outer"),
        helper.make_node("Flatten", ["u"], ["y"], axis=0, name="flatten"),  # a graph output needs a rank
    ]
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, None])
    return make_model(nodes, [cond, *((v, [2, 2]) for v in "abc")], [out], initializers=[("shape3", [1, 2, 2])])


@pytest.mark.parametrize("inner_axis, fires", [(-1, False), (1, True)])
def test_unknown_rank_refuses_only_where_it_is_needed(inner_axis, fires):
    result = check_pass(MergeConcats, unknown_rank_model(inner_axis), expect_changes=int(fires),
                        expect_skips=int(not fires))
    if not fires:
        assert "can only be compared with the rank, unknown" in result.record.skips[0]["reason"]


def test_different_axes_are_refused():
    model = pattern_model(lambda op, a, b, c: op.Concat(op.Concat(a, b, axis=0), c, axis=1),
                          {"a": [2, 2], "b": [2, 2], "c": [4, 2]})
    result = check_pass(MergeConcats, model, expect_changes=0, expect_skips=1)
    assert "the inner Concat joins axis 0, the outer axis 1 (rank 2)" in result.record.skips[0]["reason"]


def test_a_shared_or_exposed_inner_concat_is_refused():
    def shared(op, a, b, c):
        inner = op.Concat(a, b, axis=0)
        return op.Concat(inner, c, axis=0), op.Relu(inner)

    def exposed(op, a, b, c):
        inner = op.Concat(a, b, axis=0)
        return op.Concat(inner, c, axis=0), inner

    for pattern in (shared, exposed):
        model = pattern_model(pattern, {n: [2] for n in "abc"})
        result = check_pass(MergeConcats, model, expect_changes=0, expect_skips=1)
        assert "has another consumer or is a graph output" in result.record.skips[0]["reason"]


def test_a_refused_inner_concat_still_flattens_its_own_nest():
    def pattern(op, a, b, c):
        inner = op.Concat(op.Concat(a, b, axis=0), c, axis=0)
        return op.Concat(inner, a, axis=0), inner

    result = check_pass(MergeConcats, pattern_model(pattern, {n: [2] for n in "abc"}), expect_changes=1, expect_skips=1)
    assert op_types(result.model) == ["Concat", "Concat"]


def test_a_concat_across_scopes_is_refused():
    branch = helper.make_graph(
        [helper.make_node("Concat", ["t", "c"], ["by"], axis=0, name="b_outer")],
        "then", [], [helper.make_tensor_value_info("by", TensorProto.FLOAT, [3])],
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["ey"], name="e_id")],
        "else", [], [helper.make_tensor_value_info("ey", TensorProto.FLOAT, [1])],
    )
    nodes = [
        helper.make_node("Concat", ["a", "b"], ["t"], axis=0, name="inner"),
        helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=other, name="if"),
    ]
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])
    model = make_model(nodes, [cond, ("a", [1]), ("b", [1]), ("c", [1])], [out])
    result = check_pass(MergeConcats, model, expect_changes=0, expect_skips=1, scopes=())
    assert "the pattern spans scopes" in result.record.skips[0]["reason"]


@pytest.fixture(scope="module")
def torch_concats(tmp_path_factory):
    """torch.cat(c, torch.cat([a, b], -1), dim=2): the exporter keeps both Concats (axes -1 and 2)."""
    import torch

    class Model(torch.nn.Module):
        def forward(self, a, b, c):
            return torch.cat([c, torch.cat([a, b], -1)], 2)

    path = tmp_path_factory.mktemp("merge-concats") / "concats.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Model(), tuple(torch.randn(1, 2, 3) for _ in range(3)), str(path), opset_version=13,
                          dynamo=False, input_names=["a", "b", "c"])
    return path


def test_torch_exported_concats_merge(torch_concats):
    assert op_types(onnx.load(str(torch_concats))) == ["Concat", "Concat"]
    result = check_pass(MergeConcats, torch_concats, expect_changes=1)
    assert concat_inputs(result) == ["c", "a", "b"]


@st.composite
def nests(draw):
    """A random tree of Concats on one axis (spelt + or -) over inputs of a random shape; with
    ``mixed``, some leaves are Concats on another axis (near misses, refused)."""
    rank = draw(st.integers(1, 4))
    axis = draw(st.integers(0, rank - 1))
    shape = draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank))
    mixed = rank > 1 and draw(st.booleans())
    other = (axis + 1) % rank
    halves = list(shape)
    if mixed:
        shape[other], halves[other] = 2, 1
    leaves = draw(st.integers(3, 7))

    def spelt(chosen):
        return chosen - rank if draw(st.booleans()) else chosen

    def build(op, values):
        if len(values) == 1:
            return values[0]
        cut = draw(st.integers(1, len(values) - 1))
        return op.Concat(build(op, values[:cut]), build(op, values[cut:]), axis=spelt(axis))

    def pattern(op, *inputs):
        full, half = inputs[:3], inputs[3:]
        values = []
        for _ in range(leaves):
            if mixed and draw(st.booleans()):
                values.append(op.Concat(half[0], half[draw(st.integers(0, 1))], axis=spelt(other)))
            else:
                values.append(full[draw(st.integers(0, 2))])
        return build(op, values)

    inputs = {**{f"x{i}": shape for i in range(3)}, **({"h0": halves, "h1": halves} if mixed else {})}
    return pattern_model(pattern, inputs, opset=draw(st.sampled_from([11, 13, 18])))


def test_property_nests_keep_their_outputs_and_collapse_in_one_run(record_property):
    assert_fires_often(MergeConcats, nests(), examples=25, share=0.8, record_property=record_property)
