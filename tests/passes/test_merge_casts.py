import warnings

import onnx
import pytest
from helpers import assert_fires_often, make_model, op_types
from hypothesis import strategies as st
from onnx import TensorProto, helper

from optimizer.testing import ANY, check_pass, pattern_model
from passes.merge_casts import MergeCasts

T = TensorProto
NUMPY = {T.FLOAT: "float32", T.FLOAT16: "float16", T.DOUBLE: "float64", T.INT32: "int32", T.INT64: "int64",
         T.INT8: "int8", T.UINT8: "uint8", T.INT16: "int16", T.BOOL: "bool"}


def chain(source, *targets, opset=13, shape=(2, 3)):
    """x (of type ``source``) -> Cast(targets[0]) -> Cast(targets[1]) -> ... -> y."""
    def pattern(op, x):
        for to in targets:
            x = op.Cast(x, to=to)
        return x

    return pattern_model(pattern, {"x": (list(shape), NUMPY[source])}, opset=opset)


def casts(result):
    return [T.DataType.Name(n.attributes.get_int("to")) for n in result.model.graph if n.op_type == "Cast"]


def test_a_cast_to_the_own_type_is_removed():
    model = pattern_model(lambda op, x: op.Relu(op.Cast(x, to=T.FLOAT)), {"x": [2]})
    result = check_pass(MergeCasts, model, expect_changes=1)
    assert op_types(result.model) == ["Relu"]


def test_a_cast_to_the_own_type_at_a_graph_output_becomes_identity():
    result = check_pass(MergeCasts, chain(T.FLOAT, T.FLOAT), expect_changes=1)
    assert op_types(result.model) == ["Identity"]


def test_an_unknown_input_type_is_refused():
    model = pattern_model(lambda op, x: op.Cast(op.Relu(x), to=T.FLOAT), {"x": [2]})
    result = check_pass(MergeCasts, model, expect_changes=0, expect_skips=1)
    assert "the element type of 'relu0' is unknown" in result.record.skips[0]["reason"]


@pytest.mark.parametrize("opset", [9, 13, 19])
@pytest.mark.parametrize(
    "source, middle, target, left",
    [
        (T.INT32, T.INT64, T.FLOAT, ["FLOAT"]),
        (T.BOOL, T.FLOAT16, T.INT64, ["INT64"]),
        (T.UINT8, T.FLOAT16, T.DOUBLE, ["DOUBLE"]),
        (T.INT16, T.FLOAT, T.BOOL, ["BOOL"]),
        (T.FLOAT16, T.FLOAT, T.FLOAT16, []),  # merged, then a Cast to its own type: Identity
        (T.INT8, T.INT32, T.INT16, ["INT16"]),
        (T.FLOAT, T.DOUBLE, T.FLOAT16, ["FLOAT16"]),
    ],
)
def test_exact_chains_merge(opset, source, middle, target, left):
    result = check_pass(MergeCasts, chain(source, middle, target, opset=opset), expect_changes=1)
    assert casts(result) == left


@pytest.mark.parametrize(
    "source, middle, target, reason",
    [
        (T.FLOAT, T.FLOAT16, T.FLOAT, "FLOAT16 cannot hold every FLOAT value"),
        (T.INT64, T.INT32, T.INT64, "INT32 cannot hold every INT64 value"),
        (T.FLOAT, T.INT32, T.BOOL, "INT32 cannot hold every FLOAT value"),
        (T.INT32, T.FLOAT, T.INT64, "FLOAT cannot hold every INT32 value"),
        (T.FLOAT16, T.FLOAT, T.INT32, "a cast to INT32 that does not hold every FLOAT16 value"),
        (T.INT32, T.INT64, T.INT16, "a cast to INT16 that does not hold every INT32 value"),
        (T.FLOAT, T.DOUBLE, T.STRING, "only bool, integer and float16"),
    ],
)
def test_inexact_chains_are_refused(source, middle, target, reason):
    model = chain(source, middle, target)
    if target == T.STRING:  # onnxruntime compares no strings: end in a numeric tensor
        model = pattern_model(lambda op, x: op.Cast(op.Cast(op.Cast(x, to=T.DOUBLE), to=T.STRING), to=T.FLOAT),
                              {"x": [2]})
    result = check_pass(MergeCasts, model, expect_changes=0, expect_skips=ANY)
    assert any(reason in skip["reason"] for skip in result.record.skips)


def test_a_chain_collapses_in_one_run():
    result = check_pass(MergeCasts, chain(T.INT8, T.INT16, T.INT32, T.INT64, T.FLOAT), expect_changes=3)
    assert casts(result) == ["FLOAT"]
    assert next(iter(result.model.graph)).inputs[0].name == "x"


def test_a_shared_inner_cast_stays_for_its_other_users():
    def pattern(op, x):
        wide = op.Cast(x, to=T.INT64)
        return op.Cast(wide, to=T.FLOAT), op.Neg(wide)

    result = check_pass(MergeCasts, pattern_model(pattern, {"x": ([3], "int32")}), expect_changes=1)
    assert casts(result) == ["INT64", "FLOAT"]
    assert [n.inputs[0].name for n in result.model.graph if n.op_type == "Cast"] == ["x", "x"]


