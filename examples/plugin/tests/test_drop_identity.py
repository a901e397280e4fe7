"""drop-identity with onnx-opt's kit: it fires, refuses what it must, keeps the numbers and is
idempotent, in the main graph and with the graph in a function, an If branch and a Loop body."""

from onnx_opt_drop_identity import DropIdentity

from optimizer.testing import check_pass, pattern_model


def test_an_identity_between_two_nodes_goes():
    model = pattern_model(lambda op, x: op.Neg(op.Identity(op.Relu(x))), {"x": [2, 3]}, opset=13)
    result = check_pass(DropIdentity, model, expect_changes=1)
    assert [node.op_type for node in result.model.graph] == ["Relu", "Neg"]


def test_an_identity_producing_an_output_hands_its_name_on():
    model = pattern_model(lambda op, x: op.Identity(op.Relu(x)), {"x": [2, 3]}, opset=11, ir_version=7)
    result = check_pass(DropIdentity, model, expect_changes=1)
    assert [(node.op_type, node.outputs[0].name) for node in result.model.graph] == [("Relu", "y")]


def test_an_input_wired_straight_to_an_output_is_refused_with_the_reason():
    model = pattern_model(lambda op, x: op.Identity(x), {"x": [2, 3]})
    result = check_pass(DropIdentity, model, expect_changes=0, expect_skips=1, scopes=("function",))
    assert result.record.skips[0]["reason"] == "connects a graph input or initializer straight to an output"
