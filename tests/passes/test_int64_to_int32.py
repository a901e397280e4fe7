import io
import warnings

import numpy as np
import onnx
import onnx_ir as ir
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scopes import shape_in_main_reshape_in_branches

from optimizer.testing import ANY, check_pass
from optimizer.testing.builder import OpBuilder
from passes.int64_to_int32 import Int64ToInt32

I64 = "int64"


def build(pattern, inputs, outputs, *, opset=13):
    """A checked model of ``pattern(op, *inputs)``; ``outputs`` name -> (shape, dtype) of each result."""
    op = OpBuilder()
    values = [
        ir.Value(name=name, shape=ir.Shape(shape), type=ir.TensorType(ir.DataType.from_numpy(np.dtype(dtype))))
        for name, (shape, dtype) in inputs.items()
    ]
    results = pattern(op, *values)
    results = list(results) if isinstance(results, tuple) else [results]
    for value, (name, (shape, dtype)) in zip(results, outputs.items(), strict=True):
        value.name, value.shape, value.dtype = name, ir.Shape(shape), ir.DataType.from_numpy(np.dtype(dtype))
    graph = ir.Graph(values, results, nodes=op.nodes, initializers=op.initializers, opset_imports={"": opset}, name="g")
    proto = ir.serde.serialize_model(ir.Model(graph, ir_version=8))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def unsqueeze(op, value, opset):
    return op.Unsqueeze(value, axes=[0]) if opset < 13 else op.Unsqueeze(value, np.array([0]))


def flatten_last_two(opset):
    """Reshape x = [b, h, w] to [b, h*w] with the shape computed from Shape(x)."""

    def pattern(op, x):
        shape = op.Shape(x)
        hw = op.Mul(op.Gather(shape, np.array(1)), op.Gather(shape, np.array(2)))
        batch = unsqueeze(op, op.Gather(shape, np.array(0)), opset)
        return op.Reshape(x, op.Concat(batch, unsqueeze(op, hw, opset), axis=0))

    return pattern


def nodes_of(model):
    return {node.name: node for node in model.graph}


@pytest.mark.parametrize("opset", [11, 13])
def test_static_shape_arithmetic_computes_in_int32(opset):
    model = build(flatten_last_two(opset), {"x": ([2, 3, 4], "float32")}, {"y": ([2, 12], "float32")}, opset=opset)
    result = check_pass(Int64ToInt32, model, expect_changes=1)
    assert sorted(result.record.changed_nodes) == [
        "concat7", "gather1", "gather2", "gather4", "mul3", "unsqueeze5", "unsqueeze6"
    ]
    assert result.record.notes == ["int64-to-int32: 2 Casts at the borders of the int32 regions"]
    nodes = nodes_of(result.model)
    assert nodes["mul3"].outputs[0].dtype == ir.DataType.INT32
    shape_input = nodes["reshape8"].inputs[1].producer()
    assert (shape_input.op_type, shape_input.attributes.get_int("to")) == ("Cast", ir.DataType.INT64)
    assert all(v.uses() for v in result.model.graph.initializers.values())  # indices and axes stay int64


def test_a_dynamic_dim_stays_int64_and_the_static_part_converts():
    model = build(flatten_last_two(13), {"x": (["N", 3, 4], "float32")}, {"y": (["N", 12], "float32")})
    result = check_pass(Int64ToInt32, model, expect_changes=1)
    # Gather reads the whole shape vector, which holds N: the Gathers stay, their outputs are cast.
    assert sorted(result.record.changed_nodes) == ["mul3", "unsqueeze6"]


def test_arithmetic_on_a_dynamic_dim_is_refused_with_the_value():
    def pattern(op, x):
        return op.Add(op.Gather(op.Shape(x, start=0, end=1), np.array(0)), np.array(1))

    model = build(pattern, {"x": (["N", 3], "float32")}, {"y": ([], I64)}, opset=15)
    result = check_pass(Int64ToInt32, model, expect_changes=0, expect_skips=1)
    assert result.record.skips == [{"node": "add2", "reason": "value 'gather1' may not fit int32 (range [0, 2^63-1])"}]


