"""Every built-in pass in every scope: main graph, function, both If branches, Loop body; same-named
values in two scopes never borrow each other's shapes; a pattern spanning scopes is refused."""

import numpy as np
import onnx_ir as ir
import pytest
from helpers import make_model
from onnx import TensorProto, helper
from scopes import SCOPES, Pattern, feeds, place

from optimizer.manager import PassManager
from optimizer.passapi import PassContext, iter_nodes
from optimizer.targets import load_target
from optimizer.testing import check_pass
from optimizer.verify import run_onnxruntime

CHANGES = {"main": 1, "function": 1, "if": 2, "loop": 1}


def const(name, values, dtype=np.int64):
    array = np.asarray(values, dtype=dtype)
    return helper.make_node(
        "Constant",
        [],
        [name],
        value=helper.make_tensor(name, _onnx_type(array), array.shape, array.reshape(-1).tolist()),
    )


def _onnx_type(array):
    return {np.dtype(np.int64): TensorProto.INT64, np.dtype(np.float32): TensorProto.FLOAT}[array.dtype]


def softmax_sandwich():
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1], name="t1"),
        helper.make_node("Softmax", ["t"], ["s"], axis=-1, name="softmax"),
        helper.make_node("Transpose", ["s"], ["y"], perm=[0, 3, 1, 2], name="t2"),
    ]
    return Pattern(nodes, [2, 3, 4, 5], [2, 3, 4, 5], decoys=[("t", [7])])


def depth_to_space():
    nodes = [helper.make_node("DepthToSpace", ["x"], ["y"], blocksize=2, mode="CRD", name="d2s")]
    return Pattern(nodes, [1, 8, 2, 3], [1, 2, 4, 6], decoys=[("x", [1, 32, 2, 3])])


def shuffle_by_hand():
    nodes = [
        const("split_shape", [1, 2, 2, 2, 2, 3]),
        helper.make_node("Reshape", ["x", "split_shape"], ["r"], name="split"),
        helper.make_node("Transpose", ["r"], ["p"], perm=[0, 1, 4, 2, 5, 3], name="shuffle"),
        const("merge_shape", [1, 2, 4, 6]),
        helper.make_node("Reshape", ["p", "merge_shape"], ["y"], name="merge"),
    ]
    return Pattern(nodes, [1, 8, 2, 3], [1, 2, 4, 6], decoys=[("x", [1, 32, 2, 3])])


def plain_transpose():
    nodes = [helper.make_node("Transpose", ["x"], ["y"], perm=[0, 2, 3, 1], name="nhwc")]
    return Pattern(nodes, [1, 8, 2, 3], [1, 2, 3, 8], decoys=[("x", [5, 5, 5, 5])])


def constant_arithmetic():
    nodes = [
        const("two", [2.0], np.float32),
        const("three", [3.0], np.float32),
        helper.make_node("Mul", ["two", "three"], ["six"], name="mul"),
        helper.make_node("Add", ["x", "six"], ["y"], name="add"),
    ]
    return Pattern(nodes, [2, 3], [2, 3], decoys=[("six", [4])])


def check_both_branches(source, result):
    """check_pass feeds one random condition; compare the If model on each side."""
    for cond in (True, False):
        inputs = feeds(source, seed=3, cond=cond)
        expected = run_onnxruntime(ir.serde.deserialize_model(source), inputs)
        actual = run_onnxruntime(result, inputs)
        for name, value in expected.items():
            np.testing.assert_allclose(actual[name], value, rtol=1e-5, atol=1e-6)


def ops_everywhere(model):
    return [node.op_type for node in iter_nodes(model)]


@pytest.mark.parametrize("scope", SCOPES)
def test_softmax_transpose(scope):
    source = place(softmax_sandwich(), scope)
    result = check_pass("softmax-transpose", source, expect_changes=CHANGES[scope])
    assert "Transpose" not in ops_everywhere(result.model)
    if scope == "if":
        check_both_branches(source, result.model)


@pytest.mark.parametrize("scope", SCOPES)
def test_decompose_depth_to_space(scope):
    source = place(depth_to_space(), scope)
    result = check_pass("decompose-depth-to-space", source, expect_changes=CHANGES[scope])
    assert "DepthToSpace" not in ops_everywhere(result.model)
    if scope == "if":
        check_both_branches(source, result.model)


@pytest.mark.parametrize("scope", SCOPES)
def test_fuse_depth_to_space(scope):
    source = place(shuffle_by_hand(), scope)
    result = check_pass("fuse-depth-to-space", source, expect_changes=CHANGES[scope])
    assert ops_everywhere(result.model).count("DepthToSpace") == CHANGES[scope]
    if scope == "if":
        check_both_branches(source, result.model)


@pytest.mark.parametrize("scope", SCOPES)
def test_transpose_whitelist_reads_shapes_in_the_transposes_own_scope(scope):
    result = check_pass("transpose-whitelist", place(plain_transpose(), scope), target="ascend310")
    assert result.record.findings["transpose_shapes"] == [[1, 8, 2, 3]]  # never the decoy's [5, 5, 5, 5]


