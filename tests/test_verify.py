import json

import numpy as np
import onnx_ir as ir
import pytest
from helpers import make_model, save
from onnx import TensorProto, helper

from optimizer.errors import UserError
from optimizer.passapi import Change, Pass, PassResult
from optimizer.testing import registered
from optimizer.verify import InputSpec, compare_outputs, input_specs, load_inputs, random_inputs


def mixed_inputs_model():
    inputs = [
        helper.make_tensor_value_info("f", TensorProto.FLOAT, ["batch", 3]),
        helper.make_tensor_value_info("h", TensorProto.FLOAT16, [2, 2]),
        helper.make_tensor_value_info("i", TensorProto.INT64, [4]),
        helper.make_tensor_value_info("b", TensorProto.BOOL, [3]),
    ]
    outputs = [
        helper.make_tensor_value_info(n, t, s)
        for n, t, s in [
            ("fo", TensorProto.FLOAT, ["batch", 3]),
            ("ho", TensorProto.FLOAT16, [2, 2]),
            ("io", TensorProto.INT64, [4]),
            ("bo", TensorProto.BOOL, [3]),
        ]
    ]
    nodes = [
        helper.make_node("Relu", ["f"], ["fo"]),
        helper.make_node("Neg", ["h"], ["ho"]),
        helper.make_node("Neg", ["i"], ["io"]),
        helper.make_node("Not", ["b"], ["bo"]),
    ]
    return ir.serde.deserialize_model(make_model(nodes, inputs, outputs))


def test_inputs_take_shapes_from_the_flag_or_the_model_and_name_dynamic_dims():
    model = mixed_inputs_model()
    with pytest.raises(UserError, match=r"input 'f' has dynamic dimension 'batch' \(axis 0\)"):
        input_specs(model, {})
    specs = input_specs(model, {"f": [5, 3]})
    assert [(s.name, str(s.dtype), s.shape) for s in specs] == [
        ("f", "float32", [5, 3]),
        ("h", "float16", [2, 2]),
        ("i", "int64", [4]),
        ("b", "bool", [3]),
    ]
    with pytest.raises(UserError, match="rank 1; the model has rank 2"):
        input_specs(model, {"f": [5]})


def test_random_inputs_are_seeded_dtype_correct_and_in_a_safe_range():
    specs = input_specs(mixed_inputs_model(), {"f": [64, 3]})
    a, b, c = random_inputs(specs, 0), random_inputs(specs, 0), random_inputs(specs, 1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["f"], c["f"])
    assert {k: str(v.dtype) for k, v in a.items()} == {"f": "float32", "h": "float16", "i": "int64", "b": "bool"}
    assert a["f"].shape == (64, 3) and a["f"].std() > 0.5
    assert a["i"].min() >= 0 and a["i"].max() < 3


def test_compare_reports_abs_rel_cosine_and_tolerance_by_dtype():
    ref = {"y": np.array([1.0, -2.0, 4.0], np.float32)}
    close = {"y": np.array([1.00001, -2.0, 4.0], np.float32)}
    far = {"y": np.array([1.1, -2.0, 4.0], np.float32)}
    [ok] = compare_outputs(ref, close)
    assert ok.ok and ok.rtol == 1e-4 and ok.atol == 1e-5
    [bad] = compare_outputs(ref, far)
    assert not bad.ok
    assert bad.max_abs_diff == pytest.approx(0.1, rel=1e-5)
    assert bad.max_rel_diff == pytest.approx(0.1, rel=1e-4)
    assert 0.99 < bad.cosine < 1.0
    [loose] = compare_outputs(ref, far, rtol=0.2)
    assert loose.ok
    [half] = compare_outputs({"y": np.array([1.0], np.float16)}, {"y": np.array([1.005], np.float16)})
    assert half.ok and half.rtol == 1e-2


def test_integers_must_match_exactly_and_nan_positions_must_agree():
    [ints] = compare_outputs({"i": np.array([1, 2], np.int64)}, {"i": np.array([1, 3], np.int64)})
    assert not ints.ok and ints.max_abs_diff == 1
    [nan] = compare_outputs({"y": np.array([np.nan, 1.0], np.float32)}, {"y": np.array([1.0, 1.0], np.float32)})
    assert not nan.ok and nan.problem == "NaN in different places"
    [same_nan] = compare_outputs({"y": np.array([np.nan, np.inf])}, {"y": np.array([np.nan, np.inf])})
    assert same_nan.ok