def test_int64_model_input_is_refused():
    model = build(lambda op, idx: op.Mul(idx, np.array(2)), {"idx": ([3], I64)}, {"y": ([3], I64)})
    result = check_pass(Int64ToInt32, model, expect_changes=0, expect_skips=1)
    assert result.record.skips[0]["reason"] == "value 'idx' may not fit int32 (range [-2^63, 2^63-1])"


def test_a_result_beyond_int32_is_refused_and_the_rest_converts():
    def pattern(op, x):
        dim = op.Gather(op.Shape(x), np.array(1))
        small = op.Add(dim, np.array(7))  # [10, 10]
        return op.Mul(small, np.array(300_000_000))  # 3e9 > 2^31 - 1

    model = build(pattern, {"x": ([2, 3], "float32")}, {"y": ([], I64)})
    result = check_pass(Int64ToInt32, model, expect_changes=1, expect_skips=1)
    reason = "value 'y' may not fit int32 (range [3000000000, 3000000000])"
    assert result.record.skips == [{"node": "mul3", "reason": reason}]
    assert sorted(result.record.changed_nodes) == ["add2", "gather1"]
    assert sorted(result.model.graph.initializers) == ["const0", "const2"]  # 7 is now an int32 Constant


def test_div_truncates_toward_zero_in_both_types():
    def pattern(op, x):
        shape = op.Shape(x)
        negative = op.Neg(op.Gather(shape, np.array([0, 1])))  # [-7, -3]
        return op.Div(negative, np.array([2, -2]))  # [-3, 1]: truncation, not floor

    model = build(pattern, {"x": ([7, 3], "float32")}, {"y": ([2], I64)})
    result = check_pass(Int64ToInt32, model, expect_changes=1)
    assert [n.op_type for n in result.model.graph][-1] == "Cast"  # the graph output stays int64
    assert result.model.graph.outputs[0].name == "y" and result.model.graph.outputs[0].dtype == ir.DataType.INT64


def test_a_divisor_that_may_be_zero_is_refused():
    def pattern(op, flag):
        sign = op.Sub(op.Mul(op.Cast(flag, to=ir.DataType.INT64), np.array(2)), np.array(1))  # -1 or 1
        return op.Div(np.array([6, 9]), sign)

    model = build(pattern, {"flag": ([1], "bool")}, {"y": ([2], I64)})
    result = check_pass(Int64ToInt32, model, expect_changes=1, expect_skips=1)
    assert result.record.skips[0]["reason"] == "divisor 'sub2' may be 0 (range [-1, 1])"
    assert sorted(result.record.changed_nodes) == ["mul1", "sub2"]


def test_max_min_and_abs_convert():
    def pattern(op, x):
        shape = op.Shape(x)
        low = op.Min(op.Gather(shape, np.array(1)), np.array(5))
        return op.Max(op.Abs(op.Neg(op.Gather(shape, np.array(0)))), low)

    model = build(pattern, {"x": ([2, 3], "float32")}, {"y": ([], I64)}, opset=12)
    result = check_pass(Int64ToInt32, model, expect_changes=1)
    assert len(result.record.changed_nodes) == 6


def test_a_region_that_only_moves_values_is_left_alone():
    def pattern(op, x):
        shape = op.Shape(x)
        return op.Reshape(x, op.Concat(op.Gather(shape, np.array([1, 0])), np.array([-1]), axis=0))

    model = build(pattern, {"x": ([2, 3, 4], "float32")}, {"y": ([3, 2, 4], "float32")})
    result = check_pass(Int64ToInt32, model, expect_changes=0)
    assert [n.op_type for n in result.model.graph] == ["Shape", "Gather", "Concat", "Reshape"]


@pytest.mark.parametrize("opset", [9, 10])
def test_slice_of_a_shape_is_followed_per_element(opset):
    def pattern(op, x):
        shape = op.Shape(x)
        if opset < 10:
            tail = op.Slice(shape, starts=[1], ends=[3])
        else:
            tail = op.Slice(shape, np.array([1]), np.array([3]), np.array([0]))
        return op.Mul(tail, np.array([1000, 1000]))

    model = build(pattern, {"x": ([1, 3000, 4], "float32")}, {"y": ([2], I64)}, opset=opset)
    result = check_pass(Int64ToInt32, model, expect_changes=1)
    assert sorted(result.record.changed_nodes) == ["mul2", "slice1"]


