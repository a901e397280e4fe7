import numpy as np
import onnx
import pytest
import torch
from helpers import op_types
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from optimizer.testing import ANY, check_pass, pattern_model
from passes.split_qkv_matmul import SplitQkvMatmul

RNG = np.random.default_rng(0)


def projection(
    *,
    n=3,
    heads=2,
    d=4,
    at=0,
    perm=None,
    indices=None,
    ops=(("Add", "right", "columns"),),
    shape=None,
    x_shape=(2, 5, 6),
):
    """x [B, S, K] -> MatMul -> ops -> Reshape [B, S, factors] -> Transpose -> one Gather per index."""
    factors = [heads, d]
    factors.insert(at, n)
    columns = n * heads * d
    lead = list(x_shape[:-1])
    rank = len(lead) + len(factors)
    split = len(lead) + at
    perm = [split, *(i for i in range(rank) if i != split)] if perm is None else perm
    indices = list(range(n)) if indices is None else indices

    def pattern(op, x):
        y = op.MatMul(x, RNG.standard_normal((x_shape[-1], columns)).astype(np.float32))
        for op_type, side, kind in ops:
            const = {"columns": RNG.standard_normal(columns), "scalar": 0.5, "rows": RNG.standard_normal((5, 1))}[kind]
            const = np.asarray(const, dtype=np.float32)
            y = op.node(op_type, *((y, const) if side == "right" else (const, y)))
        t = op.Reshape(y, np.array([*lead, *factors] if shape is None else shape, dtype=np.int64))
        if perm != list(range(rank)):
            t = op.Transpose(t, perm=perm)
        axis = perm.index(split)
        return tuple(op.Gather(t, np.array(i, dtype=np.int64), axis=axis) for i in indices)

    return pattern_model(pattern, {"x": list(x_shape)}, opset=13)


def reasons(result):
    return [skip["reason"] for skip in result.record.skips]


def test_the_vit_layout_with_a_bias_becomes_three_matmuls():
    result = check_pass(SplitQkvMatmul, projection(perm=[2, 0, 3, 1, 4]), expect_changes=1)
    kinds = op_types(result.model)
    assert "Gather" not in kinds and kinds.count("MatMul") == 3 and kinds.count("Transpose") == 3


@pytest.mark.parametrize("at", [0, 1, 2])
def test_the_split_factor_may_sit_anywhere_among_the_columns(at):
    model = projection(at=at, ops=(("Mul", "right", "scalar"), ("Sub", "left", "columns"), ("Div", "right", "columns")))
    result = check_pass(SplitQkvMatmul, model, expect_changes=1)
    assert op_types(result.model).count("MatMul") == 3


def test_a_transpose_that_only_moves_the_split_axis_goes():
    result = check_pass(SplitQkvMatmul, projection(perm=[2, 0, 1, 3, 4]), expect_changes=1)
    assert "Transpose" not in op_types(result.model)


def test_without_a_transpose_and_with_0_and_minus_1_in_the_shape():
    model = projection(perm=[0, 1, 2, 3, 4], shape=[0, -1, 3, 2, 4], x_shape=(2, 5, 6))
    result = check_pass(SplitQkvMatmul, model, expect_changes=1)
    assert "Transpose" not in op_types(result.model)


def test_shuffled_and_negative_indices_and_a_dynamic_batch():
    model = projection(n=4, indices=[2, -4, 3, -3], shape=[-1, 5, 4, 2, 4], x_shape=("b", 5, 6))
    check_pass(SplitQkvMatmul, model, expect_changes=1, verify_shapes={"x": [3, 5, 6]})


def test_one_column_per_part_and_a_one_dim_input():
    model = projection(n=8, heads=1, d=1, x_shape=(6,), perm=[0, 1, 2])
    check_pass(SplitQkvMatmul, model, expect_changes=1)


@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (projection(indices=[0, 1]), "the Gather indices [0, 1] do not take each of 0..2 exactly once"),
        (projection(indices=[0, 1, 1]), "the Gather indices [0, 1, 1] do not take each of 0..2 exactly once"),
        (projection(ops=(("Add", "right", "rows"),)),
         "the constant of Add 'add1' has shape [5, 1], not one along the columns"),
    ],
)
def test_refusals(model, reason):
    result = check_pass(SplitQkvMatmul, model, expect_changes=0, expect_skips=1)
    assert reasons(result) == [reason]


def test_separate_projections_are_no_candidates():
    """BERT's q, k and v projections each Reshape -> Transpose with no Gather: nothing to say about them."""

    def pattern(op, x):
        heads = [op.Reshape(op.MatMul(x, RNG.standard_normal((6, 8)).astype(np.float32)), np.array([2, 5, 2, 4]))
                 for _ in range(3)]
        return tuple(op.Transpose(h, perm=[0, 2, 1, 3]) for h in heads)

    result = check_pass(SplitQkvMatmul, pattern_model(pattern, {"x": [2, 5, 6]}), expect_changes=0)
    assert result.record.skips == []


def test_a_split_of_a_leading_axis_is_refused():
    def pattern(op, x):
        t = op.Reshape(op.MatMul(x, RNG.standard_normal((6, 8)).astype(np.float32)), np.array([2, 5, 2, 4]))
        return op.Gather(t, np.array(0), axis=0), op.Gather(t, np.array(1), axis=0)

    result = check_pass(SplitQkvMatmul, pattern_model(pattern, {"x": [2, 5, 6]}), expect_changes=0, expect_skips=1)
    assert reasons(result) == ["the Gathers split axis 0, which does not come from the MatMul's columns"]


