"""What `optimize` verifies: dynamic models stay dynamic and are checked at two sizes; fixing
shapes is explicit; a rewrite in an If branch the inputs never take is still caught."""

import json

import numpy as np
import onnx
import onnx_ir as ir
from helpers import make_model, save
from onnx import TensorProto, helper

from optimizer.passapi import Change, NodePass
from optimizer.testing import registered
from optimizer.verify import run_onnxruntime


def dims(path, index=0):
    return [d.dim_param or d.dim_value for d in onnx.load(str(path)).graph.input[index].type.tensor_type.shape.dim]


def outputs_match(source, written, shape, seed):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    [name] = [i.name for i in onnx.load(str(source)).graph.input]
    expected = run_onnxruntime(ir.load(source), {name: x})
    actual = run_onnxruntime(ir.load(written), {name: x})
    for key, value in expected.items():
        np.testing.assert_allclose(actual[key], value, rtol=1e-4, atol=1e-5)


def test_a_dynamic_batch_model_keeps_its_batch_and_is_verified_at_two_sizes(cli, torch_model, tmp_path):
    source = torch_model("srnet", 11, dynamic_batch=True)
    out, report = tmp_path / "o.onnx", tmp_path / "r.json"
    code, stdout, err = cli("optimize", source, "-o", out, "--opset", "9", "--target", "ascend310", "--report", report)
    assert code == 0, err
    assert dims(out)[0] == "batch" and dims(source)[0] == "batch"
    data = json.loads(report.read_text())
    verification = data["verification"]
    assert [shapes["image"][0] for shapes in verification["inputs"]] == [1, 2]
    assert verification["shapes"].startswith("derived for the dynamic dims (at two sizes)")
    assert {check["run"] for check in verification["outputs"]} == {0, 1}
    assert not any("fixed input shapes" in note for note in data["notes"])
    for batch in (1, 3):
        outputs_match(source, out, [batch, *dims(source)[1:]], seed=batch)


def test_input_shape_fixes_the_shape_and_says_so(cli, torch_model, tmp_path):
    source = torch_model("srnet", 11, dynamic_batch=True)
    for flag in ("--input-shape", "--fix-input-shape"):
        out, report = tmp_path / f"{flag}.onnx", tmp_path / f"{flag}.json"
        code, _, err = cli("optimize", source, "-o", out, flag, "image:4,3,114,114", "--report", report)
        assert code == 0, err
        assert dims(out) == [4, 3, 114, 114]
        data = json.loads(report.read_text())
        assert any(note.startswith("fixed input shapes (--input-shape, as ATC fixes them)") for note in data["notes"])
        assert data["verification"]["inputs"] == [{"image": [4, 3, 114, 114]}]


def test_verify_shape_only_shapes_the_inputs(cli, torch_model, tmp_path):
    source = torch_model("srnet", 11, dynamic_batch=True)
    out, report = tmp_path / "o.onnx", tmp_path / "r.json"
    code, _, err = cli("optimize", source, "-o", out, "--verify-shape", "image:5,3,114,114", "--report", report)
    assert code == 0, err
    assert dims(out)[0] == "batch"
    data = json.loads(report.read_text())["verification"]
    assert data["inputs"] == [{"image": [5, 3, 114, 114]}] and data["shapes"] == "--verify-shape"


def test_npz_inputs_work_for_a_dynamic_model(cli, torch_model, tmp_path):
    source = torch_model("srnet", 11, dynamic_batch=True)
    static = dims(source)[1:]
    np.savez(tmp_path / "in.npz", image=np.random.default_rng(1).standard_normal([3, *static]).astype(np.float32))
    out, report = tmp_path / "o.onnx", tmp_path / "r.json"
    code, _, err = cli("optimize", source, "-o", out, "--inputs", tmp_path / "in.npz", "--report", report)
    assert code == 0, err
    assert dims(out)[0] == "batch"
    assert json.loads(report.read_text())["verification"]["inputs"] == [{"image": [3, *static]}]


def guarded_model():
    """y = If(sum(x) > 1000) then Relu(x) else Neg(x): random normal inputs always take 'else'."""
    then = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["t"], name="then_relu")],
        "then",
        [],
        [helper.make_tensor_value_info("t", TensorProto.FLOAT, [2, 3])],
    )
    other = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["e"], name="else_neg")],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2, 3])],
    )
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0, name="sum"),
        helper.make_node("Greater", ["total", "limit"], ["big"], name="gt"),
        helper.make_node("If", ["big"], ["y"], then_branch=then, else_branch=other, name="guard"),
    ]
    return make_model(
        nodes, [("x", [2, 3])], [("y", [2, 3])], initializers=[("limit", np.array(1000.0, np.float32))]
    )


class BreakRelu(NodePass):
    """Test pass: turns every Relu into a Sigmoid (wrong wherever it runs)."""

    name = "test-break-relu"
    summary = "Test: Relu -> Sigmoid"

    def rewrite(self, node, model, ctx):
        if node.op_type == "Relu":
            node.op_type = "Sigmoid"
            return Change("relu -> sigmoid", (node.name,))
        return None


def test_a_rewrite_in_a_branch_the_inputs_never_take_is_caught_and_dropped(cli, tmp_path):
    source = save(guarded_model(), tmp_path / "m.onnx")
    out, report = tmp_path / "o.onnx", tmp_path / "r.json"
    with registered(BreakRelu):
        code, stdout, err = cli("optimize", source, "-o", out, "--passes", "test-break-relu", "--report", report)
    assert code == 0, err
    data = json.loads(report.read_text())
    [record, *_] = data["passes"]
    assert record["status"] == "dropped"
    assert record["reason"].startswith("broke If 'guard' (main graph): then: forced, differs: y (max abs diff")
    [guard] = data["verification"]["branches"]["ifs"]
    assert [side["status"] for side in guard["sides"]] == ["matched", "matched"]
    assert [side["taken_by_inputs"] for side in guard["sides"]] == [False, True]
    assert "If branches: 1 Ifs, 2 sides matched, 0 differ, 0 not exercised" in stdout
    written = ir.load(out)
    [node] = [n for n in written.graph if n.op_type == "If"]
    assert [n.op_type for n in node.attributes["then_branch"].as_graph()] == ["Relu"]


def test_the_original_runs_beside_the_passes_on_all_cores_but_one(cli, examples, tmp_path, monkeypatch):
    """The original's session runs in a thread while the passes go on: it leaves them a core; the
    optimised model's session, which nothing else waits beside, has onnxruntime's default."""
    import os
    import threading

    from optimizer import ort_session
    from optimizer.optimize import spare_cores

    made, real = [], ort_session.cpu_session

    def recording(source, options):
        made.append((threading.current_thread() is threading.main_thread(), options.intra_op_num_threads))
        return real(source, options)

    monkeypatch.setattr(ort_session, "cpu_session", recording)
    code, _, err = cli("optimize", examples / "skunit_opset11.onnx", "-o", tmp_path / "o.onnx", "-q")
    assert code == 0, err
    assert made == [(False, spare_cores()), (True, 0)]
    assert spare_cores() == max(1, len(os.sched_getaffinity(0)) - 1)
