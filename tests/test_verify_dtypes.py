"""Every dtype and kind of output onnxruntime returns is run and compared with a stated rule."""

import json
from dataclasses import asdict

import ml_dtypes
import numpy as np
import onnx_ir as ir
import pytest
from helpers import make_model, save
from onnx import TensorProto, helper

from optimizer.verify import EXACT, WITHIN_TOLERANCE, InputSpec, compare_outputs, random_inputs, run_onnxruntime


def tensor(name, elem_type, shape):
    return helper.make_tensor_value_info(name, elem_type, shape)


def test_complex_outputs_that_differ_only_in_the_imaginary_part_fail():
    # onnxruntime (1.32, CPU) loads no model with a complex tensor, so this compares arrays directly.
    reference = {"z": np.array([1 + 1j, 2 - 1j, -3 + 0j], np.complex64)}
    [check] = compare_outputs(reference, {"z": np.array([1 + 1.5j, 2 - 1j, -3 + 0j], np.complex64)})
    assert not check.ok
    assert check.max_abs_diff == pytest.approx(0.5)
    assert check.max_rel_diff == pytest.approx(0.5 / abs(1 + 1j))
    assert (check.rule, check.rtol, check.atol) == (WITHIN_TOLERANCE, 1e-4, 1e-5)  # like float32
    [close] = compare_outputs(reference, {"z": reference["z"] * np.complex64(1 + 1e-6j)})
    assert close.ok
    [wide] = compare_outputs({"z": reference["z"].astype(np.complex128)}, {"z": reference["z"].astype(np.complex128)})
    assert wide.ok and wide.rtol == 1e-7


def test_complex_cosine_sees_a_phase_error():
    a = np.array([1 + 2j, 3 - 1j, -2 + 0.5j], np.complex128)
    rotated = a * np.exp(0.3j)
    [check] = compare_outputs({"z": a}, {"z": rotated})
    assert check.cosine == pytest.approx(np.cos(0.3))  # Re<a, b> / (|a| |b|); |<a, b>| would give 1
    assert not check.ok


def cast_model():
    targets = {
        "bf16": TensorProto.BFLOAT16,
        "f8e4m3": TensorProto.FLOAT8E4M3FN,
        "f8e5m2": TensorProto.FLOAT8E5M2,
        "i4": TensorProto.INT4,
    }
    nodes = [helper.make_node("Cast", ["x"], [name], to=to) for name, to in targets.items()]
    outputs = [tensor(name, to, [4]) for name, to in targets.items()] + [tensor("f", TensorProto.FLOAT, [4])]
    nodes.append(helper.make_node("Identity", ["x"], ["f"]))
    return ir.serde.deserialize_model(make_model(nodes, [("x", [4])], outputs, opset=21, ir_version=10))


def test_bfloat16_float8_and_int4_outputs_come_back_typed_not_raw_or_crashing():
    outputs = run_onnxruntime(cast_model(), {"x": np.array([1.0, -2.0, 0.3, 7.0], np.float32)})
    assert {name: str(array.dtype) for name, array in outputs.items()} == {
        "bf16": "bfloat16",
        "f8e4m3": "float8_e4m3fn",  # onnxruntime's numpy conversion gives raw uint8 for this one
        "f8e5m2": "float8_e5m2",
        "i4": "int4",
        "f": "float32",
    }
    assert outputs["f8e4m3"].astype(np.float32).tolist() == [1.0, -2.0, 0.3125, 7.0]
    assert outputs["i4"].astype(np.int8).tolist() == [1, -2, 0, 7]
    checks = {check.name: check for check in compare_outputs(outputs, outputs)}
    assert all(check.ok for check in checks.values())
    assert (checks["bf16"].rule, checks["bf16"].rtol, checks["bf16"].atol) == (WITHIN_TOLERANCE, 1e-2, 1e-2)
    assert (checks["i4"].rule, checks["i4"].rtol, checks["i4"].atol) == (EXACT, 0.0, 0.0)


def test_float8_allows_one_step_of_the_format_and_no_more():
    def check(values):
        expected = np.array([2.0, 0.5], ml_dtypes.float8_e4m3fn)
        [result] = compare_outputs({"y": expected}, {"y": np.array(values, ml_dtypes.float8_e4m3fn)})
        return result

    assert check([2.25, 0.5]).ok  # the next e4m3 value after 2.0
    assert not check([2.5, 0.5]).ok  # two steps
    assert check([2.25, 0.5]).rtol == 0.125