def test_shape_or_dtype_mismatch_and_missing_outputs_fail():
    [shape] = compare_outputs({"y": np.zeros((2, 3), np.float32)}, {"y": np.zeros((3, 2), np.float32)})
    assert not shape.ok and shape.problem == "float32[3, 2] instead of float32[2, 3]"
    [missing] = compare_outputs({"y": np.zeros(2, np.float32)}, {})
    assert not missing.ok and missing.problem == "missing from the optimised model"


def test_npz_inputs_are_checked_against_the_model(tmp_path):
    specs = [InputSpec("x", np.dtype("float32"), [2])]
    good = tmp_path / "good.npz"
    np.savez(good, x=np.ones(2, np.float32))
    assert load_inputs(good, specs)["x"].tolist() == [1.0, 1.0]
    np.savez(tmp_path / "wrong.npz", y=np.ones(2, np.float32))
    with pytest.raises(UserError, match="no array for input 'x' \\(has: y\\)"):
        load_inputs(tmp_path / "wrong.npz", specs)
    np.savez(tmp_path / "dtype.npz", x=np.ones(2, np.int32))
    with pytest.raises(UserError, match="input 'x' is int32; the model wants float32"):
        load_inputs(tmp_path / "dtype.npz", specs)
    (tmp_path / "junk.npz").write_text("junk")
    with pytest.raises(UserError, match="not a readable .npz"):
        load_inputs(tmp_path / "junk.npz", specs)


class ReluToSigmoid(Pass):
    """Test pass that breaks numerics: every Relu becomes a Sigmoid."""

    name = "test-relu-to-sigmoid"
    summary = "Test: wrong rewrite of Relu"
    addresses = ("Relu",)

    def run(self, model, ctx):
        changes = []
        for node in list(model.graph):
            if node.op_type == "Relu":
                node.op_type = "Sigmoid"
                changes.append(Change("relu -> sigmoid", (node.name,)))
        return PassResult(model, changes)


def two_output_model(tmp_path):
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Abs", ["x"], ["a"], name="abs"),
        helper.make_node("Identity", ["r"], ["y"], name="id"),
    ]
    return save(make_model(nodes, [("x", [4, 8])], [("y", [4, 8]), ("a", [4, 8])]), tmp_path / "m.onnx")


def test_a_pass_that_breaks_numerics_is_found_dropped_and_reported(cli, tmp_path):
    source = two_output_model(tmp_path)
    out, report = tmp_path / "o.onnx", tmp_path / "r.json"
    code, stdout, err = cli(
        "optimize", source, "-o", out, "--passes", "test-relu-to-sigmoid,simplify", "--report", report
    )
    assert code == 0, err
    data = json.loads(report.read_text())
    broken = data["passes"][0]
    assert broken["name"] == "test-relu-to-sigmoid" and broken["status"] == "dropped"
    assert broken["reason"].startswith("broke y (max abs diff ")
    assert "a (" not in broken["reason"]
    assert data["passes"][1]["name"] == "simplify" and data["passes"][1]["status"] == "changed"
    assert data["verification"]["ok"] is True
    import onnx

    assert [n.op_type for n in onnx.load(str(out)).graph.node] == ["Relu", "Abs"]  # simplify kept, Sigmoid dropped
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".onnx-opt-")]  # the failed stage went
    assert "dropped" in stdout
    code, _, _ = cli("optimize", source, "-o", out, "--passes", "test-relu-to-sigmoid", "--strict")
    assert code == 1


def test_no_verify_writes_whatever_the_passes_did(cli, tmp_path):
    source = two_output_model(tmp_path)
    code, _, _ = cli("optimize", source, "-o", tmp_path / "o.onnx", "--passes", "test-relu-to-sigmoid", "--no-verify")
    assert code == 0
    import onnx

    assert onnx.load(str(tmp_path / "o.onnx")).graph.node[0].op_type == "Sigmoid"


def test_verification_on_real_inputs(cli, tmp_path):
    source = two_output_model(tmp_path)
    np.savez(tmp_path / "in.npz", x=np.full((4, 8), -1.0, np.float32))
    code, _, err = cli(
        "optimize",
        source,
        "-o",
        tmp_path / "o.onnx",
        "--passes",
        "test-relu-to-sigmoid",
        "--inputs",
        tmp_path / "in.npz",
        "--report",
        tmp_path / "r.json",
    )
    assert code == 0, err
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["verification"]["source"] == str(tmp_path / "in.npz")
    assert data["passes"][0]["status"] == "dropped"
    assert data["passes"][0]["reason"] == "broke y (max abs diff 0.269, max rel diff inf)"  # reference all 0


@pytest.fixture(autouse=True)
def _test_passes():
    with registered(ReluToSigmoid):
        yield
