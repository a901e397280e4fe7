"""Verification shapes for dynamic models: derived, run-checked, at two sizes; npz inputs of any size."""

import numpy as np
import onnx_ir as ir
import pytest
from helpers import make_model
from onnx import TensorProto, helper, numpy_helper

from optimizer.errors import UserError
from optimizer.verify import declared_inputs, input_specs, load_inputs, random_inputs, run_onnxruntime
from optimizer.verify_shapes import verification_shapes


def model(nodes, inputs, initializers=()):
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    proto = make_model(nodes, inputs, [], initializers=initializers)
    proto.graph.output.extend(outputs)
    return ir.serde.deserialize_model(proto)


def reshape_model(data_shape, target):
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Reshape", ["r", "target"], ["y"])]
    return model(nodes, [("x", data_shape)], [("target", np.array(target, np.int64))])


def runs(model_, shapes):
    run_onnxruntime(model_, random_inputs(input_specs(model_, shapes)))
    return True


def test_a_dynamic_batch_and_a_reshape_that_needs_a_size_get_two_sets_that_run():
    m = reshape_model(["batch", "n"], [-1, 64, 2, 2, 19, 19])
    with pytest.raises(UserError, match="dynamic dimension 'batch'"):
        input_specs(m, {})  # what verification did before: refuse
    sets = verification_shapes(m, {})
    assert sets == [{"x": [1, 92416]}, {"x": [2, 92416]}]  # n from the Reshape, batch at two sizes
    assert all(runs(m, shapes) for shapes in sets)


def test_height_and_width_a_reshape_implies_leave_the_batch_free():
    m = reshape_model(["batch", 64, "h", "w"], [-1, 64, 2, 2, 19, 19])
    assert verification_shapes(m, {}) == [{"x": [1, 64, 38, 38]}, {"x": [2, 64, 38, 38]}]


def test_dims_a_constant_shape_fixes_give_one_set():
    fill = helper.make_node("ConstantOfShape", ["shape"], ["k"], value=numpy_helper.from_array(np.ones(1, np.float32)))
    concat = helper.make_node("Concat", ["x", "k"], ["y"], axis=1)
    m = model([fill, concat], [("x", ["batch", 3, "h", "w"])], [("shape", np.array([1, 3, 8, 8]))])
    assert verification_shapes(m, {}) == [{"x": [1, 3, 8, 8]}]  # batch 2 or 16x16 do not run


def test_same_named_dims_share_a_size_and_given_shapes_pin_them():
    m = model([helper.make_node("Add", ["a", "b"], ["y"])], [("a", ["batch", 4]), ("b", ["batch", 4])])
    assert verification_shapes(m, {}) == [{"a": [1, 4], "b": [1, 4]}, {"a": [2, 4], "b": [2, 4]}]
    assert verification_shapes(m, {"a": [5, 4]}) == [{"a": [5, 4], "b": [5, 4]}]


def test_distinct_dims_get_distinct_sizes_in_the_second_set_and_unnamed_dims_are_sized():
    m = model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["batch", "seq", None])])
    assert verification_shapes(m, {}) == [{"x": [1, 1, 1]}, {"x": [2, 3, 4]}]


def test_a_static_model_gets_one_set():
    m = model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2, 3])])
    assert verification_shapes(m, {}) == [{"x": [2, 3]}]


def test_when_nothing_runs_the_error_names_the_dims_and_the_flag():
    m = reshape_model(["h", 3], [5, 7])  # 3h is never 35
    with pytest.raises(UserError) as error:
        verification_shapes(m, {})
    message = str(error.value)
    assert message.startswith(
        "cannot find input shapes the model runs with for 'h' (input 'x', axis 0); "
        "give their sizes with --verify-shape 'x:<h>,3' (tried 3 candidates; with every dim 1: "
    )
    assert "Reshape" in message and "\n" not in message


def test_bad_given_shapes_and_inputs_without_shape_are_refused():
    m = model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["batch", 3])])
    with pytest.raises(UserError, match="--verify-shape gives input 'x' rank 1; the model has rank 2"):
        verification_shapes(m, {"x": [4]})
    with pytest.raises(UserError, match="--verify-shape names 'z', which is not an input"):
        verification_shapes(m, {"z": [4]})
    shapeless = model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2, 3])])
    shapeless.graph.inputs[0].shape = None
    with pytest.raises(UserError, match="input 'x' has no shape; give it with --verify-shape x:"):
        verification_shapes(shapeless, {})


def test_npz_inputs_for_a_dynamic_model_take_their_shapes_from_the_arrays(tmp_path):
    m = model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["batch", 3])])
    specs = declared_inputs(m)
    assert [(spec.name, spec.shape) for spec in specs] == [("x", ["batch", 3])]
    np.savez(tmp_path / "good.npz", x=np.ones((5, 3), np.float32))
    assert load_inputs(tmp_path / "good.npz", specs)["x"].shape == (5, 3)
    np.savez(tmp_path / "rank.npz", x=np.ones(3, np.float32))
    with pytest.raises(UserError, match=r"input 'x' has shape \[3\]; the model wants \[batch, 3\]"):
        load_inputs(tmp_path / "rank.npz", specs)
    np.savez(tmp_path / "static.npz", x=np.ones((5, 4), np.float32))
    with pytest.raises(UserError, match=r"input 'x' has shape \[5, 4\]; the model wants \[batch, 3\]"):
        load_inputs(tmp_path / "static.npz", specs)
