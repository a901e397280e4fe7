"""Both sides of every If are verified, wherever the If sits (main graph, branch, Loop body, function)."""

import json

import numpy as np
import onnx
import onnx_ir as ir
from helpers import make_model
from onnx import TensorProto, helper

from optimizer.branches import DIFFERS, MATCHED, NOT_EXERCISED, check_branches
from optimizer.verify import compare_outputs, run_onnxruntime

X = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
COND = helper.make_tensor_value_info("c", TensorProto.BOOL, [])


def branch(prefix, ops, source="x", shape=(2, 3)):
    """A branch graph chaining unary ``ops`` on the outer-scope value ``source``."""
    nodes, current = [], source
    for index, op in enumerate(ops):
        out = f"{prefix}_out" if index == len(ops) - 1 else f"{prefix}_{index}"
        nodes.append(helper.make_node(op, [current], [out], name=f"{prefix}_{op.lower()}{index}"))
        current = out
    output = helper.make_tensor_value_info(f"{prefix}_out", TensorProto.FLOAT, shape)
    return helper.make_graph(nodes, prefix, [], [output])


def if_node(name, cond, out, prefix, source="x"):
    """then: Relu(source); else: Relu(Neg(source))."""
    return helper.make_node(
        "If",
        [cond],
        [out],
        name=name,
        then_branch=branch(f"{prefix}_then", ["Relu"], source),
        else_branch=branch(f"{prefix}_else", ["Neg", "Relu"], source),
    )


def broken(proto, node_name):
    """The "rewritten" model: node ``node_name`` (a Relu, anywhere) turned into a Sigmoid."""
    model = ir.serde.deserialize_model(proto)
    nodes = [*model.graph.all_nodes(), *(n for f in model.functions.values() for n in f.all_nodes())]
    [node] = [n for n in nodes if n.name == node_name]
    node.op_type = "Sigmoid"
    return model


def sides(result, name):
    [check] = [c for c in result.checks if c.name == name]
    return {side.side: side for side in check.sides}


def test_a_broken_else_branch_the_inputs_skip_passes_one_run_but_is_reported():
    proto = make_model([if_node("sr_check", "c", "y", "m")], [("x", [2, 3]), COND], [("y", [2, 3])])
    original, rewritten = ir.serde.deserialize_model(proto), broken(proto, "m_else_relu1")
    feeds = {"x": X, "c": np.array(True)}
    one_run = compare_outputs(run_onnxruntime(original, feeds), run_onnxruntime(rewritten, feeds))
    assert all(check.ok for check in one_run)  # the old verification: the else branch never runs
    before = ir.serde.serialize_model(rewritten)
    result = check_branches(original, rewritten, feeds)
    assert not result.ok
    then, other = sides(result, "sr_check").values()
    assert (then.status, then.taken_by_inputs) == (MATCHED, True)
    assert (other.status, other.taken_by_inputs) == (DIFFERS, False)
    assert [check.name for check in other.failures] == ["y"]
    assert result.summary()[0].startswith(
        "If 'sr_check' (main graph): then: exercised by the inputs / forced, else: forced, differs: y (max abs diff"
    )
    assert json.loads(json.dumps(result.to_dict()))["ifs"][0]["sides"][1]["status"] == DIFFERS
    assert ir.serde.serialize_model(original) == proto and ir.serde.serialize_model(rewritten) == before


def test_an_if_nested_in_the_untaken_branch_of_another_if_is_forced_through_it():
    outer = helper.make_node(
        "If",
        ["c_outer"],
        ["y"],
        name="outer",
        then_branch=helper.make_graph(
            [if_node("inner", "c", "inner_y", "in")],
            "outer_then",
            [],
            [helper.make_tensor_value_info("inner_y", 1, [2, 3])],
        ),
        else_branch=branch("outer_else", ["Abs"]),
    )
    inputs = [("x", [2, 3]), COND, helper.make_tensor_value_info("c_outer", TensorProto.BOOL, [])]
    proto = make_model([outer], inputs, [("y", [2, 3])])
    feeds = {"x": X, "c": np.array(True), "c_outer": np.array(False)}
    result = check_branches(ir.serde.deserialize_model(proto), broken(proto, "in_else_relu1"), feeds)
    inner = sides(result, "inner")
    assert inner["then"].status == MATCHED and inner["else"].status == DIFFERS
    assert inner["else"].taken_by_inputs is None  # only known for Ifs of the main graph
    assert result.summary()[1].startswith("If 'inner' (then_branch of 'outer'): then: forced, else: forced, differs")
    assert sides(result, "outer")["then"].status == MATCHED  # the inner If takes its then side there


