import numpy as np
import onnx
import pytest
from helpers import make_model, op_types
from onnx import helper

from optimizer.testing import check_pass


def test_folds_the_shape_subgraph_so_fuse_depth_to_space_sees_constant_shapes(torch_model, cli, tmp_path):
    source = torch_model("manual-shuffle", 11)
    assert {"Shape", "Gather", "Concat"} <= set(op_types(source))
    shapes = {"image": [1, 64, 19, 19]}
    result = check_pass("simplify", source, input_shapes=shapes)
    assert op_types(result.model) == ["Reshape", "Transpose", "Reshape"]
    assert list(result.model.graph.inputs[0].shape) == [1, 64, 19, 19]  # --input-shape is honoured
    out = tmp_path / "o.onnx"
    code, _, err = cli("optimize", source, "-o", out, "--input-shape", "image:1,64,19,19")
    assert code == 0, err
    assert op_types(out) == ["DepthToSpace"]


def test_without_input_shapes_the_dynamic_subgraph_stays(torch_model):
    result = check_pass(
        "fuse-depth-to-space",
        torch_model("manual-shuffle", 11),
        verify_shapes={"image": [2, 64, 7, 5]},
        expect_changes=0,
    )
    [skip] = result.record.skips
    assert "static C, H and W" in skip["reason"]
    assert [str(d) for d in result.model.graph.inputs[0].shape] == ["n", "64", "h", "w"]


def test_keeps_ir_version_and_metadata(torch_model):
    model = onnx.load(str(torch_model("ghost", 11)))
    helper.set_model_props(model, {"origin": "test"})
    result = check_pass("simplify", model)
    assert result.model.ir_version == model.ir_version
    assert result.model.metadata_props == {"origin": "test"}


def test_when_onnxsim_fails_onnxscript_runs_alone_and_the_note_says_why():
    # A constant Gather with an index out of range: onnxsim's constant folding fails on it.
    model = make_model(
        [helper.make_node("Gather", ["c", "i"], ["r"], name="g"), helper.make_node("Add", ["x", "r"], ["y"], name="a")],
        [("x", [1])],
        [("y", [1])],
        initializers=[("c", np.ones(2, np.float32)), ("i", np.array([5], np.int64))],
    )
    import onnx_ir as ir

    from optimizer.manager import PassManager
    from optimizer.passapi import PassContext
    from optimizer.targets import load_target

    run = PassManager(["simplify"], PassContext(load_target("onnxruntime"))).run(ir.serde.deserialize_model(model))
    record = run.records[0]
    assert record.status == "unchanged", record.reason
    [note] = record.notes
    assert note.startswith("onnxscript optimizer ") and "(onnxsim 0.4.36 failed: " in note
    assert op_types(run.model) == ["Gather", "Add"]


def test_nothing_to_simplify_is_unchanged():
    model = make_model([helper.make_node("Relu", ["x"], ["y"], name="r")], [("x", [2])], [("y", [2])])
    result = check_pass("simplify", model, expect_changes=0)
    assert result.record.status == "unchanged"


@pytest.mark.parametrize("name", ["skunit", "ghost"])
def test_real_models_keep_their_numbers(torch_model, name):
    check_pass("simplify", torch_model(name, 11))
