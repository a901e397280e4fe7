"""Models holding a pass's pattern many times, for the benchmarks: ``fan(pass, count)``."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from optimizer.testing import pattern_model

I64 = np.int64


def fan(name: str, count: int) -> ir.Model:
    """A model applying the pattern of pass ``name`` ``count`` times to its one input; the copies are
    added (concatenated when integer) pairwise into one output, as a real model has few outputs and
    no node with thousands of inputs."""
    block, shape = CASES[name]

    def copies(op, x):
        outputs = [block(op, x, i) for i in range(count)]
        while len(outputs) > 1:
            pairs = zip(outputs[::2], outputs[1::2], strict=False)  # an odd one out waits a round
            joined = [op.Concat(a, b, axis=0) if name == "int64-to-int32" else op.Add(a, b) for a, b in pairs]
            outputs = joined + outputs[len(outputs) // 2 * 2:]
        return outputs[0]

    opset = OPSETS.get(name, 13)
    ir_version = 10 if opset > 21 else 8  # IR 10 carries opset 23; onnxsim refuses IR above 10
    return ir.serde.deserialize_model(pattern_model(copies, {"x": shape}, opset=opset, ir_version=ir_version))


def ints(*values):
    return np.array(values, I64)


def qkv(op, x):
    """A fused QKV projection split into q, k and v by three Gathers (then added)."""
    heads = op.Transpose(op.Reshape(op.MatMul(x, np.full((64, 192), 0.01, np.float32)), ints(1, 128, 3, 4, 16)),
                         perm=[2, 0, 3, 1, 4])
    q, k, v = (op.Gather(heads, np.array(index, I64), axis=0) for index in range(3))
    return op.Add(op.Add(q, k), v)


def attention(op, x):
    """softmax(x @ (-x)^T / 4) @ x over 4 heads of 64 tokens."""
    scores = op.Div(op.MatMul(x, op.Transpose(op.Neg(x), perm=[0, 1, 3, 2])), np.array(4.0, np.float32))
    return op.MatMul(op.Softmax(scores), x)


def gathers(op, y):
    """Two Gathers covering the 16 channels of ``y``, added."""
    return op.Add(op.Gather(y, ints(*range(8)), axis=1), op.Gather(y, ints(*range(8, 16)), axis=1))


OPSETS = {"fuse-attention": 23}  # the other patterns are built at opset 13

CASES = {
    "merge-concats": (lambda op, x, i: op.Concat(op.Concat(x, x, axis=1), op.Relu(x), axis=1), [1, 16, 32, 32]),
    "merge-slices": (lambda op, x, i: op.Slice(op.Slice(x, ints(1), ints(31), ints(2)), ints(2), ints(30), ints(3)),
                     [1, 16, 32, 32]),
    "merge-casts": (lambda op, x, i: op.Cast(op.Cast(x, to=11), to=1), [1, 16, 32, 32]),
    "gather-to-split": (lambda op, x, i: gathers(op, op.Neg(x)), [1, 16, 32, 32]),
    "drop-empty-slices": (lambda op, x, i: op.Concat(op.Slice(x, ints(3), ints(3), ints(1)), op.Relu(x), axis=1),
                          [1, 16, 32, 32]),
    "fold-transpose-batchnorm": (
        lambda op, x, i: op.Transpose(
            op.BatchNormalization(op.Transpose(x, perm=[0, 2, 3, 1]), *(np.full(32, v, np.float32) for v in (
                1.5, 0.1, 0.2, 2.0))), perm=[0, 3, 1, 2]), [1, 16, 32, 32]),
    "conv1d-to-conv2d": (lambda op, x, i: op.Relu(op.Conv(op.Relu(op.Conv(x, np.full((16, 16, 3), 0.05, np.float32),
                                                                             pads=[1, 1])),
                                                           np.full((16, 16, 3), 0.05, np.float32), pads=[1, 1])),
                         [1, 16, 1024]),
    "split-avgpool": (lambda op, x, i: op.AveragePool(x, kernel_shape=[1, 512], strides=[1, 512]), [1, 16, 4, 4096]),
    "reflect-pad-to-slices": (lambda op, x, i: op.Pad(x, ints(0, 0, 2, 2, 0, 0, 2, 2), mode="reflect"),
                              [1, 16, 32, 32]),
    "split-qkv-matmul": (lambda op, x, i: qkv(op, x), [1, 128, 64]),
    "fuse-attention": (lambda op, x, i: attention(op, x), [1, 4, 64, 16]),
    "split-large-kernel-conv": (lambda op, x, i: op.Conv(x, np.full((4, 4, 1, 300), 0.01, np.float32)),
                                [1, 4, 1, 1024]),
    "transpose-large-input-conv": (lambda op, x, i: op.Relu(op.Conv(x, np.full((4, 4, 3, 3), 0.05, np.float32),
                                                                    pads=[1, 1, 1, 1])), [1, 4, 16, 4096]),
    "int64-to-int32": (lambda op, x, i: op.Add(op.Mul(op.Shape(x), ints(2, 2, 2, 2)), ints(i, 1, 1, 1)),
                       [1, 16, 32, 32]),
    "resize-nearest": (lambda op, x, i: op.Resize(x, np.zeros(0, np.float32), np.ones(4, np.float32), mode="linear"),
                       [1, 16, 32, 32]),
    "topk-int32": (lambda op, x, i: op.TopK(x, ints(2), _outputs=2)[0], [1, 16, 32, 32]),
    "static-reshape": (lambda op, x, i: op.Reshape(op.Reshape(x, op.Concat(op.Slice(op.Shape(x), ints(0), ints(1)),
                                                                           ints(-1), axis=0)), ints(1, -1)),
                       ["N", 16, 32, 32]),
}
