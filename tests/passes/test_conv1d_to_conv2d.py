import numpy as np
import onnx
import pytest
import torch
from helpers import make_model, op_types
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper
from torch import nn

from optimizer.testing import ANY, check_pass, pattern_model
from passes.conv1d_to_conv2d import Conv1dToConv2d

# A Conv2d over [N, C, 1, L] sums the same products in the same order as the Conv1d (onnxruntime
# runs both through one kernel): every case here, the property test's included, is bit-identical.
TOL = {"rtol": 0.0, "atol": 0.0}
RNG = np.random.default_rng(0)


def weights(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def inner_ops(result):
    return [t for t in op_types(result.model) if t != "Constant"]


def conv_chain(op, x):
    a = op.Conv(x, weights(4, 2, 3), weights(4), pads=[1, 1])
    b = op.Conv(op.Relu(a), weights(4, 4, 5), strides=[2], dilations=[2], kernel_shape=[5])
    return op.Add(b, weights(4, 1))


@pytest.mark.parametrize("opset", [11, 13])
def test_a_chain_runs_as_conv2d_between_one_unsqueeze_and_one_squeeze(opset):
    result = check_pass(Conv1dToConv2d, pattern_model(conv_chain, {"x": [1, 2, 20]}, opset=opset), expect_changes=1,
                        **TOL)
    assert inner_ops(result) == ["Unsqueeze", "Conv", "Relu", "Conv", "Add", "Squeeze"]
    first, second = [n for n in result.model.graph if n.op_type == "Conv"]
    assert list(first.attributes.get_ints("pads")) == [0, 1, 0, 1]
    assert list(second.attributes.get_ints("strides")) == list(second.attributes.get_ints("dilations")) == [1, 2]
    assert list(second.attributes.get_ints("kernel_shape")) == [1, 5]
    assert list(second.inputs[1].producer().attributes["value"].as_tensor().shape) == [4, 4, 1, 5]
    squeeze = next(n for n in result.model.graph if n.op_type == "Squeeze")
    if opset < 13:
        assert list(squeeze.attributes.get_ints("axes")) == [2]
    else:
        assert len(squeeze.inputs) == 2


def test_a_residual_input_is_unsqueezed_once():
    def residual(op, x):
        return op.Add(op.Conv(x, weights(2, 2, 3), pads=[1, 1]), x)

    result = check_pass(Conv1dToConv2d, pattern_model(residual, {"x": [2, 2, 9]}), expect_changes=1, **TOL)
    assert inner_ops(result) == ["Unsqueeze", "Conv", "Add", "Squeeze"]


def test_operands_of_every_rank_broadcast_the_same():
    def operands(op, x, side):
        y = op.Conv(x, weights(3, 2, 3))  # [1, 3, 6]
        y = op.Mul(y, 0.5)  # rank 0
        y = op.Add(y, weights(6))  # rank 1: the L axis, as before
        y = op.Mul(y, weights(3, 1))  # rank 2 constant: reshaped to [3, 1, 1]
        y = op.Sub(y, weights(1, 3, 6))  # rank 3 constant: reshaped to [1, 3, 1, 6]
        return op.Div(op.Sigmoid(op.Add(y, side)), 2.0)  # rank 2 input: unsqueezed at axis 1

    model = pattern_model(operands, {"x": [1, 2, 8], "side": [3, 6]})
    result = check_pass(Conv1dToConv2d, model, expect_changes=1, **TOL)
    assert inner_ops(result) == ["Unsqueeze", "Conv", "Mul", "Add", "Mul", "Sub", "Unsqueeze", "Add", "Sigmoid",
                                 "Div", "Squeeze"]
    shapes = [list(n.attributes["value"].as_tensor().shape) for n in result.model.graph if n.op_type == "Constant"]
    assert [3, 1, 1] in shapes and [1, 3, 1, 6] in shapes  # the rank-1 [6] stays the initializer it was


def test_an_op_whose_broadcast_is_not_proven_stays_outside():
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Add", ["r", "wide"], ["y0"], name="add"),  # a rank-4 result
        helper.make_node("Squeeze", ["unknown"], ["s"], name="squeeze"),  # dynamic dims: rank unknown
        helper.make_node("Mul", ["r", "s"], ["y1"], name="mul"),
    ]
    inputs = [("x", [1, 2, 8]), ("wide", [2, 1, 1, 6]), ("unknown", ["a", 3, "b"])]
    model = make_model(nodes, inputs, [("y0", [2, 1, 3, 6]), ("y1", [1, 3, 6])],
                       initializers=[("w", weights(3, 2, 3))])
    result = check_pass(Conv1dToConv2d, model, verify_shapes={"unknown": [1, 3, 6]}, expect_changes=1, **TOL)
    assert inner_ops(result) == ["Unsqueeze", "Conv", "Relu", "Squeeze", "Add", "Squeeze", "Mul"]


