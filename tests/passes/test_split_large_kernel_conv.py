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

from optimizer.manager import PassManager
from optimizer.passapi import PassContext
from optimizer.targets import load_target
from optimizer.testing import ANY, check_pass, pattern_model, registered
from optimizer.verify import run_onnxruntime
from passes.split_large_kernel_conv import SplitLargeKernelConv

# The pieces' partial sums are added in another order than the single Conv's (and onnxruntime's
# GEMM blocks them differently): float32 rounding of sums of up to ~100 products of standard
# normals, outputs of size ~1-10. Seen: 9.5e-6 absolute (about 10 ulps of 8); 1e-6 fails.
TOL = {"rtol": 1e-5, "atol": 2e-5}


def conv_model(x_shape, w_shape, opset=13, bias=True, seed=0, **attributes):
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(w_shape).astype(np.float32)]
    if bias:
        weights.append(rng.standard_normal(w_shape[0]).astype(np.float32))
    return pattern_model(lambda op, x: op.Conv(x, *weights, **attributes), {"x": x_shape}, opset=opset)


def convs(result):
    return [list(n.attributes.get_ints("kernel_shape")) for n in result.model.graph if n.op_type == "Conv"]


@pytest.mark.parametrize("opset", [9, 13])
def test_a_1d_conv_with_pads_strides_and_dilations(opset):
    model = conv_model([1, 2, 60], [3, 2, 20], opset, pads=[5, 4], strides=[3], dilations=[2])
    result = check_pass(SplitLargeKernelConv, model, options={"max_kernel": 8}, expect_changes=1, **TOL)
    assert convs(result) == [[7], [7], [6]]
    assert op_types(result.model).count("Add") == 2 and op_types(result.model).count("Slice") == 3
    first, *others = [n for n in result.model.graph if n.op_type == "Conv"]
    assert len(first.inputs) == 3 and all(len(n.inputs) == 2 for n in others)  # the bias once
    assert [list(n.attributes.get_ints("pads")) for n in (first, *others)] == [[5, 0], [0, 0], [0, 4]]
    if opset >= 10:  # the windows of docs/passes.md: x[0:-22], x[9:-8], x[23:]
        slices = [n for n in result.model.graph if n.op_type == "Slice"]
        bounds = [[int(v.producer().attributes["value"].as_tensor().numpy()[0]) for v in n.inputs[1:3]]
                  for n in slices]
        assert bounds == [[0, -22], [9, -8], [23, 2**63 - 1]]


def test_a_2d_grouped_conv_with_both_axes_long_becomes_a_grid():
    model = conv_model([1, 4, 12, 14], [4, 2, 9, 10], pads=[1, 2, 3, 4], group=2)
    result = check_pass(SplitLargeKernelConv, model, options={"max_kernel": 5}, expect_changes=1, **TOL)
    assert convs(result) == [[5, 5], [5, 5], [4, 5], [4, 5]]


def test_the_default_limit_is_255():
    model = conv_model([1, 1, 400], [2, 1, 300], bias=False)
    result = check_pass(SplitLargeKernelConv, model, expect_changes=1, **TOL)
    assert convs(result) == [[150], [150]]
    check_pass(SplitLargeKernelConv, conv_model([1, 1, 400], [2, 1, 255]), expect_changes=0)


def test_a_dynamic_length_needs_no_static_dims():
    model = conv_model([1, 2, "length"], [2, 2, 11], pads=[3, 6], strides=[2])
    result = check_pass(SplitLargeKernelConv, model, options={"max_kernel": 4}, verify_shapes={"x": [1, 2, 30]},
                        expect_changes=1, **TOL)
    for length in (5, 16, 17, 31):  # even and odd remainders of the stride
        x = np.random.default_rng(length).standard_normal((1, 2, length)).astype(np.float32)
        expected = run_onnxruntime(ir.serde.deserialize_model(model), {"x": x})["y"]
        np.testing.assert_allclose(run_onnxruntime(result.model, {"x": x})["y"], expected, **TOL)


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
def test_auto_pad_with_static_dims(auto_pad):
    model = conv_model([1, 2, 9, 23], [2, 2, 3, 10], auto_pad=auto_pad, strides=[1, 2])
    check_pass(SplitLargeKernelConv, model, options={"max_kernel": 4}, expect_changes=1, **TOL)