def test_bfloat16_inputs_are_made_and_fed():
    spec = InputSpec("x", np.dtype(ml_dtypes.bfloat16), [3])
    feeds = random_inputs([spec], seed=0)
    assert feeds["x"].dtype == ml_dtypes.bfloat16
    nodes = [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)]
    model = make_model(nodes, [tensor("x", TensorProto.BFLOAT16, [3])], [("y", [3])])
    outputs = run_onnxruntime(ir.serde.deserialize_model(model), feeds)
    assert outputs["y"].tolist() == feeds["x"].astype(np.float32).tolist()


def test_sequence_outputs_are_compared_element_by_element():
    nodes = [helper.make_node("SequenceConstruct", ["x", "x"], ["s"])]
    model = make_model(nodes, [("x", [3])], [helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, [3])])
    reference = run_onnxruntime(ir.serde.deserialize_model(model), {"x": np.array([1.0, 2.0, 3.0], np.float32)})
    assert isinstance(reference["s"], list) and len(reference["s"]) == 2
    [same] = compare_outputs(reference, reference)
    assert same.ok and same.dtype == "sequence(float32)" and same.shape == [2] and same.rtol == 1e-4
    changed = [reference["s"][0], reference["s"][1] + np.float32(0.5)]
    [differs] = compare_outputs(reference, {"s": changed})
    assert not differs.ok and differs.max_abs_diff == pytest.approx(0.5) and differs.problem is None
    [shorter] = compare_outputs(reference, {"s": changed[:1]})
    assert not shorter.ok and shorter.problem == "a sequence of 1 instead of a sequence of 2"
    [reshaped] = compare_outputs(reference, {"s": [changed[0], changed[1][:2]]})
    assert reshaped.problem == "s[1]: float32[2] instead of float32[3]"


def test_empty_optionals_and_maps_are_compared(tmp_path):
    [none] = compare_outputs({"o": None}, {"o": None})
    assert none.ok and none.rule == EXACT
    [filled] = compare_outputs({"o": None}, {"o": np.zeros(2, np.float32)})
    assert not filled.ok and filled.problem == "float32[2] instead of an empty optional"
    zipmap = helper.make_node("ZipMap", ["x"], ["y"], domain="ai.onnx.ml", classlabels_strings=["a", "b"])
    map_type = helper.make_map_type_proto(TensorProto.STRING, helper.make_tensor_type_proto(TensorProto.FLOAT, []))
    model = make_model(
        [zipmap],
        [("x", [2, 2])],
        [helper.make_value_info("y", helper.make_sequence_type_proto(map_type))],
        opset=17,
        extra_opsets=[helper.make_opsetid("ai.onnx.ml", 3)],
    )
    # onnx-ir does not read map types: run the file
    reference = run_onnxruntime(save(model, tmp_path / "zipmap.onnx"), {"x": np.array([[1, 2], [3, 4]], np.float32)})
    assert reference["y"] == [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]
    [same] = compare_outputs(reference, reference)
    assert same.ok and same.dtype == "sequence(map(float32))" and same.rtol == 1e-4
    [differs] = compare_outputs(reference, {"y": [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.5}]})
    assert not differs.ok and differs.max_abs_diff == pytest.approx(0.5)
    [keys] = compare_outputs(reference, {"y": [{"a": 1.0, "c": 2.0}, {"a": 3.0, "b": 4.0}]})
    assert keys.problem == "y[0]: a map with keys ['a', 'c'] instead of a map with keys ['a', 'b']"
    json.dumps([asdict(check) for check in (same, differs, keys)])


def test_strings_integers_and_booleans_are_exact_whatever_the_tolerance_given():
    strings = {"s": np.array(["a", "b"], object)}
    [same] = compare_outputs(strings, {"s": np.array(["a", "b"], object)})
    assert same.ok and (same.rule, same.rtol, same.atol) == (EXACT, 0.0, 0.0)
    [differs] = compare_outputs(strings, {"s": np.array(["a", "c"], object)})
    assert not differs.ok and differs.max_abs_diff == 1.0
    [ints] = compare_outputs({"i": np.array([1, 2], np.int32)}, {"i": np.array([1, 3], np.int32)}, rtol=1.0, atol=1.0)
    assert not ints.ok and (ints.rule, ints.rtol, ints.atol) == (EXACT, 0.0, 0.0)
    [bools] = compare_outputs({"b": np.array([True, False])}, {"b": np.array([True, True])})
    assert not bools.ok and bools.max_abs_diff == 1.0
