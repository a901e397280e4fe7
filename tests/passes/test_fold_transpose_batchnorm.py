import numpy as np
import onnx
import onnx_ir as ir
import pytest
import torch
from helpers import make_model, op_types
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from torch import nn

from optimizer.manager import SKIPPED, PassManager
from optimizer.passapi import PassContext
from optimizer.targets import load_target
from optimizer.testing import ANY, check_pass, nest, registered
from optimizer.verify import run_onnxruntime
from passes.fold_transpose_batchnorm import FoldTransposeBatchnorm

# x * s + b with s, b folded in float64 rounds differently from ORT's (x - mean) / sqrt(var + eps) *
# scale + B in float32: a few ulps of outputs of size ~1-10 (seen: 4.8e-7 abs, 2e-7 rel), 1e-7 fails.
TOL = {"rtol": 1e-6, "atol": 1e-6}
NESTINGS = ("function", "if")  # the kit's Loop nesting needs an int64 Constant, which opset 7 lacks


def statistics(channels, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return {
        "scale": rng.standard_normal(channels).astype(dtype),
        "bias": rng.standard_normal(channels).astype(dtype),
        "mean": rng.standard_normal(channels).astype(dtype),
        "var": rng.uniform(0.1, 2.0, channels).astype(dtype),
    }


def sandwich(shape, p, q, opset=13, bn_attributes=None, stats=None, bn_outputs=("t2",), elem=TensorProto.FLOAT):
    channels = shape[p[1]] if p is not None else shape[::-1][1]
    stats = stats or statistics(channels, dtype=helper.tensor_dtype_to_np_dtype(elem))
    first = {"perm": p} if p is not None else {}
    last = {"perm": q} if q is not None else {}
    nodes = [
        helper.make_node("Transpose", ["x"], ["t1"], name="first", **first),
        helper.make_node("BatchNormalization", ["t1", *stats], list(bn_outputs), name="bn", **(bn_attributes or {})),
        helper.make_node("Transpose", ["t2"], ["y"], name="last", **last),
    ]
    inputs = [helper.make_tensor_value_info("x", elem, shape)]
    outputs = [helper.make_tensor_value_info("y", elem, shape)]
    return make_model(nodes, inputs, outputs, initializers=list(stats.items()), opset=opset)


@pytest.mark.parametrize("opset", [7, 9, 14, 15])
def test_channels_last_batchnorm1d_becomes_mul_add(opset):
    result = check_pass(FoldTransposeBatchnorm, sandwich([2, 5, 3], [0, 2, 1], [0, 2, 1], opset), expect_changes=1,
                        scopes=NESTINGS if opset < 9 else ("function", "if", "loop"), **TOL)
    assert op_types(result.model) == ["Constant", "Constant", "Mul", "Add"]
    shapes = [list(n.attributes["value"].as_tensor().shape) for n in result.model.graph if n.op_type == "Constant"]
    assert shapes == [[1, 1, 3], [1, 1, 3]]


def test_nhwc_channels_end_on_the_last_axis():
    result = check_pass(FoldTransposeBatchnorm, sandwich([1, 4, 5, 3], [0, 3, 1, 2], [0, 2, 3, 1]), expect_changes=1,
                        **TOL)
    shapes = [list(n.attributes["value"].as_tensor().shape) for n in result.model.graph if n.op_type == "Constant"]
    assert shapes == [[1, 1, 1, 3], [1, 1, 1, 3]]


def test_transposes_without_perm_reverse_the_axes():
    check_pass(FoldTransposeBatchnorm, sandwich([3, 6], None, None), expect_changes=1, **TOL)


def test_double_constants_stay_double():
    result = check_pass(FoldTransposeBatchnorm, sandwich([2, 5, 3], [0, 2, 1], [0, 2, 1], elem=TensorProto.DOUBLE),
                        expect_changes=1, rtol=1e-12, atol=1e-12)  # float64 throughout: only double rounding
    dtypes = {n.attributes["value"].as_tensor().dtype for n in result.model.graph if n.op_type == "Constant"}
    assert dtypes == {ir.DataType.DOUBLE}


def test_from_opset_15_a_function_input_of_unknown_type_gets_castlike():
    model = sandwich([2, 5, 3], [0, 2, 1], [0, 2, 1], 15)
    result = check_pass(FoldTransposeBatchnorm, model, expect_changes=1, **TOL)  # nested runs check CastLike's numbers
    assert "CastLike" not in op_types(result.model)
    run = run_pass(ir.serde.deserialize_model(nest(model, "function")))
    [function] = run.model.functions.values()
    assert op_types(function.graph).count("CastLike") == 2


def refusal(model, reason, **kwargs):
    result = check_pass(FoldTransposeBatchnorm, model, expect_changes=0, expect_skips=1, **kwargs)
    assert result.record.skips[0]["reason"] == reason


def test_refuses_perms_that_do_not_cancel():
    stats = statistics(3)
    nodes = [
        helper.make_node("Transpose", ["x"], ["t1"], name="first", perm=[0, 2, 1, 3]),
        helper.make_node("BatchNormalization", ["t1", *stats], ["t2"], name="bn"),
        helper.make_node("Transpose", ["t2"], ["y"], name="last", perm=[0, 2, 3, 1]),
    ]
    model = make_model(nodes, [("x", [2, 4, 3, 5])], [("y", [2, 4, 5, 3])], initializers=list(stats.items()))
    refusal(model, "perm [0, 2, 3, 1] of last does not undo perm [0, 2, 1, 3] of first")


def test_refuses_an_intermediate_with_another_consumer():
    model = sandwich([2, 5, 3], [0, 2, 1], [0, 2, 1])
    model.graph.node.append(helper.make_node("Relu", ["t2"], ["r"], name="relu"))
    model.graph.output.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [2, 3, 5]))
    refusal(model, "an intermediate tensor has another consumer or is a graph output")