def test_a_reshape_that_merges_leading_dims_is_refused():
    def pattern(op, x):
        t = op.Reshape(op.MatMul(x, RNG.standard_normal((6, 24)).astype(np.float32)), np.array([10, 3, 8]))
        t = op.Transpose(t, perm=[1, 0, 2])
        return tuple(op.Gather(t, np.array(i)) for i in range(3))

    result = check_pass(SplitQkvMatmul, pattern_model(pattern, {"x": [2, 5, 6]}), expect_changes=0, expect_skips=1)
    assert reasons(result) == [
        "the Reshape to [10, 3, 8] does not keep the leading dims [2, 5] and split the 24 columns"
    ]


def test_a_weight_that_is_an_input_is_refused():
    def pattern(op, x, w):
        t = op.Transpose(op.Reshape(op.MatMul(x, w), np.array([2, 5, 2, 4])), perm=[2, 0, 1, 3])
        return op.Gather(t, np.array(0)), op.Gather(t, np.array(1))

    model = pattern_model(pattern, {"x": [2, 5, 6], "w": [6, 8]})
    result = check_pass(SplitQkvMatmul, model, expect_changes=0, expect_skips=1)
    assert reasons(result) == ["the MatMul's weight is not a constant 2-D tensor"]


def shared(op, x, *, other_user="matmul", index=0):
    y = op.MatMul(x, RNG.standard_normal((6, 8)).astype(np.float32))
    r = op.Reshape(y, np.array([2, 5, 2, 4]))
    t = op.Transpose(r, perm=[2, 0, 1, 3])
    first = op.Gather(t, np.array([0]) if index is None else np.array(index))
    extra = {"matmul": y, "transpose": op.Relu(t), "shape": None}[other_user]
    outputs = (first, op.Gather(t, np.array(1)))
    return outputs if extra is None else (*outputs, extra)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"other_user": "matmul"}, "an intermediate tensor has another consumer or is a graph output"),
        ({"other_user": "transpose"}, "the split tensor has a consumer other than the data input of a Gather"),
        ({"other_user": "shape", "index": None}, "Gather 'gather3' has no constant scalar index"),
    ],
)
def test_other_users_and_index_tensors_are_refused(kwargs, reason):
    model = pattern_model(lambda op, x: shared(op, x, **kwargs), {"x": [2, 5, 6]})
    result = check_pass(SplitQkvMatmul, model, expect_changes=0, expect_skips=1)
    assert reasons(result) == [reason]


def test_a_computed_shape_is_refused():
    def pattern(op, x):
        y = op.MatMul(x, RNG.standard_normal((6, 8)).astype(np.float32))
        shape = op.Concat(op.Shape(x, end=2), np.array([2, 4]), axis=0)
        t = op.Transpose(op.Reshape(y, shape), perm=[2, 0, 1, 3])
        return op.Gather(t, np.array(0)), op.Gather(t, np.array(1))

    result = check_pass(SplitQkvMatmul, pattern_model(pattern, {"x": [2, 5, 6]}, opset=15), expect_changes=0,
                        expect_skips=1)
    assert reasons(result) == ["the Reshape's shape is not a constant"]


class Attention(nn.Module):
    """A ViT attention block: fused qkv Linear -> reshape -> permute -> qkv[0], qkv[1], qkv[2]."""

    def __init__(self, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.qkv, self.proj, self.heads = nn.Linear(dim, dim * 3), nn.Linear(dim, dim), heads
        self.scale = (dim // heads) ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attention = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attention @ v).transpose(1, 2).reshape(b, n, c))


@pytest.mark.parametrize("opset", [13, 17])
def test_a_torch_vit_attention_block_is_split(tmp_path, opset):
    path = tmp_path / "vit.onnx"
    torch.onnx.export(Attention().eval(), (torch.randn(2, 5, 16),), str(path), dynamo=False, opset_version=opset)
    assert op_types(onnx.load(str(path))).count("Gather") == 3
    result = check_pass(SplitQkvMatmul, path, expect_changes=1)
    assert "Gather" not in op_types(result.model)


def test_matmul_blocks_are_bitwise_exact():
    model = projection(x_shape=(4, 33, 64), heads=4, d=16)
    result = check_pass(SplitQkvMatmul, model, expect_changes=1, rtol=0, atol=0)
    assert result.verification.ok


def test_generated_projections_are_split_exactly_and_once():
    """Random layouts, perms, index orders and constant ops; a row-wise constant (refused) now and then."""
    fired = []

    @settings(max_examples=15, deadline=None, derandomize=True)
    @given(
        n=st.integers(1, 4),
        heads=st.integers(1, 3),
        d=st.integers(1, 3),
        at=st.integers(0, 2),
        rotate=st.integers(0, 4),
        ops=st.lists(st.tuples(st.sampled_from(["Add", "Sub", "Mul", "Div"]), st.sampled_from(["left", "right"]),
                               st.sampled_from(["columns", "scalar", "columns", "scalar", "rows"])), max_size=2),
        data=st.data(),
    )
    def one(n, heads, d, at, rotate, ops, data):
        order = data.draw(st.permutations(list(range(n))))
        perm = list(range(5))
        model = projection(n=n, heads=heads, d=d, at=at, perm=perm[rotate:] + perm[:rotate], indices=order, ops=ops)
        result = check_pass(SplitQkvMatmul, model, expect_changes=ANY, expect_skips=ANY)
        valid = all(kind != "rows" for _, _, kind in ops)
        assert result.record.changes == int(valid) and len(result.record.skips) == 1 - valid, reasons(result)
        fired.append(valid)

    one()
    assert sum(fired) / len(fired) >= 0.6
