"""Every built-in pass on every bundled example: deterministic, idempotent, numerically exact."""

import onnx_ir as ir
import pytest
from helpers import make_model, op_types
from onnx import TensorProto, helper

from optimizer.manager import PassManager
from optimizer.modelio import load_model
from optimizer.passapi import PassContext
from optimizer.targets import load_target
from optimizer.testing import ANY, check_pass

PASSES = ["simplify", "softmax-transpose", "decompose-depth-to-space", "fuse-depth-to-space", "transpose-whitelist"]
EXAMPLES = ["skunit_opset11.onnx", "srnet_opset9.onnx", "srnet_opset11.onnx", "ghost_opset11.onnx"]


@pytest.mark.parametrize("example", EXAMPLES)
@pytest.mark.parametrize("name", PASSES)
def test_idempotent_and_exact_on_the_examples(examples, example, name):
    target = "ascend310p" if name != "transpose-whitelist" else "ascend310"
    check_pass(name, examples / example, target=target, expect_changes=ANY, expect_skips=ANY,
               compare_nested=name != "simplify")


@pytest.mark.parametrize("example", EXAMPLES)
def test_target_pipelines_are_deterministic(examples, example):
    for target in ("ascend310", "onnxruntime"):
        outputs = []
        for _ in range(2):
            ctx = PassContext(load_target(target))
            run = PassManager(list(load_target(target).pipeline), ctx).run(load_model(examples / example))
            outputs.append(ir.serde.serialize_model(run.model).SerializeToString())
        assert outputs[0] == outputs[1]


def test_decompose_walks_if_branches():
    branch = helper.make_graph(
        [helper.make_node("DepthToSpace", ["x"], ["by"], blocksize=2, mode="CRD", name="b_d2s")],
        "then",
        [],
        [helper.make_tensor_value_info("by", TensorProto.FLOAT, [1, 2, 4, 4])],
    )
    other = helper.make_graph(
        [helper.make_node("DepthToSpace", ["x"], ["ey"], blocksize=2, mode="DCR", name="e_d2s")],
        "else",
        [],
        [helper.make_tensor_value_info("ey", TensorProto.FLOAT, [1, 2, 4, 4])],
    )
    model = make_model(
        [helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=other, name="if")],
        [helper.make_tensor_value_info("c", TensorProto.BOOL, []), ("x", [1, 8, 2, 2])],
        [("y", [1, 2, 4, 4])],
    )
    result = check_pass("decompose-depth-to-space", model, expect_changes=2)
    node = next(iter(result.model.graph))
    for branch_name in ("then_branch", "else_branch"):
        assert "DepthToSpace" not in op_types(node.attributes[branch_name].as_graph())
    fused = check_pass("fuse-depth-to-space", result.model, expect_changes=2)
    node = next(iter(fused.model.graph))
    assert [
        n.attributes.get_string("mode")
        for b in ("then_branch", "else_branch")
        for n in node.attributes[b].as_graph()
        if n.op_type == "DepthToSpace"
    ] == ["CRD", "DCR"]
