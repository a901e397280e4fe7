import numpy as np
import onnx
import onnx_ir as ir
import pytest
import torch
from helpers import make_model, op_types
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper
from torch import nn

from optimizer.manager import SKIPPED, PassManager
from optimizer.passapi import PassContext
from optimizer.targets import load_target
from optimizer.testing import ANY, check_pass, registered
from passes.reflect_pad_to_slices import ReflectPadToSlices

# Slices and Concats move elements without arithmetic: the results must be bit-identical.
EXACT = {"rtol": 0.0, "atol": 0.0}


def pad_model(shape, pads, opset=13, axes=None, mode="reflect", out=None, pads_node=None):
    """x -> Pad(mode) -> y, with the pads as attribute (opset < 11) or constant input (opset >= 11)."""
    inits = []
    if opset < 11:
        pad = helper.make_node("Pad", ["x"], ["y"], name="pad", mode=mode, pads=pads)
    else:
        inputs = ["x", "pads"] + (["", "axes"] if axes is not None else [])
        pad = helper.make_node("Pad", inputs, ["y"], name="pad", mode=mode)
        inits.append(("pads", np.array(pads, np.int64)))
        if axes is not None:
            inits.append(("axes", np.array(axes, np.int64)))
    nodes = [pad] if pads_node is None else [pads_node, pad]
    if pads_node is not None:
        inits = [(name, value) for name, value in inits if name != "pads"] + [("pads_in", np.array(pads, np.int64))]
    if out is None:
        static = np.zeros([d if isinstance(d, int) else 1 for d in shape])
        out = list(np.pad(static, _numpy_pads(shape, pads, axes)).shape)
        out = [o if isinstance(d, int) else d for o, d in zip(out, shape, strict=True)]
    return make_model(nodes, [("x", shape)], [("y", out)], initializers=inits, opset=opset)


def _numpy_pads(shape, pads, axes):
    axes = list(range(len(shape))) if axes is None else [a % len(shape) for a in axes]
    widths = [(0, 0)] * len(shape)
    for i, axis in enumerate(axes):
        widths[axis] = (max(pads[i], 0), max(pads[i + len(axes)], 0))
    return widths


@pytest.mark.parametrize("opset", [10, 11, 13, 18, 19])
def test_two_padded_axes_become_slices_and_concats(opset):
    result = check_pass(ReflectPadToSlices, pad_model([1, 2, 5, 6], [0, 0, 2, 3, 0, 0, 1, 2], opset),
                        expect_changes=1, **EXACT)
    assert [t for t in op_types(result.model) if t != "Constant"] == ["Slice", "Slice", "Concat"] * 2


def test_matches_numpy_reflect_with_pads_up_to_length_minus_one():
    model = pad_model([4, 4], [3, 0, 0, 3])
    result = check_pass(ReflectPadToSlices, model, expect_changes=1, **EXACT)
    from optimizer.verify import run_onnxruntime

    x = np.arange(16, dtype=np.float32).reshape(4, 4)
    expected = np.pad(x, [(3, 0), (0, 3)], mode="reflect")
    np.testing.assert_array_equal(run_onnxruntime(result.model, {"x": x})["y"], expected)


def test_one_side_only_gives_one_slice():
    result = check_pass(ReflectPadToSlices, pad_model([1, 3, 7], [0, 0, 0, 0, 0, 4]), expect_changes=1, **EXACT)
    assert [t for t in op_types(result.model) if t != "Constant"] == ["Slice", "Concat"]


def test_opset_18_axes_negative_and_a_dynamic_unpadded_batch():
    model = pad_model(["n", 3, 6], [2, 1], 18, axes=[-1])
    result = check_pass(ReflectPadToSlices, model, verify_shapes={"x": [2, 3, 6]}, expect_changes=1, **EXACT)
    [concat] = [n for n in result.model.graph if n.op_type == "Concat"]
    assert concat.attributes.get_int("axis") == 2


def test_zero_pads_become_identity():
    result = check_pass(ReflectPadToSlices, pad_model([2, 3], [0, 0, 0, 0]), expect_changes=1, **EXACT)
    assert op_types(result.model) == ["Identity"]


def test_other_modes_are_no_candidates():
    check_pass(ReflectPadToSlices, pad_model([2, 3], [1, 1, 1, 1], mode="edge"), expect_changes=0)


