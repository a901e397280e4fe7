"""The streamed save (optimizer.proto_stream) writes the same ModelProto as onnx-ir's, and the
weightless skeletons the checker sees reject what the checker rejects."""

import io

import ml_dtypes
import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import TensorProto, helper, numpy_helper

from optimizer.errors import UserError
from optimizer.modelio import check_model, load_model, save_model
from optimizer.proto_stream import write_model
from optimizer.skeleton import LARGE_ELEMENTS, skeleton_proto

ARRAYS = {
    "f32": np.arange(600, dtype=np.float32).reshape(20, 30),
    "f16": np.ones((40, 40), np.float16),
    "i64": np.arange(600, dtype=np.int64),
    "flags": np.arange(2000) % 3 == 0,
    "bf16": np.ones((30, 30), ml_dtypes.bfloat16),
    "u8": np.arange(3000, dtype=np.uint8) % 7,
    "strided": np.arange(2400, dtype=np.float32).reshape(40, 60)[:, ::2],  # not contiguous
    "small": np.ones(3, np.float32),
    "i4": np.zeros(4000, ml_dtypes.int4),  # 4-bit: packed, left to onnx-ir
}


def model_with_weights() -> ir.Model:
    """A main graph holding every kind of weight, and an If whose branch has a large weight of its own."""
    then_weight = numpy_helper.from_array(np.full((50, 50), 2.0, np.float32), "then_w")
    branch = helper.make_graph([helper.make_node("Add", ["x", "then_w"], ["t"])], "then", [],
                               [helper.make_tensor_value_info("t", TensorProto.FLOAT, [50, 50])], [then_weight])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e"])], "else", [],
                              [helper.make_tensor_value_info("e", TensorProto.FLOAT, [50, 50])])
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=other)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [50, 50]),
                                            helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [50, 50])])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=10)
    proto.metadata_props.add(key="author", value="tests")
    model = ir.serde.deserialize_model(proto)
    for name, array in ARRAYS.items():
        tensor = ir.tensor(array, name=name)
        model.graph.initializers.add(ir.Value(name=name, shape=tensor.shape, type=ir.TensorType(tensor.dtype),
                                              const_value=tensor))
    return model


def canonical(proto: onnx.ModelProto) -> tuple:
    """The model's fields with the main graph's initializers by name and value_info left out
    (onnx-ir writes value_info for initializers, which the tensors already declare)."""
    copy = onnx.ModelProto()
    copy.CopyFrom(proto)
    tensors = {tensor.name: tensor.SerializeToString() for tensor in copy.graph.initializer}
    del copy.graph.initializer[:]
    del copy.graph.value_info[:]
    return copy.SerializeToString(deterministic=True), tensors


def test_the_streamed_model_is_onnx_irs_model():
    model = model_with_weights()
    order = list(model.graph.initializers)
    stream = io.BytesIO()
    write_model(model, stream)
    assert list(model.graph.initializers) == order  # the model is left as it was
    written = onnx.load_from_string(stream.getvalue())
    assert canonical(written) == canonical(ir.serde.serialize_model(model))
    for name, array in ARRAYS.items():
        np.testing.assert_array_equal(ir.serde.deserialize_tensor(
            next(t for t in written.graph.initializer if t.name == name)).numpy(), array)


def test_written_from_the_checked_skeleton_it_is_the_same_model():
    """The skeleton the checker saw serves the save: the same bytes as without it, the stand-in
    inputs gone (the 4-bit weight, which is not streamed, is serialised into it)."""
    model = model_with_weights()
    model.graph.inputs.append(model.graph.initializers["u8"])  # a large initializer that is also an input
    plain, reused = io.BytesIO(), io.BytesIO()
    write_model(model, plain)
    write_model(model, reused, check_model(model))
    assert reused.getvalue() == plain.getvalue()  # whichever way, the same bytes
    written = onnx.load_from_string(reused.getvalue())
    assert canonical(written) == canonical(ir.serde.serialize_model(model))
    assert [value.name for value in written.graph.input] == ["x", "c", "u8"]
    onnx.checker.check_model(written, full_check=True)


def test_save_model_streams_and_onnxruntime_runs_the_result(tmp_path):
    import onnxruntime as ort

    model = model_with_weights()
    path = save_model(model, tmp_path / "m.onnx")[0]
    onnx.checker.check_model(str(path), full_check=True)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.ones((50, 50), np.float32)
    np.testing.assert_array_equal(session.run(None, {"x": x, "c": np.array(True)})[0], x + 2)


def test_the_skeleton_holds_no_large_weight_and_checks_like_the_model():
    model = model_with_weights()
    skeleton = skeleton_proto(model)
    large = {name for name, array in ARRAYS.items() if array.size > LARGE_ELEMENTS}
    assert large == {"f16", "flags", "u8", "strided", "i4"}
    assert {t.name for t in skeleton.graph.initializer} == set(ARRAYS) - large
    assert large <= {i.name for i in skeleton.graph.input}
    onnx.checker.check_model(skeleton)
    assert model.graph.initializers["f32"].const_value.numpy()[1, 2] == 32  # the weights were put back
    broken = model_with_weights()
    broken.graph.node(0).attributes.pop("else_branch")
    with pytest.raises(onnx.checker.ValidationError):
        check_model(broken)


def test_a_model_the_checker_rejects_is_refused_at_load_though_its_weights_are_not_checked(tmp_path):
    weight = numpy_helper.from_array(np.ones((64, 64), np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("Relu", ["y"], ["z"], alpha=1.0)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 64])], [weight])
    path = tmp_path / "bad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    with pytest.raises(UserError, match="invalid ONNX model.*alpha"):
        load_model(path)


def test_initializers_that_are_also_inputs_keep_one_input(tmp_path):
    weight = numpy_helper.from_array(np.ones((64, 64), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64]),
                               helper.make_tensor_value_info("w", TensorProto.FLOAT, [64, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])], [weight])
    path = tmp_path / "ir3.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)], ir_version=3), str(path))
    model = load_model(path)  # IR 3: every initializer is an input too
    assert [i.name for i in skeleton_proto(model).graph.input] == ["x", "w"]
