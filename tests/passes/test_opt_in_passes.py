"""Opt-in passes: approximate ones (resize-nearest) and fixes that leave a non-standard model
(topk-int32) never run unless named with --allow-approximate, never enter a pipeline, auto or a
plan, and verification reports their difference instead of dropping them."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from helpers import make_model, save
from onnx import TensorProto, helper

from optimizer.manager import PassManager
from optimizer.passapi import Change, NodePass, PassContext, register_pass
from optimizer.registry import default_passes, registered
from optimizer.targets import load_target
from optimizer.testing import SCOPES, nest, pattern_model
from passes.resize_nearest import ResizeNearest
from passes.topk_int32 import TopkInt32


def resize(mode: str, opset: int = 13, **attributes) -> onnx.ModelProto:
    scales = np.array([1, 1, 2, 2], np.float32)
    if opset >= 11:
        return pattern_model(lambda op, x: op.Resize(x, np.zeros(0, np.float32), scales, mode=mode, **attributes),
                             {"x": [1, 2, 3, 3]}, opset=opset)
    return pattern_model(lambda op, x: op.Resize(x, scales, mode=mode, **attributes), {"x": [1, 2, 3, 3]}, opset=opset)


def run(cls, model: onnx.ModelProto, target: str = "onnxruntime"):
    with registered(cls):
        return PassManager([cls.name], PassContext(load_target(target))).run(ir.serde.deserialize_model(model))


def attributes(run_result) -> dict:
    [node] = [n for n in run_result.model.graph if n.op_type in ("Resize", "Upsample")]
    return {name: attr.value for name, attr in node.attributes.items()}


@pytest.mark.parametrize(("opset", "mode"), [(10, "linear"), (11, "cubic"), (13, "linear"), (18, "cubic")])
def test_resize_becomes_nearest_and_drops_what_only_the_old_mode_reads(opset, mode):
    extra = {"cubic_coeff_a": -0.5, "exclude_outside": 1} if mode == "cubic" else {}
    result = run(ResizeNearest, resize(mode, opset, **extra))
    assert result.records[0].changes == 1
    rounding = {"nearest_mode": "round_prefer_floor"} if opset >= 11 else {}  # opset 10 rounds one way only
    assert attributes(result) == {"mode": "nearest", **rounding}
    assert run(ResizeNearest, ir.serde.serialize_model(result.model)).records[0].changes == 0


def test_upsample_at_opset_9_becomes_nearest():
    model = pattern_model(lambda op, x: op.Upsample(x, np.array([1, 1, 2, 2], np.float32), mode="linear"),
                          {"x": [1, 2, 3, 3]}, opset=9)
    assert attributes(run(ResizeNearest, model)) == {"mode": "nearest"}


@pytest.mark.parametrize("scope", SCOPES)
def test_resize_nearest_rewrites_in_every_scope(scope):
    assert run(ResizeNearest, nest(resize("linear"), scope)).records[0].changes == (2 if scope == "if" else 1)


def test_an_approximate_pass_needs_allow_approximate_and_then_keeps_its_reported_difference(cli, tmp_path):
    source = save(resize("linear"), tmp_path / "resize.onnx")
    out, report = tmp_path / "out.onnx", tmp_path / "report.json"
    code, _, err = cli("optimize", source, "-o", out, "--passes", "resize-nearest")
    assert code == 2 and not out.exists()
    assert "resize-nearest is approximate: it changes the outputs by design; give --allow-approximate" in err
    code, stdout, err = cli("optimize", source, "-o", out, "--passes", "resize-nearest", "--allow-approximate",
                            "--report", report)
    assert code == 0, err
    data = json.loads(report.read_text())
    assert data["expected_differences"] == ["resize-nearest"]
    assert data["verification"]["ok"] is False
    [record, _cleanup] = data["passes"]
    assert record["status"] == "changed"
    assert any("kept (--allow-approximate)" in line for line in record["notes"])
    assert "the differences are expected: resize-nearest" in stdout
    assert out.exists()


class BreakRelu(NodePass):
    """A broken exact pass: Relu becomes Neg."""

    name = "test-break-relu"
    summary = "Relu -> Neg (wrong on purpose)"

    def rewrite(self, node, model, ctx):
        if node.op_type != "Relu":
            return None
        node.op_type = "Neg"
        return Change("Relu -> Neg", (node.name,))


def test_an_exact_pass_after_an_approximate_one_is_still_checked_and_dropped(cli, tmp_path):
    model = pattern_model(
        lambda op, x: op.Relu(op.Resize(x, np.zeros(0, np.float32), np.array([1, 1, 2, 2], np.float32), mode="linear")),
        {"x": [1, 2, 3, 3]},
    )
    source, report = save(model, tmp_path / "m.onnx"), tmp_path / "r.json"
    with registered(register_pass(BreakRelu)):
        code, _, err = cli("optimize", source, "-o", tmp_path / "o.onnx", "--passes", "resize-nearest,test-break-relu",
                           "--allow-approximate", "--report", report)
    assert code == 0, err
    statuses = {r["name"]: r["status"] for r in json.loads(report.read_text())["passes"]}
    assert statuses["resize-nearest"] == "changed" and statuses["test-break-relu"] == "dropped"


def test_opt_in_passes_never_enter_a_pipeline_auto_or_plan(cli, tmp_path):
    assert "resize-nearest" not in default_passes() and "topk-int32" not in default_passes()
    target = json.loads((resources.files("optimizer") / "data" / "targets" / "onnxruntime.json").read_text())
    target.update(name="mine", pipeline=["simplify", "resize-nearest"])
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(target))
    code, _, err = cli("optimize", save(resize("linear"), tmp_path / "m.onnx"), "--dry-run", "--target", path)
    assert code == 2
    assert "$.pipeline[1]: resize-nearest is approximate: it changes the outputs by design; it never enters" in err


def test_passes_lists_the_groups_and_exactness(cli):
    code, out, _ = cli("passes", "--json")
    rows = {row["name"]: row for row in json.loads(out)["passes"]}
    assert (rows["resize-nearest"]["group"], rows["resize-nearest"]["exact"]) == ("approximate", False)
    assert (rows["topk-int32"]["group"], rows["topk-int32"]["exact"]) == ("fix", True)
    assert rows["topk-int32"]["opt_in"].startswith("topk-int32 is a conversion fix")
    assert (rows["transpose-whitelist"]["group"], rows["softmax-transpose"]["group"]) == ("analysis", "rewrite")
    assert rows["softmax-transpose"]["opt_in"] is None


def topk(consumer: str = "Gather", opset: int = 11) -> onnx.ModelProto:
    k = helper.make_node("Constant", [], ["k"], value=helper.make_tensor("", TensorProto.INT64, [1], [2]), name="k")
    nodes = [k, helper.make_node("TopK", ["x", "k"], ["values", "indices"], axis=1, name="topk")]
    if consumer == "Gather":
        nodes.append(helper.make_node("Gather", ["table", "indices"], ["picked"], axis=0, name="pick"))
        outputs = [("values", [3, 2]), helper.make_tensor_value_info("picked", TensorProto.FLOAT, [3, 2, 4])]
        inputs = [("x", [3, 5]), ("table", [5, 4])]
    else:
        outputs = [("values", [3, 2]), helper.make_tensor_value_info("indices", TensorProto.INT64, [3, 2])]
        inputs = [("x", [3, 5])]
    return make_model(nodes, inputs, outputs, opset=opset)


def test_topk_int32_casts_k_and_the_indices_and_a_second_run_changes_nothing():
    result = run(TopkInt32, topk())
    assert result.records[0].changes == 1
    casts = [n for n in result.model.graph if n.op_type == "Cast"]
    assert [c.attributes.get_int("to") for c in casts] == [TensorProto.INT32] * 2
    again = run(TopkInt32, ir.serde.serialize_model(result.model))
    assert again.records[0].changes == 0


def test_topk_int32_refuses_indices_that_are_a_graph_output():
    [skip] = run(TopkInt32, topk(consumer="output")).records[0].skips
    assert skip["reason"] == "its indices are a graph output: int32 would change the model's output type"


def test_topk_int32_is_kept_and_written_though_onnxruntime_cannot_run_it(cli, tmp_path):
    source, out, report = save(topk(), tmp_path / "t.onnx"), tmp_path / "o.onnx", tmp_path / "r.json"
    code, _, err = cli("optimize", source, "-o", out, "--passes", "topk-int32", "--allow-approximate",
                       "--report", report)
    assert code == 0, err
    data = json.loads(report.read_text())
    assert data["expected_differences"] == ["topk-int32"]
    assert "onnxruntime cannot run the optimised model" in json.dumps(data["verification"])
    assert [n.op_type for n in onnx.load(str(out)).graph.node].count("Cast") == 2