def test_a_tensor_that_leaves_the_group_and_comes_back_keeps_the_order():
    def detour(op, x):
        a = op.Conv(x, weights(3, 2, 1))
        mean = op.ReduceMean(a, axes=[2], keepdims=1)  # outside the group: reads the squeezed a
        return op.Conv(op.Mul(a, mean), weights(3, 3, 3))

    result = check_pass(Conv1dToConv2d, pattern_model(detour, {"x": [1, 2, 7]}, opset=13), expect_changes=1, **TOL)
    assert inner_ops(result) == ["Unsqueeze", "Conv", "Squeeze", "ReduceMean", "Unsqueeze", "Mul", "Conv", "Squeeze"]


def test_batchnorm_groups_attributes_and_a_weight_that_is_an_input():
    def block(op, x, w):
        y = op.Conv(x, weights(4, 2, 5), weights(4), group=2, auto_pad="SAME_UPPER")
        stats = [weights(4), weights(4), weights(4), np.abs(weights(4)) + 0.5]
        y = op.BatchNormalization(y, *stats)
        return op.Conv(op.LeakyRelu(y, alpha=0.1), w)

    model = pattern_model(block, {"x": [1, 4, 11], "w": [2, 4, 3]})
    result = check_pass(Conv1dToConv2d, model, expect_changes=1, **TOL)
    assert inner_ops(result) == ["Unsqueeze", "Conv", "BatchNormalization", "LeakyRelu", "Unsqueeze", "Conv",
                                 "Squeeze"]


def test_groups_split_by_another_op_are_two_changes():
    def two(op, x):
        a = op.Conv(x, weights(3, 2, 3))
        return op.Conv(op.Transpose(a, perm=[0, 1, 2]), weights(2, 3, 3))

    result = check_pass(Conv1dToConv2d, pattern_model(two, {"x": [1, 2, 9]}), expect_changes=2, **TOL)
    assert inner_ops(result) == ["Unsqueeze", "Conv", "Squeeze", "Transpose", "Unsqueeze", "Conv", "Squeeze"]


def test_conv2d_is_no_candidate():
    model = pattern_model(lambda op, x: op.Conv(x, weights(2, 2, 1, 3)), {"x": [1, 2, 4, 5]})
    check_pass(Conv1dToConv2d, model, expect_changes=0)


@pytest.mark.parametrize("opset", [11, 13])
def test_torch_conv1d_stack(tmp_path, opset):
    from torch_models import export

    torch.manual_seed(0)
    module = nn.Sequential(
        nn.Conv1d(3, 8, 5, padding=2), nn.BatchNorm1d(8), nn.ReLU(),
        nn.Conv1d(8, 8, 3, stride=2, padding=1, groups=4), nn.GELU(), nn.Conv1d(8, 4, 1),
    )
    model = onnx.load(str(export(module, tmp_path / "stack.onnx", (2, 3, 32), opset)))
    result = check_pass(Conv1dToConv2d, model, expect_changes=1, **TOL)
    ops = inner_ops(result)
    assert ops[0] == "Unsqueeze" and ops[-1] == "Squeeze" and ops.count("Unsqueeze") == 1 and ops.count("Conv") == 3


FIRED = []
UNARY = ["Relu", "Sigmoid", "Tanh", "Neg", "Abs"]


@settings(max_examples=20, deadline=None)
@given(data=st.data(), convs=st.integers(1, 3), opset=st.sampled_from([11, 13]))
def _groups_keep_the_outputs(data, convs, opset):
    channels = [data.draw(st.sampled_from([2, 4])) for _ in range(convs + 1)]
    plan = []
    for i in range(convs):
        k, s, d = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
        pads = [data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))]
        group = data.draw(st.sampled_from([g for g in (1, 2) if channels[i] % g == 0 and channels[i + 1] % g == 0]))
        between = data.draw(st.sampled_from([*UNARY, "Add0", "Mul1", "Add2", "Mul3"]))
        plan.append((k, s, d, pads, group, between))

    def build(op, x):
        y = x
        for i, (k, s, d, pads, group, between) in enumerate(plan):
            y = op.Conv(y, weights(channels[i + 1], channels[i] // group, k), weights(channels[i + 1]),
                        strides=[s], dilations=[d], pads=pads, group=group)
            if between in UNARY:
                y = getattr(op, between)(y)
            else:
                rank = int(between[-1])
                shape = [1, channels[i + 1], 1][3 - rank:] if rank else []  # per channel or scalar
                y = getattr(op, between[:-1])(y, weights(*shape) if shape else 1.5)
        return y

    model = pattern_model(build, {"x": [1, channels[0], 40]}, opset=opset)
    result = check_pass(Conv1dToConv2d, model, expect_changes=ANY, scopes=("function",), **TOL)
    FIRED.append(result.record.changes == 1)


def test_property_random_conv1d_groups_keep_their_outputs():
    FIRED.clear()
    _groups_keep_the_outputs()
    assert sum(FIRED) / len(FIRED) >= 0.9, FIRED  # every drawn model is one connected group
