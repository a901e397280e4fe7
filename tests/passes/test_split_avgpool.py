import onnx
import pytest
import torch
from helpers import op_types
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from optimizer.testing import ANY, check_pass, pattern_model
from passes.split_avgpool import SplitAvgpool

# A chain of pools averages means of means: float32 rounding differs from the one-pass mean by a
# few ulps (seen: 6.7e-8 absolute on means of size ~0.1 of the inputs, 8.3e-7 absolute / 1.2e-6
# relative on the torch model's conv outputs); 1e-6 absolute plus 1e-5 relative covers both.
TOL = {"rtol": 1e-5, "atol": 1e-6}


def pool_model(shape, opset=13, **attributes):
    return pattern_model(lambda op, x: op.AveragePool(x, **attributes), {"x": shape}, opset=opset)


def pools(result):
    return [
        (list(n.attributes.get_ints("kernel_shape")), list(n.attributes.get_ints("strides")))
        for n in result.model.graph
        if n.op_type == "AveragePool"
    ]


@pytest.mark.parametrize("opset", [9, 10, 11, 19])
def test_a_long_kernel_becomes_a_chain_whose_kernels_multiply_to_it(opset):
    model = pool_model([1, 2, 5, 900], opset, kernel_shape=[2, 300], strides=[2, 300])
    result = check_pass(SplitAvgpool, model, expect_changes=1, **TOL)
    assert pools(result) == [([2, 150], [2, 150]), ([1, 2], [1, 2])]


def test_every_long_axis_is_split_and_the_chain_is_as_long_as_the_longest():
    model = pool_model([1, 1, 256, 1024], kernel_shape=[256, 1024], strides=[256, 1024])
    result = check_pass(SplitAvgpool, model, expect_changes=1, **TOL)
    assert pools(result) == [([128, 128], [128, 128]), ([2, 8], [2, 8])]


def test_a_dynamic_length_with_a_remainder_keeps_the_floor_semantics():
    model = pool_model([1, 3, "length"], kernel_shape=[512], strides=[512])
    result = check_pass(SplitAvgpool, model, verify_shapes={"x": [1, 3, 1100]}, expect_changes=1, **TOL)
    assert pools(result) == [([128], [128]), ([4], [4])]


def test_ceil_mode_without_a_partial_window_splits():
    model = pool_model([1, 1, 3, 600], kernel_shape=[2, 300], strides=[1, 300], ceil_mode=1)
    result = check_pass(SplitAvgpool, model, expect_changes=1, **TOL)
    assert pools(result) == [([2, 150], [1, 150]), ([1, 2], [1, 2])]


def test_the_max_kernel_option():
    model = pool_model([1, 1, 64], kernel_shape=[32], strides=[32])
    result = check_pass(SplitAvgpool, model, options={"max_kernel": 4}, expect_changes=1, **TOL)
    assert pools(result) == [([4], [4]), ([4], [4]), ([2], [2])]
    check_pass(SplitAvgpool, model, options={"max_kernel": 32}, expect_changes=0)


@pytest.mark.parametrize(
    "shape, attributes, opset, reason",
    [
        ([1, 1, 600], {"kernel_shape": [300], "strides": [150]}, 13,
         "kernel 300 on spatial axis 0 has stride 150: only non-overlapping windows (stride == kernel) split exactly"),
        ([1, 1, 600], {"kernel_shape": [300]}, 13,
         "kernel 300 on spatial axis 0 has stride 1: only non-overlapping windows (stride == kernel) split exactly"),
        ([1, 1, 600], {"kernel_shape": [300], "strides": [300], "pads": [1, 1]}, 13,
         "pads [1, 1] are not all 0; only unpadded pools split exactly"),
        ([1, 1, 600], {"kernel_shape": [300], "strides": [300], "auto_pad": "SAME_UPPER"}, 13,
         "auto_pad=SAME_UPPER pads the input; only unpadded pools split exactly"),
        ([1, 1, 600], {"kernel_shape": [300], "strides": [300], "dilations": [2]}, 19,
         "dilations [2] are not all 1"),
        ([1, 1, 600], {"kernel_shape": [257], "strides": [257]}, 13,
         "kernel 257 has no factorisation into factors <= 255"),
        ([1, 1, 700], {"kernel_shape": [300], "strides": [300], "ceil_mode": 1}, 13,
         "ceil_mode=1 with a partial window on spatial axis 0 of [700]"),
        ([1, 1, "n"], {"kernel_shape": [300], "strides": [300], "ceil_mode": 1}, 13,
         "ceil_mode=1 needs static spatial dims to rule out partial windows"),
    ],
)
def test_refusals(shape, attributes, opset, reason):
    model = pool_model(shape, opset, **attributes)
    verify = {"x": [1, 1, 900]} if "n" in shape else None
    result = check_pass(SplitAvgpool, model, expect_changes=0, expect_skips=1, verify_shapes=verify)
    assert result.record.skips[0]["reason"] == reason


class AudioPool(nn.Module):
    """A 1x1 conv then an average over blocks of 400 frames (a frame-rate reduction)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 1)
        self.pool = nn.AvgPool2d((1, 400))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.conv(x))


def test_torch_avgpool2d_with_a_long_kernel(tmp_path):
    from torch_models import export

    torch.manual_seed(0)
    path = export(AudioPool(), tmp_path / "audio_pool.onnx", (1, 2, 3, 1600), 13)
    result = check_pass(SplitAvgpool, onnx.load(str(path)), expect_changes=1, **TOL)
    assert op_types(result.model) == ["Conv", "AveragePool", "AveragePool"]
    assert pools(result) == [([1, 200], [1, 200]), ([1, 2], [1, 2])]


FIRED = []


@settings(max_examples=20, deadline=None)
@given(
    factors=st.lists(st.integers(3, 5), min_size=2, max_size=3),
    limit=st.integers(5, 8),
    windows=st.integers(1, 3),
    remainder=st.integers(0, 4),
    other=st.integers(1, 3),
    ceil=st.booleans(),
)
def _splits_keep_the_outputs(factors, limit, windows, remainder, other, ceil):
    kernel = 1
    for factor in factors:
        kernel *= factor
    length = kernel * windows + (0 if ceil else remainder)
    model = pool_model([1, 2, other + 1, length], kernel_shape=[other, kernel], strides=[1, kernel],
                       ceil_mode=int(ceil))
    result = check_pass(SplitAvgpool, model, options={"max_kernel": limit}, expect_changes=ANY,
                        expect_skips=ANY, scopes=("function",), **TOL)
    FIRED.append(result.record.changes == 1)


def test_property_random_pools_keep_their_outputs():
    FIRED.clear()
    _splits_keep_the_outputs()
    # Kernels are products of factors 3..5 (>= 9, above every limit drawn, and factorable): all fire.
    assert sum(FIRED) / len(FIRED) >= 0.9, FIRED
