import numpy as np
import onnx
import pytest
import torch
from helpers import assert_fires_often, op_types
from hypothesis import strategies as st
from torch import nn

from optimizer.passapi import PassContext
from optimizer.targets import load_target
from optimizer.testing import ANY, check_pass, pattern_model
from passes.fuse_attention import FuseAttention

RNG = np.random.default_rng(0)
B, H, S, L, D = 2, 3, 5, 6, 4
OPSET = 23


def weights(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def attention_model(core, inputs, *, opset=OPSET):
    return pattern_model(core, inputs, opset=opset, ir_version=10)


def inner_ops(result):
    return [t for t in op_types(result.model) if t != "Constant"]


def reasons(result):
    return [skip["reason"] for skip in result.record.skips]


def attention_node(result):
    return next(n for n in result.model.graph if n.op_type == "Attention")


def vit_core(op, q, k, v, mask):
    scores = op.Mul(op.MatMul(q, op.Transpose(k, perm=[0, 1, 3, 2])), np.array(D ** -0.5, np.float32))
    return op.MatMul(op.Softmax(op.Add(scores, mask), axis=-1), v)


QKV = {"q": [B, H, S, D], "k": [B, H, L, D], "v": [B, H, L, D]}


@pytest.mark.parametrize("mask", [[B, 1, 1, L], [1, 1, S, L], [S, L], [L], [B, H, S, L], [H, S, L]])
def test_a_masked_scaled_core_becomes_one_attention_node(mask):
    result = check_pass(FuseAttention, attention_model(vit_core, {**QKV, "mask": mask}), expect_changes=1)
    expands = mask[-2:] != [S, L]
    assert inner_ops(result) == ["Expand", "Attention"] if expands else ["Attention"]
    assert attention_node(result).attributes.get_float("scale") == pytest.approx(D ** -0.5)
    assert attention_node(result).inputs[1].name == "k"  # K's Transpose folded away


def test_a_divided_score_with_the_key_transposed_from_its_projection_layout():
    def core(op, q, k_projected, v):  # k_projected [B, L, H, D] -> Kt [B, H, D, L] in one Transpose
        scores = op.Div(op.MatMul(q, op.Transpose(k_projected, perm=[0, 2, 3, 1])), np.array(2.0, np.float32))
        return op.MatMul(op.Softmax(scores), v)

    model = attention_model(core, {"q": [B, H, S, D], "k_projected": [B, L, H, D], "v": [B, H, L, D]})
    result = check_pass(FuseAttention, model, expect_changes=1)
    assert inner_ops(result) == ["Transpose", "Attention"]
    transpose = next(n for n in result.model.graph if n.op_type == "Transpose")
    assert list(transpose.attributes.get_ints("perm")) == [0, 2, 1, 3]
    assert attention_node(result).attributes.get_float("scale") == 0.5


def test_sdpa_style_scales_on_q_and_on_the_transposed_key_multiply():
    def core(op, q, k, v):  # what scaled_dot_product_attention exports once its scale is folded
        root = np.array(D ** -0.25, np.float32)
        kt = op.Mul(op.Transpose(k, perm=[0, 1, 3, 2]), root)
        return op.MatMul(op.Softmax(op.MatMul(op.Mul(root, q), kt), axis=3), v)

    result = check_pass(FuseAttention, attention_model(core, QKV), expect_changes=1)
    assert inner_ops(result) == ["Attention"]
    assert attention_node(result).attributes.get_float("scale") == pytest.approx(D ** -0.5)


def test_an_unscaled_core_on_a_key_given_transposed_gets_a_transpose_and_scale_1():
    def core(op, q, kt, v):
        return op.MatMul(op.Softmax(op.MatMul(q, kt)), v)

    result = check_pass(FuseAttention, attention_model(core, {"q": [B, H, S, D], "kt": [B, H, D, L],
                                                              "v": [B, H, L, 7]}), expect_changes=1)
    assert inner_ops(result) == ["Transpose", "Attention"]
    assert attention_node(result).attributes.get_float("scale") == 1.0


def test_dynamic_lengths_expand_the_mask_from_the_shapes_of_q_and_v():
    inputs = {"q": ["b", H, "s", D], "k": ["b", H, "l", D], "v": ["b", H, "l", D], "mask": ["b", 1, 1, "l"]}
    result = check_pass(FuseAttention, attention_model(vit_core, inputs), expect_changes=1,
                        verify_shapes={"q": [B, H, S, D], "k": [B, H, L, D], "v": [B, H, L, D], "mask": [B, 1, 1, L]})
    assert inner_ops(result) == ["Shape", "Shape", "Concat", "Expand", "Attention"]


def test_two_blocks_with_a_residual_between_are_two_changes():
    def two(op, q, k, v, mask):
        first = vit_core(op, q, k, v, mask)
        return vit_core(op, op.Add(first, q), k, v, mask)

    result = check_pass(FuseAttention, attention_model(two, {**QKV, "mask": [1, 1, S, L]}), expect_changes=2)
    assert inner_ops(result) == ["Attention", "Add", "Attention"]


def refused(core, inputs, **kwargs):
    result = check_pass(FuseAttention, attention_model(core, inputs), expect_changes=0, expect_skips=1, **kwargs)
    return reasons(result)[0]


def test_rank_3_heads_folded_into_the_batch_are_refused():
    def bmm(op, q, k, v):
        return op.MatMul(op.Softmax(op.MatMul(q, op.Transpose(k, perm=[0, 2, 1]))), v)

    reason = refused(bmm, {"q": [B * H, S, D], "k": [B * H, L, D], "v": [B * H, L, D]})
    assert reason == "Q has rank 3; Attention takes [batch, heads, length, depth] (rank 4)"


def test_a_softmax_over_another_axis_is_refused():
    def core(op, q, kt, v):
        return op.MatMul(op.Softmax(op.MatMul(q, kt), axis=2), v)

    reason = refused(core, {"q": [B, H, S, D], "kt": [B, H, D, S], "v": [B, H, S, D]})
    assert reason == "the Softmax reduces axis 2, not the key axis (-1)"


def test_scores_used_twice_are_refused():
    def core(op, q, kt, v):
        scores = op.MatMul(q, kt)
        return op.Add(op.MatMul(op.Softmax(scores), v), op.ReduceMean(scores, op.Constant(value_ints=[3])))

    reason = refused(core, {"q": [B, H, S, D], "kt": [B, H, D, D], "v": [B, H, D, D]})
    assert reason.startswith("the scores Q @ K^T (") and "used outside the attention block" in reason


def test_a_mask_that_broadcasts_the_batch_is_refused():
    reason = refused(vit_core, {"q": [1, H, S, D], "k": [1, H, L, D], "v": [1, H, L, D], "mask": [B, 1, S, L]})
    assert reason == "mask dim 2 against scores dim 1 may broadcast the scores' batch or heads"


def test_shared_key_heads_broadcast_by_matmul_are_refused():
    reason = refused(vit_core, {"q": [B, H, S, D], "k": [B, 1, L, D], "v": [B, 1, L, D], "mask": [S, L]})
    assert reason == "Q, K and V do not provably share their head dim (MatMul broadcasts it, Attention does not)"


def test_double_is_refused():
    def core(op, q, kt, v):
        return op.MatMul(op.Softmax(op.MatMul(q, kt)), v)

    shape = [B, H, S, S]
    reason = refused(core, {name: (shape, "float64") for name in ("q", "kt", "v")})
    assert reason == "Q is DOUBLE; Attention takes float, float16 or bfloat16"


def test_below_opset_23_the_pass_says_which_opset_lets_it_run():
    model = attention_model(vit_core, {**QKV, "mask": [S, L]}, opset=17)
    import onnx_ir as ir

    reason = FuseAttention.requires.unmet(ir.from_proto(model), PassContext(load_target("onnxruntime")))
    assert reason == "needs opset >= 23; the model has opset 17 (--opset 23 lets it run)"


def two_forms(op, q, k, v, mask):
    masked = op.MatMul(op.Softmax(op.Add(op.MatMul(q, op.Transpose(k, perm=[0, 1, 3, 2])), mask)), v)
    plain = op.MatMul(op.Softmax(op.MatMul(q, op.Transpose(k, perm=[0, 1, 3, 2]))), v)
    return op.Add(masked, plain)


# the builder names nodes by op type and position
KT1, QK1, PV1, QK2, PV2 = "transpose0", "matmul1", "matmul4", "matmul6", "matmul8"


def test_start_and_end_fuse_the_blocks_built_like_the_named_one():
    model = attention_model(two_forms, {**QKV, "mask": [S, L]})
    assert [n.name for n in model.graph.node if n.op_type in ("Transpose", "MatMul")] == [
        KT1, QK1, PV1, "transpose5", QK2, PV2]
    result = check_pass(FuseAttention, model, options={"start": QK1, "end": PV1}, expect_changes=1,
                        expect_skips=1)
    assert reasons(result) == [f"built unlike the block {QK1}..{PV1} (unscaled, unmasked)"]
    assert inner_ops(result).count("Attention") == 1 and inner_ops(result).count("Softmax") == 1
    check_pass(FuseAttention, model, options={"start": KT1, "end": PV1}, expect_changes=1, expect_skips=1)
    check_pass(FuseAttention, model, options={"start": QK2, "end": PV2}, expect_changes=1, expect_skips=1)


@pytest.mark.parametrize(("options", "reason"), [
    ({"start": QK1}, "set both fuse-attention.start and fuse-attention.end, or neither"),
    ({"start": "nowhere", "end": PV1}, "no node named 'nowhere' in the model"),
    ({"start": QK1, "end": PV2}, f"'{QK1}'..'{PV2}' is no attention block (see the rules of fuse-attention)"),
])
def test_options_that_name_no_block_skip_the_pass_with_the_reason(options, reason):
    import onnx_ir as ir

    from optimizer.passapi import SkipPass

    pass_ = FuseAttention(FuseAttention.Options(**options))
    with pytest.raises(SkipPass) as raised:
        pass_.run(ir.from_proto(attention_model(two_forms, {**QKV, "mask": [S, L]})),
                  PassContext(load_target("onnxruntime")))
    assert str(raised.value) == reason


class Block(nn.Module):
    """A ViT attention block with a padding mask, written by hand as timm does."""

    def __init__(self, dim: int = 16, heads: int = 4) -> None:
        super().__init__()
        self.qkv, self.proj, self.heads, self.scale = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim), heads, 0.5

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attention = ((q @ k.transpose(-2, -1)) * self.scale + mask).softmax(dim=-1)
        return self.proj((attention @ v).transpose(1, 2).reshape(b, n, c))