def test_argmax_and_narrow_casts_bound_data_and_gather_takes_int32_indices():
    def pattern(op, x, code):
        index = op.Add(op.ArgMax(x, axis=1, keepdims=0), np.array(1))  # [1, 5]
        scaled = op.Mul(op.Cast(code, to=ir.DataType.INT64), np.array(100))  # [0, 25500]
        return op.Gather(np.arange(6, dtype=np.float32), index), scaled

    model = build(pattern, {"x": ([2, 5], "float32"), "code": ([2], "uint8")},
                  {"y0": ([2], "float32"), "y1": ([2], I64)})
    result = check_pass(Int64ToInt32, model, expect_changes=2)
    gather = nodes_of(result.model)["gather4"]
    assert gather.inputs[1].dtype == ir.DataType.INT32  # read as it is, no Cast back


def export(module, shape, dynamic):
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(*shape),), buffer, dynamo=False, opset_version=13,
                          input_names=["x"], dynamic_axes={"x": dynamic} if dynamic else None)
    return onnx.load_from_string(buffer.getvalue())


class Tokens(torch.nn.Module):
    def forward(self, x):
        b, c, h, w = x.shape
        return x.permute(0, 2, 3, 1).reshape(b, h * w, c)


def test_torch_reshape_with_a_dynamic_batch():
    model = export(Tokens(), (2, 3, 4, 5), {0: "batch"})
    result = check_pass(Int64ToInt32, model, expect_changes=1)
    [change] = [n for n in result.model.graph if n.op_type == "Mul"]
    assert change.outputs[0].dtype == ir.DataType.INT32  # h * w in int32; the batch stays int64


ARITHMETIC = ["Add", "Sub", "Mul", "Neg", "Abs", "Max", "Min", "Div"]


@st.composite
def programs(draw):
    dims = draw(st.lists(st.integers(1, 9), min_size=2, max_size=4))
    steps = draw(st.lists(st.tuples(st.sampled_from(ARITHMETIC), st.integers(0, 50), st.integers(0, 50),
                                    st.sampled_from([-3, 2, 5, 2**40])), min_size=2, max_size=6))
    return dims, steps


def program_model(dims, steps):
    def pattern(op, x):
        shape = op.Shape(x)
        pool = [op.Gather(shape, np.array([i])) for i in range(len(dims))]
        for name, i, j, constant in steps:
            a, b = pool[i % len(pool)], pool[j % len(pool)]
            if name in ("Neg", "Abs"):
                pool.append(op.node(name, a))
            elif name == "Div":
                pool.append(op.Div(a, np.array([constant])))  # never 0
            else:
                pool.append(op.node(name, a, b if j % 3 else np.array([constant])))
        return op.Concat(pool[-1], pool[-2], axis=0)

    return build(pattern, {"x": (dims, "float32")}, {"y": ([2], I64)})


def test_random_shape_arithmetic_keeps_outputs_and_is_idempotent():
    fired = []

    @settings(max_examples=30, deadline=None)
    @given(programs())
    def check(program):
        result = check_pass(Int64ToInt32, program_model(*program), expect_changes=ANY, expect_skips=ANY, scopes=())
        fired.append(result.record.changes > 0)

    check()
    assert sum(fired) / len(fired) >= 0.8, fired


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_and_size_convert(opset):
    def pattern(op, x):
        first = op.Gather(op.Shape(x), np.array([0]))
        dim = op.Squeeze(first, axes=[0]) if opset < 13 else op.Squeeze(first, np.array([0]))
        return op.Sub(op.Size(x), dim)

    model = build(pattern, {"x": ([2, 3], "float32")}, {"y": ([], I64)}, opset=opset)
    result = check_pass(Int64ToInt32, model, expect_changes=1)
    assert sorted(result.record.changed_nodes) == ["gather1", "squeeze2", "sub4"]
    assert all(v.uses() for v in result.model.graph.initializers.values())  # no int64 constant is left dead


def test_a_region_read_inside_branches_is_cast_back_once_in_its_own_scope():
    result = check_pass(Int64ToInt32, shape_in_main_reshape_in_branches([2, 3, 4]), expect_changes=1)
    casts = [n for n in result.model.graph if n.op_type == "Cast"]
    assert [n.attributes.get_int("to") for n in casts] == [ir.DataType.INT32, ir.DataType.INT64]
    assert sorted(result.record.changed_nodes) == ["b", "h", "hw", "s", "w"]
