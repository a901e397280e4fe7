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
from passes.static_reshape import StaticReshape


def build(pattern, inputs, outputs, *, opset=13):
    """A checked model of ``pattern(op, *inputs)``; ``outputs`` name -> shape of each (float) result."""
    op = OpBuilder()
    values = [
        ir.Value(name=name, shape=ir.Shape(shape), type=ir.TensorType(ir.DataType.FLOAT))
        for name, shape in inputs.items()
    ]
    results = pattern(op, *values)
    results = list(results) if isinstance(results, tuple) else [results]
    for value, (name, shape) in zip(results, outputs.items(), strict=True):
        value.name, value.shape, value.dtype = name, ir.Shape(shape), ir.DataType.FLOAT
    graph = ir.Graph(values, results, nodes=op.nodes, initializers=op.initializers, opset_imports={"": opset}, name="g")
    proto = ir.serde.serialize_model(ir.Model(graph, ir_version=8))
    onnx.checker.check_model(proto, full_check=True)
    return proto


def dim(op, x, i):
    return op.Gather(op.Shape(x), np.array([i]))


def reshape_to(*pieces, allowzero=None):
    """Reshape x to Concat(pieces), each ``op -> x -> 1-element int64 value`` or an int."""

    def pattern(op, x):
        parts = [np.array([p]) if isinstance(p, int) else p(op, x) for p in pieces]
        extra = {} if allowzero is None else {"allowzero": allowzero}
        return op.Reshape(x, op.Concat(*parts, axis=0), **extra)

    return pattern


def d(i):
    return lambda op, x: dim(op, x, i)


def product(i, j):
    return lambda op, x: op.Mul(dim(op, x, i), dim(op, x, j))


def new_shape(result):
    [reshape] = [n for n in result.model.graph if n.op_type == "Reshape"]
    return [int(v) for v in reshape.inputs[1].producer().attributes["value"].as_tensor().numpy()]


def test_static_dims_fold_and_the_note_says_they_hold_for_the_fixed_shapes():
    model = build(reshape_to(d(0), product(1, 2)), {"x": [2, 3, 4]}, {"y": [2, 12]})
    result = check_pass(StaticReshape, model, expect_changes=1)
    assert new_shape(result) == [2, 12]
    assert [n.op_type for n in result.model.graph] == ["Constant", "Reshape"]  # the shape nodes are gone
    assert result.record.notes == [
        "static-reshape: 1 constant shapes use static dims of the model, so they hold for the input shapes "
        "it fixes (x: [2, 3, 4]), which the output keeps"
    ]


def test_input_shape_fixes_dims_before_the_pass():
    model = build(reshape_to(d(0), product(1, 2)), {"x": ["N", "H", 4]}, {"y": ["N", None]})
    result = check_pass(StaticReshape, model, input_shapes={"x": [2, 3, 4]}, expect_changes=1)
    assert new_shape(result) == [2, 12]
    assert "(x: [2, 3, 4])" in result.record.notes[0]


def test_a_dynamic_dim_in_its_place_becomes_0():
    model = build(reshape_to(d(0), product(1, 2)), {"x": ["N", 3, 4]}, {"y": ["N", 12]})
    assert new_shape(check_pass(StaticReshape, model, expect_changes=1)) == [0, 12]


@pytest.mark.parametrize("opset", [11, 13])
def test_squeeze_and_unsqueeze_are_followed(opset):
    def pattern(op, x):
        batch = op.Squeeze(dim(op, x, 0), axes=[0]) if opset < 13 else op.Squeeze(dim(op, x, 0), np.array([0]))
        batch = op.Unsqueeze(batch, axes=[0]) if opset < 13 else op.Unsqueeze(batch, np.array([0]))
        return op.Reshape(x, op.Concat(batch, np.array([-1]), axis=0))

    model = build(pattern, {"x": ["N", "C", 4]}, {"y": ["N", None]}, opset=opset)
    assert new_shape(check_pass(StaticReshape, model, expect_changes=1)) == [0, -1]


@pytest.mark.parametrize("opset", [9, 10])
def test_slice_of_the_shape_is_followed(opset):
    def pattern(op, x):
        shape = op.Shape(x)
        head = op.Slice(shape, starts=[0], ends=[2]) if opset < 10 else op.Slice(shape, np.array([0]), np.array([2]))
        return op.Reshape(x, op.Concat(head, np.array([-1]), axis=0))

    model = build(pattern, {"x": ["N", "C", 4, 5]}, {"y": ["N", "C", 20]}, opset=opset)
    assert new_shape(check_pass(StaticReshape, model, expect_changes=1)) == [0, 0, -1]