def test_a_torch_vit_block_is_fused_through_the_cli(cli, tmp_path):
    torch.manual_seed(0)
    source, out = tmp_path / "vit.onnx", tmp_path / "vit.opt.onnx"
    torch.onnx.export(Block().eval(), (torch.randn(2, 5, 16), torch.zeros(2, 1, 1, 5)), str(source),
                      dynamo=False, opset_version=17)
    before = source.read_bytes()
    code, _, err = cli("optimize", source, "-o", out, "--opset", "23", "--passes", "fuse-attention")
    assert code == 0, err
    assert source.read_bytes() == before
    ops = op_types(onnx.load(str(out)))
    assert "Attention" in ops and "Softmax" not in ops


MASKS = [None, [B, 1, 1, L], [1, 1, S, L], [S, L], [B, H, S, L]]


@st.composite
def attention_graphs(draw):
    """Cores with every optional part drawn; about one in eight also uses a score elsewhere (refused)."""
    q_scale, k_scale = draw(st.booleans()), draw(st.booleans())
    score_op = draw(st.sampled_from(["", "Mul", "Div"]))
    mask = draw(st.sampled_from(MASKS))
    key = draw(st.sampled_from(["swap", "projected", "given"]))
    leak = draw(st.integers(0, 7)) == 0
    scale_first = draw(st.booleans())

    def core(op, q, k, v, *maybe_mask):
        if key == "swap":
            kt = op.Transpose(k, perm=[0, 1, 3, 2])
        elif key == "projected":
            kt = op.Transpose(k, perm=[0, 2, 3, 1])
        else:
            kt = k
        q = op.Mul(q, np.array(0.7, np.float32)) if q_scale else q
        kt = op.Mul(np.array(1.3, np.float32), kt) if k_scale else kt
        scores = op.MatMul(q, kt)
        if score_op:
            scores = getattr(op, score_op)(scores, np.array(3.0, np.float32))
        if maybe_mask:
            scores = op.Add(scores, maybe_mask[0]) if scale_first else op.Add(maybe_mask[0], scores)
        out = op.MatMul(op.Softmax(scores), v)
        return op.Add(out, op.ReduceMax(scores, op.Constant(value_ints=[3]))) if leak else out

    k_shape = {"swap": [B, H, L, D], "projected": [B, L, H, D], "given": [B, H, D, L]}[key]
    inputs = {"q": [B, H, S, D], "k": k_shape, "v": [B, H, L, D]}
    if mask is not None:
        inputs["mask"] = mask
    return attention_model(core, inputs)


def test_property_random_attention_cores_keep_their_outputs(record_property):
    assert_fires_often(FuseAttention, attention_graphs(), examples=30, share=0.75, record_property=record_property)


def test_every_scope_fuses_the_same_block():
    result = check_pass(FuseAttention, attention_model(vit_core, {**QKV, "mask": [B, 1, 1, L]}),
                        scopes=("function", "if", "loop"), expect_changes=ANY)
    assert result.record.changes == 1