def test_an_if_in_a_loop_body_is_forced_on_every_iteration():
    body = helper.make_graph(
        [
            if_node("in_loop", "c", "body_y", "lp", source="v_in"),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [2, 3]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("body_y", 1, [2, 3]),
        ],
    )
    loop = helper.make_node("Loop", ["trips", "", "x"], ["y"], name="loop", body=body)
    proto = make_model([loop], [("x", [2, 3]), COND], [("y", [2, 3])], initializers=[("trips", np.array(2))])
    result = check_branches(
        ir.serde.deserialize_model(proto), broken(proto, "lp_else_relu1"), {"x": X, "c": np.array(True)}
    )
    assert [side.status for side in sides(result, "in_loop").values()] == [MATCHED, DIFFERS]
    assert result.checks[0].scope == "body of 'loop'"


def test_an_if_in_a_model_local_function_is_forced_in_the_function_body():
    function = helper.make_function(
        "local",
        "block",
        ["X", "C"],
        ["Y"],
        [if_node("in_function", "C", "Y", "fn", source="X")],
        [helper.make_opsetid("", 13)],
    )
    call = helper.make_node("block", ["x", "c"], ["y"], domain="local", name="call")
    proto = make_model(
        [call],
        [("x", [2, 3]), COND],
        [("y", [2, 3])],
        functions=[function],
        extra_opsets=[helper.make_opsetid("local", 1)],
    )
    result = check_branches(
        ir.serde.deserialize_model(proto), broken(proto, "fn_else_relu1"), {"x": X, "c": np.array(True)}
    )
    [check] = result.checks
    assert check.scope == "function 'local::block'"
    assert [side.status for side in check.sides] == [MATCHED, DIFFERS]


def test_a_side_the_original_cannot_run_is_reported_as_not_exercised_with_the_error():
    shape = helper.make_node(
        "Constant", [], ["bad_shape"], value=onnx.numpy_helper.from_array(np.array([5, 7], np.int64))
    )
    reshape = helper.make_node("Reshape", ["x", "bad_shape"], ["bad_out"], name="bad_reshape")
    bad = helper.make_graph([shape, reshape], "bad", [], [helper.make_tensor_value_info("bad_out", 1, ["a", "b"])])
    node = helper.make_node("If", ["c"], ["y"], name="guarded", then_branch=branch("ok", ["Relu"]), else_branch=bad)
    proto = make_model([node], [("x", [2, 3]), COND], [helper.make_tensor_value_info("y", 1, ["a", "b"])])
    model = ir.serde.deserialize_model(proto)
    result = check_branches(model, model, {"x": X, "c": np.array(True)})
    then, other = sides(result, "guarded").values()
    assert then.status == MATCHED and result.ok
    assert other.status == NOT_EXERCISED
    assert other.reason.startswith("the original fails to run when forced: ") and "Reshape" in other.reason
    assert "\n" not in other.reason


def three_ifs(names=("if0", "if1", "if2")):
    nodes = [if_node(name, "c", f"y{i}", f"p{i}") for i, name in enumerate(names)]
    return make_model(nodes, [("x", [2, 3]), COND], [(f"y{i}", [2, 3]) for i in range(3)])


def test_the_cap_limits_the_ifs_checked_and_changed_ifs_go_first():
    proto = three_ifs()
    result = check_branches(
        ir.serde.deserialize_model(proto), broken(proto, "p2_else_relu1"), {"x": X, "c": np.array(True)}, cap=1
    )
    assert [check.name for check in result.checks] == ["if0", "if1", "if2"]
    assert [check.changed for check in result.checks] == [False, False, True]
    assert [side.status for side in sides(result, "if2").values()] == [MATCHED, DIFFERS]
    for name in ("if0", "if1"):
        assert {side.reason for side in sides(result, name).values()} == {"over the cap of 1 Ifs checked"}
    assert result.summary()[0] == (
        "If 'if0' (main graph): then: not exercised (over the cap of 1 Ifs checked), "
        "else: not exercised (over the cap of 1 Ifs checked)"
    )