def test_shape_start_and_end_at_opset_15():
    def pattern(op, x):
        return op.Reshape(x, op.Concat(np.array([-1]), op.Shape(x, start=1), axis=0))

    model = build(pattern, {"x": ["N", "C", 4]}, {"y": [None, "C", 4]}, opset=15)
    assert new_shape(check_pass(StaticReshape, model, expect_changes=1)) == [-1, 0, 4]


def test_a_dim_of_another_tensor_with_the_same_dim_param_is_copied():
    def pattern(op, x, a):
        return op.Reshape(x, op.Concat(dim(op, a, 0), np.array([-1]), axis=0)), op.Identity(a)

    model = build(pattern, {"x": ["N", 3, 4], "a": ["N", 5]}, {"y0": ["N", 12], "y1": ["N", 5]})
    # A function body declares no dims, so there only Shape(x) itself is known to be x's.
    assert new_shape(check_pass(StaticReshape, model, expect_changes=1, scopes=("if", "loop"))) == [0, -1]


def test_a_dim_of_another_tensor_is_not_assumed_equal():
    def pattern(op, x, a):
        return op.Reshape(x, op.Concat(dim(op, a, 0), np.array([-1]), axis=0)), op.Identity(a)

    model = build(pattern, {"x": ["N", 3, 4], "a": ["M", 5]}, {"y0": [None, None], "y1": ["M", 5]})
    result = check_pass(StaticReshape, model, expect_changes=0, expect_skips=1)
    assert result.record.skips[0]["reason"] == (
        "entry 0 (dim 0 of 'a') is neither a constant nor dim 0 of 'x', and -1 is taken"
    )


def test_one_computed_entry_becomes_minus_1_when_the_others_cannot_be_0():
    model = build(reshape_to(d(0), product(1, 2)), {"x": [3, "H", "W"]}, {"y": [3, None]})
    assert new_shape(check_pass(StaticReshape, model, expect_changes=1)) == [3, -1]


def test_minus_1_next_to_a_dynamic_copy_is_refused():
    model = build(reshape_to(d(0), product(1, 2)), {"x": ["N", "H", 4]}, {"y": ["N", None]})
    result = check_pass(StaticReshape, model, expect_changes=0, expect_skips=1)
    assert result.record.skips[0]["reason"] == (
        "-1 for entry 1 (dim 1 of 'x' * 4) is ambiguous when entry 0 (dim 0 of 'x') is 0: "
        "the element count no longer determines it (onnxruntime refuses such a Reshape)"
    )


def test_two_computed_entries_are_refused():
    model = build(reshape_to(product(0, 1), product(2, 3)), {"x": [2, "H", "W", 3]}, {"y": [None, None]})
    result = check_pass(StaticReshape, model, expect_changes=0, expect_skips=1)
    assert result.record.skips[0]["reason"].startswith("entries 0 (2 * dim 1 of 'x'), 1 (dim 2 of 'x' * 3) are")


def test_allowzero_1_copies_under_allowzero_0():
    model = build(reshape_to(d(0), product(1, 2), allowzero=1), {"x": ["N", 3, 4]}, {"y": ["N", 12]}, opset=14)
    result = check_pass(StaticReshape, model, expect_changes=1)
    assert new_shape(result) == [0, 12]
    [reshape] = [n for n in result.model.graph if n.op_type == "Reshape"]
    assert reshape.attributes.get_int("allowzero") == 0


def test_allowzero_1_with_a_literal_zero_and_a_copy_is_refused():
    model = build(reshape_to(d(0), 0, allowzero=1), {"x": ["N", 0]}, {"y": ["N", 0]}, opset=14)
    result = check_pass(StaticReshape, model, expect_changes=0, expect_skips=1)
    assert result.record.skips[0]["reason"].startswith("allowzero=1 with a literal 0")


def test_allowzero_1_with_literal_zeros_only_keeps_allowzero():
    model = build(reshape_to(d(0), 0, allowzero=1), {"x": [0, 2]}, {"y": [0, 0]}, opset=14)
    result = check_pass(StaticReshape, model, expect_changes=1)
    assert new_shape(result) == [0, 0]
    [reshape] = [n for n in result.model.graph if n.op_type == "Reshape"]
    assert reshape.attributes.get_int("allowzero") == 1


def test_a_shape_from_an_op_not_followed_is_refused():
    def pattern(op, x):
        shape = op.Concat(dim(op, x, 0), np.array([-1]), axis=0)
        return op.Reshape(x, op.Max(shape, np.array([1, -1])))

    model = build(pattern, {"x": ["N", 4]}, {"y": [None, None]})
    result = check_pass(StaticReshape, model, expect_changes=0, expect_skips=1)
    assert result.record.skips[0]["reason"] == "the shape is computed by Max 'max3', which this pass does not follow"