def test_refuses_statistics_that_are_not_constant():
    model = sandwich([2, 5, 3], [0, 2, 1], [0, 2, 1])
    var = next(i for i in model.graph.initializer if i.name == "var")
    model.graph.initializer.remove(var)
    model.graph.input.append(helper.make_tensor_value_info("var", TensorProto.FLOAT, [3]))
    refusal(model, "scale, B, mean and var must all be constants", verify_shapes={"var": [3]})


def test_refuses_spatial_0_at_opset_7():
    stats = {name: np.resize(array, (3, 5)) for name, array in statistics(3).items()}  # per-activation
    refusal(sandwich([2, 5, 3], [0, 2, 1], [0, 2, 1], 7, {"spatial": 0}, stats),
            "BatchNormalization has spatial=0 (per-activation statistics)", scopes=NESTINGS)


def run_pass(model):
    """Run the pass alone, without the kit's checks."""
    with registered(FoldTransposeBatchnorm):
        return PassManager([FoldTransposeBatchnorm.name], PassContext(load_target("onnxruntime"))).run(model)


def run_without_verification(model):
    """The pass's record alone: onnxruntime cannot run a BatchNormalization in training form."""
    return run_pass(ir.serde.deserialize_model(model)).records[0]


def test_refuses_training_mode_and_statistics_outputs():
    record = run_without_verification(sandwich([2, 5, 3], [0, 2, 1], [0, 2, 1], 14, {"training_mode": 1}))
    assert [s["reason"] for s in record.skips] == ["BatchNormalization has training_mode=1"]
    outputs = ("t2", "running_mean", "running_var", "saved_mean", "saved_var")
    record = run_without_verification(sandwich([2, 5, 3], [0, 2, 1], [0, 2, 1], 9, bn_outputs=outputs))
    assert [s["reason"] for s in record.skips] == ["BatchNormalization has statistics outputs (training form)"]


def test_requires_opset_7():
    record = run_without_verification(sandwich([2, 5, 3], [0, 2, 1], [0, 2, 1], 6, {"is_test": 1}))
    assert record.status == SKIPPED and record.reason.startswith("needs opset >= 7")


class ChannelsLastNorm(nn.Module):
    """Linear features [B, T, C] normalised by BatchNorm1d over C, as sequence models write it."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(6, 8)
        self.norm = nn.BatchNorm1d(8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.proj(x)  # [B, T, C]
        return torch.relu(self.norm(y.transpose(1, 2)).transpose(1, 2))


def test_torch_batchnorm1d_on_a_channels_last_tensor(tmp_path):
    from torch_models import export

    torch.manual_seed(0)
    module = ChannelsLastNorm()
    with torch.no_grad():
        module.norm.running_mean.uniform_(-1, 1)
        module.norm.running_var.uniform_(0.5, 2)
    path = export(module, tmp_path / "norm.onnx", (2, 7, 6), 13)
    assert op_types(onnx.load(str(path))).count("Transpose") == 2
    result = check_pass(FoldTransposeBatchnorm, onnx.load(str(path)), expect_changes=1, **TOL)
    assert "Transpose" not in op_types(result.model) and "BatchNormalization" not in op_types(result.model)


FIRED = []


@settings(max_examples=20, deadline=None)
@given(
    dims=st.lists(st.integers(1, 4), min_size=2, max_size=4),
    order=st.randoms(use_true_random=False),
    seed=st.integers(0, 100),
)
def _folds_keep_the_outputs(dims, order, seed):
    rank = len(dims)
    p = list(range(rank))
    order.shuffle(p)
    q = [p.index(i) for i in range(rank)]
    model = sandwich(dims, p, q, stats=statistics(dims[p[1]], seed))
    result = check_pass(FoldTransposeBatchnorm, model, expect_changes=ANY, expect_skips=ANY,
                        scopes=("function",), **TOL)
    FIRED.append(result.record.changes == 1)


def test_property_random_sandwiches_keep_their_outputs():
    FIRED.clear()
    _folds_keep_the_outputs()
    assert sum(FIRED) / len(FIRED) >= 0.9, FIRED  # every drawn case is a cancelling sandwich


def test_numbers_match_numpy():
    """The folded form against numpy's BatchNormalization, independent of onnxruntime."""
    stats = statistics(3)
    result = check_pass(FoldTransposeBatchnorm, sandwich([2, 5, 3], [0, 2, 1], [0, 2, 1], stats=stats),
                        expect_changes=1, scopes=(), **TOL)
    x = np.random.default_rng(1).standard_normal((2, 5, 3)).astype(np.float32)
    expected = (x - stats["mean"]) / np.sqrt(stats["var"] + 1e-5) * stats["scale"] + stats["bias"]
    np.testing.assert_allclose(run_onnxruntime(result.model, {"x": x})["y"], expected, **TOL)


def test_refuses_statistics_not_of_shape_c_and_an_unknown_rank():
    stats = {name: array.reshape(1, 3) for name, array in statistics(3).items()}
    record = run_without_verification(sandwich([2, 5, 3], [0, 2, 1], [0, 2, 1], stats=stats))
    reason = "the statistics have shapes [[1, 3], [1, 3], [1, 3], [1, 3]], not [C]"
    assert [s["reason"] for s in record.skips] == [reason]
    model = sandwich([3, 6], None, None)
    model.graph.input[0].type.tensor_type.ClearField("shape")
    model.graph.output[0].type.tensor_type.ClearField("shape")
    record = run_without_verification(model)
    assert [s["reason"] for s in record.skips] == ["a Transpose has no perm and the rank of its input is unknown"]