def test_unnamed_ifs_are_matched_by_their_position():
    proto = three_ifs(names=("", "", ""))
    rewritten = ir.serde.deserialize_model(proto)
    [node] = [n for n in rewritten.graph.all_nodes() if n.name == "p1_else_relu1"]
    node.op_type = "Sigmoid"
    result = check_branches(ir.serde.deserialize_model(proto), rewritten, {"x": X, "c": np.array(True)})
    assert [check.position for check in result.failures()] == [1]
    assert result.failures()[0].summary() == (
        "If #1 (unnamed) (main graph): then: exercised by the inputs / forced, "
        "else: forced, differs: y1 (max abs diff 0.474, max rel diff 3.03)"
    )


def test_folded_unmatched_constant_and_moved_ifs():
    fixed_cond = helper.make_node(
        "Constant", [], ["always"], value=helper.make_tensor("t", TensorProto.BOOL, [], [True])
    )
    outer = helper.make_node(
        "If",
        ["c"],
        ["y1"],
        name="outer",
        then_branch=helper.make_graph(
            [if_node("inner", "c", "inner_y", "in")],
            "outer_then",
            [],
            [helper.make_tensor_value_info("inner_y", 1, [2, 3])],
        ),
        else_branch=branch("outer_else", ["Abs"]),
    )
    outputs = [("y0", [2, 3]), ("y1", [2, 3]), ("y2", [2, 3])]
    original = make_model(
        [if_node("gone", "c", "y0", "g"), outer, fixed_cond, if_node("fixed", "always", "y2", "f")],
        [("x", [2, 3]), COND],
        outputs,
    )
    # The rewrite folded 'gone' and 'outer' (inlining its then side), kept 'fixed', added 'fresh'.
    rewritten = make_model(
        [
            helper.make_node("Relu", ["x"], ["y0"], name="g_then_relu0"),
            if_node("inner", "c", "y1", "in"),
            if_node("fresh", "c", "y2", "f"),
        ],
        [("x", [2, 3]), COND],
        outputs,
    )
    result = check_branches(
        ir.serde.deserialize_model(original), ir.serde.deserialize_model(rewritten), {"x": X, "c": np.array(True)}
    )
    assert [(check.name, check.scope) for check in result.checks] == [
        ("gone", "main graph"),
        ("outer", "main graph"),
        ("inner", "then_branch of 'outer'"),
        ("fresh", "main graph"),
    ]
    reasons = {check.name: {side.reason for side in check.sides} for check in result.checks}
    assert reasons["gone"] == reasons["outer"] == {"folded away: the rewritten model has no matching If"}
    assert reasons["fresh"] == {"no matching If in the original"}
    assert [side.status for side in sides(result, "inner").values()] == [MATCHED, MATCHED]  # matched by its name
    assert result.ok


def test_a_rewritten_model_at_another_opset_with_more_nodes_still_matches():
    proto = make_model([if_node("sr_check", "c", "y", "m")], [("x", [2, 3]), COND], [("y", [2, 3])], opset=13)
    rewritten = broken(proto, "m_else_relu1")
    rewritten.graph.insert_before(
        next(iter(rewritten.graph)), ir.node("Identity", [rewritten.graph.inputs[0]], name="extra")
    )
    upgraded = onnx.version_converter.convert_version(ir.serde.serialize_model(rewritten), 18)
    result = check_branches(
        ir.serde.deserialize_model(proto), ir.serde.deserialize_model(upgraded), {"x": X, "c": np.array(True)}
    )
    assert [side.status for side in sides(result, "sr_check").values()] == [MATCHED, DIFFERS]


def test_a_model_without_an_if_is_not_copied_and_one_with_ifs_is_left_as_it_was():
    from optimizer.branches import BranchChecker

    plain = make_model([helper.make_node("Relu", ["x"], ["y"], name="r")], [("x", [2, 3])], [("y", [2, 3])])
    model = ir.serde.deserialize_model(plain)
    checker = BranchChecker(model, {"x": X})
    assert checker.original is model and checker.sites == []
    proto = make_model([if_node("sr_check", "c", "y", "m")], [("x", [2, 3]), COND], [("y", [2, 3])])
    original = ir.serde.deserialize_model(proto)
    checker = BranchChecker(original, {"x": X, "c": np.array(True)})
    assert checker.original is not original
    checker.check(broken(proto, "m_else_relu1"))
    assert ir.serde.serialize_model(original) == proto