def test_sibling_casts_become_one():
    def pattern(op, x):
        return op.Add(op.Cast(x, to=T.INT32), op.Mul(op.Cast(x, to=T.INT32), op.Cast(x, to=T.INT32)))

    result = check_pass(MergeCasts, pattern_model(pattern, {"x": [4]}), expect_changes=2)
    assert casts(result) == ["INT32"]


def test_a_sibling_at_a_graph_output_is_refused():
    model = pattern_model(lambda op, x: (op.Neg(op.Cast(x, to=T.INT32)), op.Cast(x, to=T.INT32)), {"x": [4]})
    result = check_pass(MergeCasts, model, expect_changes=0, expect_skips=1)
    assert "its output is a graph output" in result.record.skips[0]["reason"]


def test_sibling_casts_to_other_types_stay():
    model = pattern_model(lambda op, x: (op.Cast(x, to=T.INT32), op.Cast(x, to=T.INT64)), {"x": [4]})
    check_pass(MergeCasts, model, expect_changes=0)


def test_a_chain_across_scopes_is_refused():
    branch = helper.make_graph(
        [helper.make_node("Cast", ["wide"], ["by"], to=T.FLOAT, name="b_cast")],
        "then", [], [helper.make_tensor_value_info("by", T.FLOAT, [2])],
    )
    other = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["ey"], to=T.FLOAT, name="e_cast")],
        "else", [], [helper.make_tensor_value_info("ey", T.FLOAT, [2])],
    )
    nodes = [
        helper.make_node("Cast", ["x"], ["wide"], to=T.INT64, name="inner"),
        helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=other, name="if"),
    ]
    inputs = [helper.make_tensor_value_info("cond", T.BOOL, []), helper.make_tensor_value_info("x", T.INT32, [2])]
    result = check_pass(MergeCasts, make_model(nodes, inputs, [("y", [2])]), expect_changes=0, expect_skips=1,
                        scopes=())
    assert "the pattern spans scopes" in result.record.skips[0]["reason"]


@pytest.fixture(scope="module")
def torch_casts(tmp_path_factory):
    """x.int().long().float(): Cast(int32) -> Cast(int64) -> Cast(float)."""
    import torch

    class Model(torch.nn.Module):
        def forward(self, x):
            return x.int().long().float()

    path = tmp_path_factory.mktemp("merge-casts") / "casts.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Model(), (torch.randn(3, 4),), str(path), opset_version=13, dynamo=False)
    return path


def test_torch_exported_casts_merge_where_exact(torch_casts):
    assert op_types(onnx.load(str(torch_casts))) == ["Cast"] * 3
    result = check_pass(MergeCasts, torch_casts, expect_changes=1, expect_skips=1)
    assert casts(result) == ["INT32", "FLOAT"]  # float -> int32 truncates: that Cast stays
    assert "INT32 cannot hold every FLOAT value" in result.record.skips[0]["reason"]


WIDER = {T.BOOL: [T.INT8, T.UINT8, T.INT32, T.FLOAT16, T.FLOAT], T.INT8: [T.INT16, T.INT32, T.FLOAT16, T.FLOAT],
         T.UINT8: [T.INT16, T.INT32, T.INT64, T.FLOAT16], T.INT16: [T.INT32, T.INT64, T.FLOAT],
         T.INT32: [T.INT64, T.DOUBLE], T.INT64: [T.INT64], T.FLOAT16: [T.FLOAT, T.DOUBLE], T.FLOAT: [T.DOUBLE],
         T.DOUBLE: [T.DOUBLE]}


@st.composite
def cast_graphs(draw):
    """Chains of Casts, mostly widening (exact), sometimes to any type; some with sibling Casts."""
    source = draw(st.sampled_from([T.BOOL, T.INT8, T.UINT8, T.INT32, T.FLOAT16, T.FLOAT]))
    types, current = [], source
    for _ in range(draw(st.integers(2, 4))):
        widen = draw(st.integers(0, 3)) > 0
        current = draw(st.sampled_from(WIDER[current] if widen else list(WIDER)))
        types.append(current)
    siblings = draw(st.integers(0, 2))

    def pattern(op, x):
        y = x
        for to in types:
            y = op.Cast(y, to=to)
        extra = [op.Neg(op.Cast(op.Cast(x, to=types[0]), to=T.FLOAT)) for _ in range(siblings)]
        return (op.Cast(y, to=T.FLOAT), *extra)

    return pattern_model(pattern, {"x": ([2, 3], NUMPY[source])}, opset=draw(st.sampled_from([9, 13, 19])))


def test_property_cast_chains_keep_their_outputs_and_merge_in_one_run(record_property):
    assert_fires_often(MergeCasts, cast_graphs(), examples=30, share=0.8, record_property=record_property)