def test_refuses_same_padding_of_a_dynamic_length():
    model = conv_model([1, 2, "n"], [2, 2, 10], auto_pad="SAME_UPPER")
    result = check_pass(SplitLargeKernelConv, model, options={"max_kernel": 4}, verify_shapes={"x": [1, 2, 20]},
                        expect_changes=0, expect_skips=1)
    assert result.record.skips[0]["reason"] == "auto_pad=SAME_UPPER needs static spatial dims to give explicit pads"


def test_refuses_a_weight_that_is_not_constant():
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv")
    model = make_model([node], [("x", [1, 1, 20]), ("w", [1, 1, 9])], [("y", [1, 1, 12])])
    result = check_pass(SplitLargeKernelConv, model, options={"max_kernel": 4}, expect_changes=0, expect_skips=1)
    reason = "the weight (kernel [9]) is not a constant, so it cannot be cut into pieces"
    assert result.record.skips[0]["reason"] == reason


def run_pass(model, **options):
    """The pass's record, without the kit's checks (onnxruntime cannot run these models)."""
    with registered(SplitLargeKernelConv):
        run = PassManager([SplitLargeKernelConv.name], PassContext(load_target("onnxruntime")),
                          options={SplitLargeKernelConv.name: options})
        return run.run(ir.serde.deserialize_model(model)).records[0]


def test_refuses_a_kernel_shape_that_does_not_match_the_weight_and_a_limit_below_1():
    model = conv_model([1, 1, 20], [1, 1, 9], kernel_shape=[9])
    model.graph.node[0].attribute[0].ints[0] = 8
    assert [s["reason"] for s in run_pass(model, max_kernel=4).skips] == [
        "kernel_shape [8] does not match the weight's [9]"
    ]
    assert [s["reason"] for s in run_pass(conv_model([1, 1, 20], [1, 1, 9]), max_kernel=0).skips] == [
        "max_kernel must be at least 1, not 0"
    ]


def test_torch_conv1d_with_a_sinc_sized_kernel(tmp_path):
    from torch_models import export

    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv1d(1, 4, kernel_size=301, padding=150, bias=True), nn.ReLU())
    model = onnx.load(str(export(module, tmp_path / "sinc.onnx", (1, 1, 800), 13)))
    # 301 taps: the sums of ~150 products per piece reassociate; seen 2.4e-7 abs, default float32 tolerance.
    result = check_pass(SplitLargeKernelConv, model, expect_changes=1)
    assert convs(result) == [[151], [150]]


FIRED = []


@settings(max_examples=20, deadline=None)
@given(data=st.data(), rank=st.integers(1, 2), group=st.sampled_from([1, 2]), limit=st.integers(2, 5))
def _split_convs_keep_the_outputs(data, rank, group, limit):
    kernel = data.draw(st.lists(st.integers(limit + 1, 12), min_size=rank, max_size=rank))
    strides = data.draw(st.lists(st.integers(1, 3), min_size=rank, max_size=rank))
    dilations = data.draw(st.lists(st.integers(1, 2), min_size=rank, max_size=rank))
    pads = data.draw(st.lists(st.integers(0, 6), min_size=2 * rank, max_size=2 * rank))
    spatial = [d * (k - 1) + 1 + data.draw(st.integers(0, 6)) for k, d in zip(kernel, dilations, strict=True)]
    model = conv_model([1, 2 * group, *spatial], [2 * group, 2, *kernel], group=group, strides=strides,
                       dilations=dilations, pads=pads, seed=data.draw(st.integers(0, 9)))
    result = check_pass(SplitLargeKernelConv, model, options={"max_kernel": limit}, expect_changes=ANY,
                        expect_skips=ANY, scopes=("function",), **TOL)
    FIRED.append(result.record.changes == 1)


def test_property_random_convs_keep_their_outputs():
    FIRED.clear()
    _split_convs_keep_the_outputs()
    assert sum(FIRED) / len(FIRED) >= 0.9, FIRED  # every drawn kernel exceeds the drawn limit: all fire