def test_a_shape_from_a_graph_input_is_refused():
    op = OpBuilder()
    x = ir.Value(name="x", shape=ir.Shape(["N", 4]), type=ir.TensorType(ir.DataType.FLOAT))
    s = ir.Value(name="s", shape=ir.Shape([0]), type=ir.TensorType(ir.DataType.INT64))  # empty: any feed is valid
    y = op.Reshape(x, op.Concat(dim(op, x, 0), np.array([-1]), s, axis=0))
    y.name, y.shape, y.dtype = "y", ir.Shape([None, None]), ir.DataType.FLOAT
    graph = ir.Graph([x, s], [y], nodes=op.nodes, initializers=op.initializers, opset_imports={"": 13}, name="g")
    result = check_pass(StaticReshape, ir.serde.serialize_model(ir.Model(graph, ir_version=8)), expect_changes=0,
                        expect_skips=1)
    assert result.record.skips[0]["reason"] == "the shape depends on 's', which is not computed from dims"


def test_a_shape_computed_in_the_main_graph_serves_reshapes_in_both_branches():
    result = check_pass(StaticReshape, shape_in_main_reshape_in_branches(["N", 3, 4]), expect_changes=2)
    [if_node] = [n for n in result.model.graph if n.op_type == "If"]
    assert [n.op_type for n in result.model.graph] == ["If"]  # the shape nodes went with their last reader
    for name in ("then_branch", "else_branch"):
        reshape = next(n for n in if_node.attributes[name].as_graph() if n.op_type == "Reshape")
        assert [int(v) for v in reshape.inputs[1].producer().attributes["value"].as_tensor().numpy()] == [0, 12]


def export(module, shape, dynamic):
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (torch.randn(*shape),), buffer, dynamo=False, opset_version=13,
                          input_names=["x"], dynamic_axes={"x": dynamic})
    return onnx.load_from_string(buffer.getvalue())


class Tokens(torch.nn.Module):
    def forward(self, x):
        b, c, h, w = x.shape
        return x.permute(0, 2, 3, 1).reshape(b, h * w, c), x.view(x.size(0), -1)


def test_torch_view_and_reshape_with_a_dynamic_batch():
    result = check_pass(StaticReshape, export(Tokens(), (2, 3, 4, 5), {0: "batch"}), expect_changes=2)
    shapes = [[int(v) for v in n.inputs[1].producer().attributes["value"].as_tensor().numpy()]
              for n in result.model.graph if n.op_type == "Reshape"]
    # reshape(b, h*w, c) reshapes the permuted tensor, whose batch is not provably x's (no dim_param
    # on it): -1 infers it exactly, the other entries being nonzero constants. view(x.size(0), -1): 0.
    assert shapes == [[-1, 20, 3], [0, -1]]
    assert "Shape" not in [n.op_type for n in result.model.graph]


@st.composite
def flattenings(draw):
    """x with random static / dynamic dims, reshaped to its first k dims (copied) and the rest merged."""
    rank = draw(st.integers(2, 4))
    dims = [draw(st.sampled_from([2, 3, f"d{i}"])) for i in range(rank)]
    return dims, draw(st.integers(1, rank - 1)), draw(st.booleans())


def flattening_model(dims, keep, literal):
    def pattern(op, x):
        merged = np.array([-1]) if literal else dim(op, x, keep)
        for i in range(keep + 1, len(dims)) if not literal else ():
            merged = op.Mul(merged, dim(op, x, i))
        return op.Reshape(x, op.Concat(*[dim(op, x, i) for i in range(keep)], merged, axis=0))

    return build(pattern, {"x": dims}, {"y": [None] * (keep + 1)})


def test_random_flattenings_keep_outputs_and_fire_where_the_rules_say():
    fired = []

    @settings(max_examples=30, deadline=None)
    @given(flattenings())
    def check(case):
        dims, keep, literal = case
        result = check_pass(StaticReshape, flattening_model(dims, keep, literal), expect_changes=ANY,
                            expect_skips=ANY, scopes=())
        merged_static = all(isinstance(v, int) for v in dims[keep:])
        kept_static = all(isinstance(v, int) for v in dims[:keep])
        in_place = keep == len(dims) - 1  # the merged entry is one dim, copied in its place
        assert result.record.changes == int(literal or merged_static or kept_static or in_place)
        fired.append(result.record.changes == 1)

    check()
    assert sum(fired) / len(fired) >= 0.7, fired