@pytest.mark.parametrize(
    "model, reason",
    [
        (pad_model([2, 3], [0, 0, 0, 0], pads_node=helper.make_node("Abs", ["pads_in"], ["pads"], name="abs")),
         "the pads are not a constant (the simplify pass folds computed pads)"),
        (pad_model([2, 5], [0, -1, 0, 2], out=[2, 6]),
         "negative pads axis 0: 0/0, axis 1: -1/2 crop; only growing pads are rewritten"),
        (pad_model([2, "w"], [0, 1, 0, 1], out=[2, "w2"]),
         "axis 1 is padded and its length is not static; reflect needs it to exceed the pads"),
    ],
    ids=["computed pads", "negative", "dynamic padded axis"],
)
def test_refusals(model, reason):
    dynamic = model.graph.input[0].type.tensor_type.shape.dim[1].dim_param
    verify = {"x": [2, 5]} if dynamic else None
    result = check_pass(ReflectPadToSlices, model, expect_changes=0, expect_skips=1, verify_shapes=verify)
    assert result.record.skips[0]["reason"] == reason


def test_refuses_computed_axes():
    model = pad_model([2, 4], [1, 1], 18, axes=[1])
    model.graph.node.insert(0, helper.make_node("Identity", ["axes"], ["axes_id"], name="id"))
    model.graph.node[1].input[3] = "axes_id"
    result = check_pass(ReflectPadToSlices, model, expect_changes=0, expect_skips=1)
    assert result.record.skips[0]["reason"] == "the axes are not a constant"


def run_pass(model):
    """The pass's record, without the kit's checks (onnxruntime cannot run these models)."""
    with registered(ReflectPadToSlices):
        run = PassManager([ReflectPadToSlices.name], PassContext(load_target("onnxruntime")))
        return run.run(ir.serde.deserialize_model(model)).records[0]


def test_refuses_a_pad_as_long_as_its_axis():
    """onnxruntime refuses to load it ("pre-pad (3) exceeds maximum allowed (2)"), numpy reflects twice."""
    record = run_pass(pad_model([2, 3], [0, 3, 0, 0]))
    assert [s["reason"] for s in record.skips] == ["pads (3, 0) on axis 1 are not smaller than its length 3"]


def test_refuses_axes_of_a_tensor_of_unknown_rank():
    model = pad_model([2, 4], [1, 1], 18, axes=[-1])
    model.graph.input[0].type.tensor_type.ClearField("shape")
    model.graph.output[0].type.tensor_type.ClearField("shape")
    assert [s["reason"] for s in run_pass(model).skips] == ["the rank of the padded tensor is unknown"]


def test_requires_opset_10():
    record = run_pass(pad_model([2, 3], [1, 1, 1, 1], 9))
    assert record.status == SKIPPED and record.reason.startswith("needs opset >= 10")


@pytest.mark.parametrize("opset", [10, 13])
def test_torch_reflection_pad2d(tmp_path, opset):
    from torch_models import export

    torch.manual_seed(0)
    module = nn.Sequential(nn.ReflectionPad2d((1, 2, 3, 1)), nn.Conv2d(2, 2, 3))
    model = onnx.load(str(export(module, tmp_path / "reflect.onnx", (1, 2, 8, 9), opset)))
    if opset >= 11:  # torch computes the pads with a subgraph: refused until simplify folds it
        check = check_pass(ReflectPadToSlices, model, expect_changes=0, expect_skips=1)
        assert check.record.skips[0]["reason"].startswith("the pads are not a constant")
        run = PassManager(["simplify"], PassContext(load_target("onnxruntime")))
        model = run.run(ir.serde.deserialize_model(model)).model
    result = check_pass(ReflectPadToSlices, model, expect_changes=1, **EXACT)
    assert "Pad" not in op_types(result.model)


FIRED = []


@settings(max_examples=20, deadline=None)
@given(data=st.data(), opset=st.sampled_from([10, 11, 18]), rank=st.integers(1, 4))
def _reflect_pads_keep_the_outputs(data, opset, rank):
    shape = data.draw(st.lists(st.integers(2, 5), min_size=rank, max_size=rank))
    pads = [data.draw(st.integers(0, d - 1)) for d in shape] + [data.draw(st.integers(0, d - 1)) for d in shape]
    result = check_pass(ReflectPadToSlices, pad_model(shape, pads, opset), expect_changes=ANY, expect_skips=ANY,
                        scopes=("function",), **EXACT)
    FIRED.append(result.record.changes == 1 and "Pad" not in op_types(result.model))


def test_property_random_reflect_pads_keep_their_outputs():
    FIRED.clear()
    _reflect_pads_keep_the_outputs()
    assert sum(FIRED) / len(FIRED) >= 0.9, FIRED  # every drawn pad is < its axis: all fire
