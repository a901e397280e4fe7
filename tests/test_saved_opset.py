"""A rewrite is legal at the opset the model is saved at; the culprit search replays each pass
through the run's own opset conversion; passes that undo each other are refused."""

import json

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from helpers import make_model, save
from onnx import helper

import optimizer.optimize
from optimizer.errors import UserError
from optimizer.manager import PassManager
from optimizer.passapi import Change, NodePass, PassContext, iter_nodes, replace_nodes
from optimizer.targets import load_target
from optimizer.testing import check_pass, registered
from optimizer.verify import run_onnxruntime


def channel_softmax(shape, opset=13):
    """Transpose -> Softmax(last axis) -> Transpose: a softmax over axis 1 of ``shape``."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1], name="t1"),
        helper.make_node("Softmax", ["t"], ["s"], axis=-1, name="softmax"),
        helper.make_node("Transpose", ["s"], ["y"], perm=[0, 3, 1, 2], name="t2"),
    ]
    return make_model(nodes, [("x", shape)], [("y", shape)], opset=opset)


def test_softmax_transpose_refuses_at_13_when_the_model_is_saved_at_11():
    model = channel_softmax([2, 3, 4, 5])
    result = check_pass("softmax-transpose", model, final_opset=11, expect_changes=0, expect_skips=1)
    reason = result.record.skips[0]["reason"]
    assert "saved at opset 11" in reason and "--opset 13 enables this rewrite" in reason


def test_softmax_transpose_still_fires_when_the_saved_opset_reads_it_the_same():
    # x = [2, 3, 1, 1]: Softmax(axis=1) flattens only 1s below opset 13, so the rewrite is exact there too.
    result = check_pass("softmax-transpose", channel_softmax([2, 3, 1, 1]), final_opset=11, expect_changes=1)
    assert [n.op_type for n in result.model.graph] == ["Softmax"]


def test_optimize_with_a_downgrade_writes_the_same_function(cli, tmp_path):
    """Fuzzing found: rewritten at 13, relabelled at 11, outputs off by 0.5-2.8 under --no-verify."""
    source = save(channel_softmax([2, 3, 4, 5]), tmp_path / "m.onnx")
    out = tmp_path / "o.onnx"
    code, _, err = cli("optimize", source, "-o", out, "--opset", "11", "--passes", "softmax-transpose", "--no-verify")
    assert code == 0, err
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    expected = run_onnxruntime(ir.load(source), {"x": x})["y"]
    written = onnx.load(str(out))
    assert written.opset_import[0].version == 11
    np.testing.assert_allclose(run_onnxruntime(ir.load(out), {"x": x})["y"], expected, rtol=1e-5, atol=1e-6)


class SoftmaxAxisAnyOpset(NodePass):
    """Test pass: the old softmax-transpose, blind to the opset the model is saved at."""

    name = "test-softmax-blind"
    summary = "Test: fold Transpose -> Softmax -> Transpose whatever the saved opset"

    def rewrite(self, node, model, ctx):
        first = node.inputs[0].producer() if node.op_type == "Softmax" else None
        if first is None or first.op_type != "Transpose":
            return None
        [last] = [use.node for use in node.outputs[0].uses()]
        perm = first.attributes.get_ints("perm")
        new = ir.node("Softmax", [first.inputs[0]], {"axis": perm[-1]}, name="folded")
        replace_nodes([first, node, last], [new], last.outputs[0], new.outputs[0])
        return Change("folded", (node.name,))


def relabel_only(model, opset, base_dir, *, in_place=False):
    """What onnx's converter did to Softmax: change the opset import, keep the node."""
    model = model if in_place else model.clone()
    model.opset_imports[""] = opset
    return model


def test_the_culprit_search_replays_through_the_opset_conversion(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(optimizer.optimize, "convert_opset", relabel_only)
    source = save(channel_softmax([2, 3, 4, 5]), tmp_path / "m.onnx")
    report = tmp_path / "r.json"
    with registered(SoftmaxAxisAnyOpset):
        code, _, err = cli(
            "optimize",
            source,
            "-o",
            tmp_path / "o.onnx",
            "--opset",
            "11",
            "--passes",
            "test-softmax-blind",
            "--report",
            report,
        )
    assert code == 0, err
    data = json.loads(report.read_text())
    record = data["passes"][0]
    assert record["name"] == "test-softmax-blind" and record["status"] == "dropped"
    assert record["reason"].startswith("broke y")
    assert data["verification"]["ok"] is True


def test_declared_conflicts_stop_at_once_naming_the_pair(cli, examples, tmp_path):
    code, _, err = cli(
        "optimize",
        examples / "srnet_opset11.onnx",
        "-o",
        tmp_path / "o.onnx",
        "--passes",
        "fuse-depth-to-space,decompose-depth-to-space",
        "--fixed-point",
    )
    assert code == 2
    assert err.count("\n") == 1 and "decompose-depth-to-space" in err and "fuse-depth-to-space" in err
    assert "undo each other" in err
    assert not (tmp_path / "o.onnx").exists()


class Fuse(NodePass):
    name = "test-relu-to-abs"
    summary = "Test: Relu -> Abs"

    def rewrite(self, node, model, ctx):
        if node.op_type == "Relu":
            node.op_type = "Abs"
            return Change("relu -> abs", (node.name,))
        return None


class Unfuse(NodePass):
    name = "test-abs-to-relu"
    summary = "Test: Abs -> Relu"

    def rewrite(self, node, model, ctx):
        if node.op_type == "Abs":
            node.op_type = "Relu"
            return Change("abs -> relu", (node.name,))
        return None


def test_undeclared_oscillation_is_caught_at_the_first_repeated_state():
    model = make_model([helper.make_node("Relu", ["x"], ["y"], name="r")], [("x", [2])], [("y", [2])])
    with registered(Fuse, Unfuse):
        manager = PassManager(
            ["test-relu-to-abs", "test-abs-to-relu"],
            PassContext(load_target("onnxruntime")),
            fixed_point=True,
            max_rounds=50,
        )
        with pytest.raises(UserError, match="test-abs-to-relu, test-relu-to-abs undo each other: round 1"):
            manager.run(ir.serde.deserialize_model(model))


def test_a_pass_whose_result_cannot_be_saved_at_the_final_opset_fails_alone():
    def refuse(model):
        if any(node.op_type == "Abs" for node in iter_nodes(model)):
            raise UserError("node 'r' (Abs): cannot be converted")
        return model

    model = make_model([helper.make_node("Relu", ["x"], ["y"], name="r")], [("x", [2])], [("y", [2])])
    with registered(Fuse):
        run = PassManager(["test-relu-to-abs"], PassContext(load_target("onnxruntime")), finalize=refuse).run(
            ir.serde.deserialize_model(model)
        )
    assert run.records[0].status == "failed" and "cannot be converted" in run.records[0].reason
    assert [n.op_type for n in run.model.graph] == ["Relu"]
