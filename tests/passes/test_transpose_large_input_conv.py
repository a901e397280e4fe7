import numpy as np
import onnx_ir as ir
import pytest
import torch
from helpers import op_types
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from optimizer.passapi import PassContext
from optimizer.targets import load_target
from optimizer.testing import ANY, check_pass, pattern_model
from passes.transpose_large_input_conv import TransposeLargeInputConv

RNG = np.random.default_rng(0)
SMALL = {"min_width": 64, "min_ratio": 4.0}


def f(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def changes(proto, options=None):
    """The Changes of one run (their descriptions say where each chain ends)."""
    pass_ = TransposeLargeInputConv(None if options is None else TransposeLargeInputConv.Options(**options))
    return pass_.run(ir.serde.deserialize_model(proto), PassContext(load_target("onnxruntime"))).changes


def full_chain(op, x):
    y = op.Conv(x, f(4, 2, 3, 5), f(4), strides=[1, 2], pads=[1, 2, 0, 1], dilations=[1, 2])
    y = op.LeakyRelu(op.Relu(y), alpha=0.2)
    y = op.MaxPool(y, kernel_shape=[2, 3], strides=[2, 3])
    y = op.BatchNormalization(y, f(4), f(4), f(4), np.abs(f(4)) + 1)
    y = op.Sub(f(1, 1, 1), op.Add(y, f(4, 1, 1)))
    y = op.Mul(y, f(y_width(4096)))  # a constant along W
    y = op.AveragePool(y, kernel_shape=[3, 2], pads=[1, 0, 1, 1], count_include_pad=1)
    y = op.Clip(op.Conv(y, f(3, 4, 1, 3), auto_pad="SAME_UPPER"), np.array(-1, np.float32), np.array(1, np.float32))
    return op.Reshape(y, np.array([1, -1]))


def y_width(width):
    """W after the first Conv (kernel 5, dilation 2, pads 2 + 1, stride 2) and the MaxPool (3, stride 3)."""
    return ((width + 3 - 9) // 2 + 1) // 3


def test_a_wide_conv_chain_is_wrapped_once():
    result = check_pass(TransposeLargeInputConv, pattern_model(full_chain, {"x": [1, 2, 8, 4096]}), expect_changes=1)
    assert op_types(result.model) == [
        "Transpose", "Conv", "Relu", "LeakyRelu", "MaxPool", "BatchNormalization", "Add", "Sub", "Mul",
        "AveragePool", "Conv", "Clip", "Transpose", "Reshape",
    ]
    conv = next(n for n in result.model.graph if n.op_type == "Conv")
    assert list(conv.attributes.get_ints("pads")) == [2, 1, 1, 0]
    assert list(conv.attributes.get_ints("strides")) == [2, 1] and list(conv.attributes.get_ints("dilations")) == [2, 1]
    [change] = changes(pattern_model(full_chain, {"x": [1, 2, 8, 4096]}))
    assert change.description.endswith("the chain ends before Reshape 'reshape11': not H/W-symmetric")
    assert change.description.startswith("H and W swapped around Conv -> Relu -> LeakyRelu -> MaxPool")


@pytest.mark.parametrize(
    ("shape", "options", "fires"),
    [
        ([1, 1, 8, 2048], None, True),
        ([1, 1, 8, 2047], None, False),
        ([1, 1, 8, 1000], {"min_width": 1000}, True),
        ([1, 1, 256, 2048], None, True),
        ([1, 1, 512, 2048], None, False),
        ([1, 1, 512, 2048], {"min_ratio": 4.0}, True),
    ],
)
def test_the_thresholds(shape, options, fires):
    model = pattern_model(lambda op, x: op.Relu(op.Conv(x, f(2, 1, 1, 3))), {"x": shape})
    check_pass(TransposeLargeInputConv, model, options=options, expect_changes=int(fires))


def test_a_dynamic_width_is_refused_and_a_dynamic_height_needs_no_ratio():
    model = pattern_model(lambda op, x: op.Conv(x, f(2, 1, 1, 3)), {"x": [1, 1, 8, "w"]})
    result = check_pass(TransposeLargeInputConv, model, expect_changes=0, expect_skips=1,
                        verify_shapes={"x": [1, 1, 8, 64]})
    assert [s["reason"] for s in result.record.skips] == ["the input's width is not static; fix it with --input-shape"]
    model = pattern_model(lambda op, x: op.Conv(x, f(2, 1, 1, 3)), {"x": [1, 1, "h", 128]})
    result = check_pass(TransposeLargeInputConv, model, options=SMALL, expect_changes=0, expect_skips=1,
                        verify_shapes={"x": [1, 1, 2, 128]})
    assert [s["reason"] for s in result.record.skips] == ["the input's height is not static; fix it with --input-shape"]
    check_pass(TransposeLargeInputConv, model, options={"min_width": 64, "min_ratio": 0.0}, expect_changes=1,
               verify_shapes={"x": [1, 1, 2, 128]})


def test_a_weight_that_is_an_input_is_refused():
    model = pattern_model(lambda op, x, w: op.Conv(x, w), {"x": [1, 1, 2, 128], "w": [2, 1, 1, 3]})
    result = check_pass(TransposeLargeInputConv, model, options=SMALL, expect_changes=0, expect_skips=1)
    assert [s["reason"] for s in result.record.skips] == ["the Conv's weight is not a constant"]


def test_a_fork_ends_the_chain_and_each_branch_is_its_own_chain():
    def pattern(op, x):
        y = op.Conv(x, f(2, 1, 1, 3), pads=[0, 1, 0, 1])
        return op.Conv(y, f(2, 2, 1, 3)), op.Sigmoid(op.Conv(y, f(2, 2, 3, 1)))

    result = check_pass(TransposeLargeInputConv, pattern_model(pattern, {"x": [1, 1, 4, 128]}), options=SMALL,
                        expect_changes=3)
    assert op_types(result.model).count("Transpose") == 6


@pytest.mark.parametrize(
    ("pattern", "end"),
    [
        (lambda op, x, z: op.Add(op.Conv(x, f(2, 1, 1, 3)), z), "Add 'add1': its other operand is not a constant"),
        (lambda op, x, z: op.Mul(op.Conv(x, f(2, 1, 1, 3)), f(1, 1, 1, 1, 1)), "Mul 'mul1': its other operand"),
        (lambda op, x, z: op.Conv(x, f(2, 1, 1, 3)), "its output is a graph output"),
        (lambda op, x, z: op.MaxPool(op.Conv(x, f(2, 1, 1, 3)), kernel_shape=[1, 2], _outputs=2)[1],
         "MaxPool 'maxpool1': a second output is used"),
    ],
)
def test_what_ends_a_chain(pattern, end):
    proto = pattern_model(pattern, {"x": [1, 1, 2, 128], "z": [1, 2, 2, 126]})
    check_pass(TransposeLargeInputConv, proto, options=SMALL, expect_changes=1)
    [change] = changes(proto, SMALL)
    assert end in change.description


class AudioFrontEnd(nn.Module):
    """An aasist-like front end: a spectrogram-shaped [B, 1, 16, 4096] input through 2-D Convs."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 8, (2, 3), padding=(1, 1)), nn.BatchNorm2d(8), nn.SELU(), nn.MaxPool2d((1, 3)),
            nn.Conv2d(8, 8, (2, 3), padding=(0, 1)), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        )
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.flatten(self.body(x), 1))


def test_a_torch_audio_front_end_is_transposed(tmp_path):
    path = tmp_path / "audio.onnx"
    torch.onnx.export(AudioFrontEnd().eval(), (torch.randn(1, 1, 16, 4096),), str(path), dynamo=False,
                      opset_version=13)
    result = check_pass(TransposeLargeInputConv, path, expect_changes=1)
    kinds = op_types(result.model)
    assert kinds[:6] == ["Transpose", "Conv", "Selu", "MaxPool", "Conv", "Relu"]
    assert kinds[6:] == ["GlobalAveragePool", "Flatten", "Gemm"]  # no Transpose back after a global pool


def test_generated_chains_are_wrapped_exactly_and_once():
    """Random kernels, strides, pads and dilations and a random run of symmetric ops after the Conv."""
    fired = []
    tails = {
        "relu": lambda op, y: op.Relu(y),
        "pool": lambda op, y: op.MaxPool(y, kernel_shape=[1, 2], strides=[1, 2]),
        "avg": lambda op, y: op.AveragePool(y, kernel_shape=[2, 1], pads=[1, 0, 0, 0]),
        "scale": lambda op, y: op.Mul(y, f(2, 1, 1)),
        "global": lambda op, y: op.GlobalMaxPool(y),
    }

    @settings(max_examples=15, deadline=None, derandomize=True)
    @given(
        height=st.integers(1, 6),
        width=st.integers(60, 256),
        kernel=st.tuples(st.integers(1, 3), st.integers(1, 3)),
        stride=st.tuples(st.integers(1, 2), st.integers(1, 2)),
        dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
        pads=st.tuples(*[st.integers(0, 1)] * 4),
        tail=st.lists(st.sampled_from(sorted(tails)), max_size=3),
    )
    def one(height, width, kernel, stride, dilation, pads, tail):
        def pattern(op, x):
            y = op.Conv(x, f(2, 1, *kernel), f(2), strides=list(stride), dilations=list(dilation), pads=list(pads))
            for name in tail[: tail.index("global") + 1] if "global" in tail else tail:
                y = tails[name](op, y)
            return y

        model = pattern_model(pattern, {"x": [1, 1, height + 2 * 2, width]})
        result = check_pass(TransposeLargeInputConv, model, options=SMALL, expect_changes=ANY)
        expected = width >= 64 and width >= 4 * (height + 4)
        assert result.record.changes == int(expected)
        fired.append(expected)

    one()
    assert sum(fired) / len(fired) >= 0.6
