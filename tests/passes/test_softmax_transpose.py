import itertools

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from helpers import make_model, op_types
from onnx import TensorProto, helper

from optimizer.testing import ANY, check_pass
from optimizer.verify import run_onnxruntime

PASS = "softmax-transpose"


def sandwich(shape, p, q, *, axis=-1, opset=13, op="Softmax", extra_nodes=(), extra_outputs=()):
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=p, name="t1"),
        helper.make_node(op, ["t"], ["s"], axis=axis, name="softmax"),
        helper.make_node("Transpose", ["s"], ["y"], perm=q, name="t2"),
        *extra_nodes,
    ]
    out = [shape[p[axis]] for axis in q]  # as declared, so onnx's strict shape inference agrees
    return make_model(nodes, [("x", shape)], [("y", out), *extra_outputs], opset=opset)


def swap_last(rank, axis):
    perm = list(range(rank))
    perm[axis], perm[-1] = perm[-1], perm[axis]
    return perm


SHAPES = {3: [2, 3, 4], 4: [2, 3, 4, 5], 5: [2, 3, 4, 5, 6]}


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("rank, axis", [(r, a) for r in (3, 4, 5) for a in range(r)])
def test_every_axis_fires_at_opset_13(rank, axis, op):
    p = swap_last(rank, axis)
    result = check_pass(PASS, sandwich(SHAPES[rank], p, p, op=op), expect_changes=1)
    [node] = result.model.graph
    assert (node.op_type, node.attributes.get_int("axis")) == (op, axis)


@pytest.mark.parametrize("rank, axis", [(r, a) for r in (3, 4, 5) for a in range(r)])
def test_opset_11_fires_only_where_softmax_is_still_single_axis(rank, axis):
    p = swap_last(rank, axis)
    fires = axis == rank - 1
    model = sandwich(SHAPES[rank], p, p, opset=11)
    result = check_pass(PASS, model, expect_changes=int(fires), expect_skips=int(not fires))
    if axis == rank - 1:
        assert op_types(result.model) == ["Softmax"]
    else:
        assert op_types(result.model) == ["Transpose", "Softmax", "Transpose"]
        assert "--opset 13 enables this rewrite" in result.record.skips[0]["reason"]


def test_opset_11_fires_when_the_later_dims_are_1():
    shape = [2, 3, 4, 1, 1]
    p = swap_last(5, 2)
    result = check_pass(PASS, sandwich(shape, p, p, opset=11), expect_changes=1)
    assert [n.attributes.get_int("axis") for n in result.model.graph] == [2]


def test_opset_11_with_an_axis_that_spans_several_dims_is_left():
    # Softmax(axis=1) of t = [2, 4, 3] at opset 11 normalises over 4*3 values, not one axis.
    model = sandwich([2, 3, 4], [0, 2, 1], [0, 2, 1], axis=1, opset=11)
    result = check_pass(PASS, model, expect_changes=0, expect_skips=1)
    assert "spans axes 1.." in result.record.skips[0]["reason"]


def test_perms_must_undo_each_other():
    result = check_pass(PASS, sandwich([2, 3, 4, 5], [0, 3, 1, 2], [0, 3, 1, 2]), expect_changes=0, expect_skips=1)
    assert "does not undo" in result.record.skips[0]["reason"]
    check_pass(PASS, sandwich([2, 3, 4, 5], [0, 3, 1, 2], [0, 2, 3, 1]), expect_changes=1)


def test_default_perm_reverses():
    model = sandwich([3, 4], [1, 0], [1, 0])
    for node in model.graph.node:
        if node.op_type == "Transpose":
            del node.attribute[:]
    result = check_pass(PASS, model, expect_changes=1)
    assert [n.attributes.get_int("axis") for n in result.model.graph] == [0]


@pytest.mark.parametrize(
    "extra_nodes, extra_outputs",
    [
        ([helper.make_node("Relu", ["t"], ["r"], name="shared_t")], [("r", [2, 4, 3])]),
        ([helper.make_node("Relu", ["s"], ["r"], name="shared_s")], [("r", [2, 4, 3])]),
        ([], [("t", [2, 4, 3])]),
    ],
)
def test_shared_or_exposed_intermediates_must_not_fire(extra_nodes, extra_outputs):
    model = sandwich([2, 3, 4], [0, 2, 1], [0, 2, 1], extra_nodes=extra_nodes, extra_outputs=extra_outputs)
    result = check_pass(PASS, model, expect_changes=0, expect_skips=1)
    assert "another consumer or is a graph output" in result.record.skips[0]["reason"]