@pytest.mark.parametrize("scope", SCOPES)
def test_simplify(scope):
    source = place(constant_arithmetic(), scope)
    result = check_pass("simplify", source, compare_nested=False)  # whole-model: work differs by scope
    assert "Mul" not in ops_everywhere(result.model)
    if scope == "if":
        check_both_branches(source, result.model)


def test_function_values_do_not_take_the_shape_of_a_same_named_main_graph_value():
    """The fault found: inside a function, 'x' took the shape [2, 4, 1] of the main graph's 'x', so
    the opset-11 rule looked satisfied and the rewrite changed the outputs by 0.42."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1], name="t1"),
        helper.make_node("Softmax", ["t"], ["s"], axis=2, name="softmax"),
        helper.make_node("Transpose", ["s"], ["y"], perm=[0, 2, 1], name="t2"),
    ]
    illegal = Pattern(nodes, [2, 3, 4], [2, 3, 4], opset=11, decoys=[("x", [2, 4, 1])])
    result = check_pass("softmax-transpose", place(illegal, "function"), expect_changes=0, expect_skips=1)
    assert "flatten" in result.record.skips[0]["reason"]
    legal = Pattern(nodes, [2, 3, 1], [2, 3, 1], opset=11, decoys=[("x", [2, 4, 5])])
    check_pass("softmax-transpose", place(legal, "function"), expect_changes=1)


def test_a_function_called_with_two_shapes_keeps_only_what_both_calls_agree_on():
    pattern = depth_to_space()
    model = place(pattern, "function")
    second = helper.make_node("pattern", ["b"], ["out2"], domain="local", name="call2")
    model.graph.node.append(second)
    model.graph.input.append(helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 8, 4, 3]))
    model.graph.output.append(helper.make_tensor_value_info("out2", TensorProto.FLOAT, [1, 2, 8, 6]))
    result = check_pass("decompose-depth-to-space", model, expect_changes=0, expect_skips=1)
    assert "static C, H and W" in result.record.skips[0]["reason"]


def cross_scope_model():
    """A Transpose of the main graph feeding a Softmax -> Transpose inside an If branch."""
    branch = helper.make_graph(
        [
            helper.make_node("Softmax", ["t"], ["s"], axis=-1, name="softmax"),
            helper.make_node("Transpose", ["s"], ["y"], perm=[0, 3, 1, 2], name="t2"),
        ],
        "then",
        [],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 4, 5])],
    )
    other = helper.make_graph(
        [helper.make_node("Transpose", ["t"], ["z"], perm=[0, 3, 1, 2], name="t3")],
        "else",
        [],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3, 4, 5])],
    )
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1], name="t1"),
        helper.make_node("If", ["cond"], ["out"], then_branch=branch, else_branch=other, name="if"),
    ]
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    return make_model(nodes, [cond, ("x", [2, 3, 4, 5])], [("out", [2, 3, 4, 5])])


def test_a_pattern_spanning_scopes_is_refused_with_the_reason():
    run = PassManager(["softmax-transpose"], PassContext(load_target("onnxruntime"))).run(
        ir.serde.deserialize_model(cross_scope_model())
    )
    record = run.records[0]
    assert record.status == "unchanged", record.reason
    [skip] = record.skips
    assert "spans scopes" in skip["reason"] and "the main graph" in skip["reason"]
    assert "then_branch of If 'if'" in skip["reason"]


def test_new_values_get_names_unused_in_every_enclosing_scope():
    """decompose names its constants '<node>/split_shape'; a same-named node in a branch must not
    reuse a name the outer graph already defines (ONNX forbids shadowing)."""
    d2s = helper.make_node("DepthToSpace", ["x"], ["inner"], blocksize=2, name="d2s")
    branch = helper.make_graph(
        [d2s], "then", [], [helper.make_tensor_value_info("inner", TensorProto.FLOAT, [1, 2, 4, 6])]
    )
    other = helper.make_graph(
        [helper.make_node("DepthToSpace", ["x"], ["inner2"], blocksize=2, name="d2s")],
        "else",
        [],
        [helper.make_tensor_value_info("inner2", TensorProto.FLOAT, [1, 2, 4, 6])],
    )
    nodes = [
        helper.make_node("DepthToSpace", ["x"], ["outer"], blocksize=2, name="d2s"),
        helper.make_node("If", ["cond"], ["out"], then_branch=branch, else_branch=other, name="if"),
    ]
    cond = helper.make_tensor_value_info("cond", TensorProto.BOOL, [])
    model = make_model(nodes, [cond, ("x", [1, 8, 2, 3])], [("outer", [1, 2, 4, 6]), ("out", [1, 2, 4, 6])])
    result = check_pass("decompose-depth-to-space", model, expect_changes=3)
    check_both_branches(model, result.model)