def test_sandwich_inside_an_if_branch_fires():
    p = [0, 2, 1]
    branch = helper.make_graph(
        [
            helper.make_node("Transpose", ["x"], ["bt"], perm=p, name="b_t1"),
            helper.make_node("Softmax", ["bt"], ["bs"], axis=-1, name="b_softmax"),
            helper.make_node("Transpose", ["bs"], ["by"], perm=p, name="b_t2"),
        ],
        "then",
        [],
        [helper.make_tensor_value_info("by", TensorProto.FLOAT, [2, 3, 4])],
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["ey"], name="e_id")],
        "else",
        [],
        [helper.make_tensor_value_info("ey", TensorProto.FLOAT, [2, 3, 4])],
    )
    model = make_model(
        [helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=other, name="if")],
        [helper.make_tensor_value_info("c", TensorProto.BOOL, []), ("x", [2, 3, 4])],
        [("y", [2, 3, 4])],
    )
    result = check_pass(PASS, model, expect_changes=1)
    then_graph = next(iter(result.model.graph)).attributes["then_branch"].as_graph()
    assert [(n.op_type, n.attributes.get_int("axis")) for n in then_graph] == [("Softmax", 1)]
    feeds = {"c": np.array(True), "x": np.random.default_rng(1).standard_normal((2, 3, 4)).astype(np.float32)}
    expected = run_onnxruntime(ir.serde.deserialize_model(model), feeds)["y"]
    np.testing.assert_allclose(run_onnxruntime(result.model, feeds)["y"], expected, rtol=1e-5, atol=1e-6)


def test_sk_unit_from_torch_at_opset_11_is_refused_with_the_reason(torch_model):
    result = check_pass(PASS, torch_model("skunit", 11), expect_changes=0, expect_skips=1)
    [skip] = result.record.skips
    assert "Softmax(axis=1) would flatten dims [16, 1, 1]" in skip["reason"]
    assert "--opset 13 enables this rewrite" in skip["reason"]


def test_sk_unit_from_torch_at_opset_13_has_no_sandwich(torch_model):
    assert "Transpose" not in op_types(torch_model("skunit", 13))
    check_pass(PASS, torch_model("skunit", 13), expect_changes=0)


def test_opset_13_on_the_command_line_makes_it_fire(cli, torch_model, tmp_path):
    out = tmp_path / "sk13.onnx"
    code, stdout, err = cli("optimize", torch_model("skunit", 11), "-o", out, "--opset", "13", "--passes", PASS)
    assert code == 0, err
    softmax = [n for n in onnx.load(str(out)).graph.node if n.op_type == "Softmax"]
    assert [a.i for a in softmax[0].attribute] == [1]
    assert "Transpose" not in op_types(out)
    assert "passed" in stdout


def test_the_seed_guides_rewrite_is_wrong_at_opset_11(torch_model):
    """Deleting the transposes and setting axis=1, as the seed script did, changes the outputs."""
    original = onnx.load(str(torch_model("skunit", 11)))
    seed = onnx.load(str(torch_model("skunit", 11)))
    nodes = list(seed.graph.node)
    index = next(i for i, n in enumerate(nodes) if n.op_type == "Softmax")
    before, softmax, after = nodes[index - 1], nodes[index], nodes[index + 1]
    softmax.input[0], softmax.output[0] = before.input[0], after.output[0]
    softmax.attribute[0].i = 1
    seed.graph.node.remove(before)
    seed.graph.node.remove(after)
    feeds = {"image": np.random.default_rng(0).standard_normal((1, 16, 14, 14)).astype(np.float32)}
    expected = run_onnxruntime(ir.serde.deserialize_model(original), feeds)["output"]
    wrong = run_onnxruntime(ir.serde.deserialize_model(seed), feeds)["output"]
    assert np.abs(expected - wrong).max() > 1e-2
    result = check_pass(PASS, original, expect_changes=0, expect_skips=1)  # ours leaves it, so its outputs stay exact
    assert all(n.attributes.get_int("axis", 1) != 1 or n.op_type != "Softmax" for n in result.model.graph)


def test_deterministic(torch_model):
    model = onnx.load(str(torch_model("skunit", 11)))
    from onnx import version_converter

    model = version_converter.convert_version(model, 13)
    first = check_pass(PASS, model, expect_changes=1).model
    second = check_pass(PASS, model, expect_changes=1).model
    assert ir.serde.serialize_model(first).SerializeToString() == ir.serde.serialize_model(second).SerializeToString()


def test_all_perm_pairs_of_rank_3_agree_with_onnxruntime():
    """Exhaustive: for every (p, q) pair and axis, the pass either refuses or keeps the numbers."""
    fired = 0
    for p, q in itertools.product(itertools.permutations(range(3)), repeat=2):
        for axis in range(3):
            model = sandwich([2, 3, 4], list(p), list(q), axis=axis, opset=13)
            result = check_pass(PASS, model, expect_changes=ANY, expect_skips=ANY)
            fired += result.record.changes
    assert fired == 6 * 3  # exactly the pairs where q undoes p, for each axis


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_a_chain_below_opset_13_is_rewritten_in_one_run(op):
    """Regression (fuzz seed 33, focus softmax-transpose): the second sandwich reads the new
    Softmax of the first, whose shape the once-per-run inference did not know; it was refused
    and a second run rewrote it (not idempotent)."""
    nodes = [helper.make_node("Relu", ["x"], ["x1"], name="relu")]
    for i, (src, dst) in enumerate([("x1", "a"), ("a", "y")]):
        nodes += [
            helper.make_node("Transpose", [src], [f"t{i}"], perm=[1, 0], name=f"ta{i}"),
            helper.make_node(op, [f"t{i}"], [f"s{i}"], axis=1, name=f"s{i}"),
            helper.make_node("Transpose", [f"s{i}"], [dst], perm=[1, 0], name=f"tb{i}"),
        ]
    model = make_model(nodes, [("x", [4, 1])], [("y", [4, 1])], opset=11)
    result = check_pass(PASS, model, expect_changes=2)
    assert op_types(result.model) == ["Relu", op, op]
