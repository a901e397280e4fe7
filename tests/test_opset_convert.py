"""Opset conversion (issue 9, requirement 6): down to what older ATC releases accept where the
target can express the model, a one-line refusal naming the node where it cannot, every scope,
the supported range, and upward conversion that neither copies nor reads the weights."""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from helpers import digest, make_model, save
from onnx import TensorProto, helper, numpy_helper
from opset_models import (
    CASES,
    MIXED_INPUT,
    PATTERN_X,
    REFUSALS,
    SCOPES,
    UPS,
    export_mixed,
    floats,
    ir_for,
    node,
    scoped,
)

from optimizer.errors import UserError
from optimizer.modelio import load_model, save_model
from optimizer.opset import convert_opset, supported_opsets
from optimizer.testing import check_pass
from optimizer.verify import run_onnxruntime

HERE = Path(".")
NEWEST = onnx.defs.onnx_opset_version()


def convert(model: ir.Model, opset: int) -> ir.Model:
    """``convert_opset`` checked: the input is unchanged, the result passes the checker at ``opset``
    (every scope there, functions included)."""
    before = ir.serde.serialize_model(model).SerializeToString()
    result = convert_opset(model, opset, HERE)
    assert ir.serde.serialize_model(model).SerializeToString() == before, "convert_opset changed its input"
    proto = ir.serde.serialize_model(result)
    onnx.checker.check_model(proto, full_check=True)
    assert {o.domain: o.version for o in proto.opset_import}[""] == opset
    for function in proto.functions:
        assert {o.domain: o.version for o in function.opset_import}[""] == opset, function.name
    return result


def assert_same_outputs(expected: dict, actual: dict) -> None:
    assert expected.keys() == actual.keys()
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def random_x(shape, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# -- 1. downward conversion, each op family, into each ATC opset it can reach ---------------------------
DOWN = [pytest.param(name, target, id=f"{name}-to-{target}") for name, case in CASES.items() for target in case.targets]


@pytest.mark.parametrize("name, target", DOWN)
def test_converts_down_keeping_the_numbers(name, target):
    case = CASES[name]
    model = ir.serde.deserialize_model(case.model())
    feeds = {"x": random_x(case.x), **case.feeds}
    expected = run_onnxruntime(model, feeds)
    converted = convert(model, target)
    assert_same_outputs(expected, run_onnxruntime(converted, feeds))
    # and back up to where it came from (onnx's converter, Resize-10 -> 11 keeps its coordinates)
    assert_same_outputs(expected, run_onnxruntime(convert(converted, case.opset), feeds))


UP = [pytest.param(name, target, id=f"{name}-to-{target}") for name, case in UPS.items() for target in case.targets]


@pytest.mark.parametrize("name, target", UP)
def test_old_resizes_go_up_keeping_the_numbers(name, target):
    case = UPS[name]
    model = ir.serde.deserialize_model(case.model())
    feeds = {"x": random_x(case.x)}
    assert_same_outputs(run_onnxruntime(model, feeds), run_onnxruntime(convert(model, target), feeds))


def test_constant_inputs_computed_by_constant_nodes_are_folded_into_attributes():
    model = ir.serde.deserialize_model(CASES["unsqueeze-13-folded"].model())
    converted = convert(model, 11)
    [unsqueeze] = list(converted.graph)
    assert list(unsqueeze.attributes.get_ints("axes")) == [1, 3] and len(unsqueeze.inputs) == 1


@pytest.mark.parametrize(
    "name, target, expected",
    [
        ("softmax-13-middle-axis", 12, ["Transpose", "Softmax", "Transpose"]),
        ("softmax-13-trailing-ones", 12, ["Softmax"]),
        ("slice-13", 9, ["Slice"]),
        ("resize-18-nearest", 9, ["Constant", "Upsample"]),
        ("reducemax-18-noop", 13, ["Identity"]),
    ],
)
def test_the_old_form_is_the_one_expected(name, target, expected):
    converted = convert(ir.serde.deserialize_model(CASES[name].model()), target)
    assert [n.op_type for n in converted.graph] == expected


def test_softmax_flattening_is_what_the_transposes_avoid():
    """Relabelling Softmax(axis=1) of [4, 6, 8] as opset 12 would normalise 6*8 values together."""
    case = CASES["softmax-13-middle-axis"]
    feeds = {"x": random_x(case.x)}
    expected = run_onnxruntime(ir.serde.deserialize_model(case.model()), feeds)["y"]
    relabelled = case.model()
    relabelled.opset_import[0].version = 12
    naive = run_onnxruntime(ir.serde.deserialize_model(relabelled), feeds)["y"]
    assert not np.allclose(naive, expected, atol=1e-3)


@pytest.mark.parametrize("source", [13, 18])
def test_a_torch_export_converts_down(source, tmp_path):
    path = export_mixed(tmp_path / f"mixed{source}.onnx", source)
    model = load_model(path)
    assert {"Pad", "Slice", "Split", "Softmax", "ReduceSum", "Resize", "Clip"} <= {n.op_type for n in model.graph}
    feeds = {"image": random_x(MIXED_INPUT)}
    expected = run_onnxruntime(model, feeds)
    for target in range(9, 14):
        if target < source:
            assert_same_outputs(expected, run_onnxruntime(convert(model, target), feeds))


def test_the_cli_converts_alone_and_verifies(cli, tmp_path):
    source = export_mixed(tmp_path / "mixed.onnx", 13)
    before = digest(source)
    out = tmp_path / "mixed9.onnx"
    code, stdout, err = cli("optimize", source, "-o", out, "--opset", "9", "--passes", "none")
    assert code == 0, err
    assert "verification with onnxruntime" in stdout and "passed" in stdout
    saved = onnx.load(str(out))
    onnx.checker.check_model(saved, full_check=True)
    assert [(o.domain, o.version) for o in saved.opset_import] == [("", 9)]
    assert digest(source) == before


def test_the_skunit_export_converts_down(torch_model):
    model = load_model(torch_model("skunit", 13))
    feeds = {"image": random_x([1, 16, 14, 14])}
    expected = run_onnxruntime(model, feeds)
    for target in (9, 11, 12):
        assert_same_outputs(expected, run_onnxruntime(convert(model, target), feeds))


# -- 2. what the target cannot express: exit 2, one line naming the node, nothing written ----------------
@pytest.mark.parametrize("name", list(REFUSALS))
def test_inexpressible_models_are_refused_in_one_line(name, cli, tmp_path):
    case, target, reason = REFUSALS[name]
    refused = case.nodes[-1]
    source = save(case.model(), tmp_path / "in.onnx")
    before = digest(source)
    out = tmp_path / "out.onnx"
    runtime_inputs = ["--no-verify"] if case.inputs else []  # random integers would not run the original
    code, _, err = cli("optimize", source, "-o", out, "--opset", target, "--passes", "none", *runtime_inputs)
    assert code == 2, err
    [line] = err.strip().splitlines()
    assert "Traceback" not in err
    assert f"cannot convert to opset {target}: node '{refused.name}' ({refused.op_type})" in line
    assert reason in line
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["in.onnx"]
    assert digest(source) == before


def test_a_refusal_in_a_branch_names_the_branch(cli, tmp_path):
    steps = numpy_helper.from_array(np.array([2], dtype=np.int64))
    then = helper.make_graph(
        [
            *[helper.make_node("Constant", [], [n], name=f"{n}_c", value=numpy_helper.from_array(np.array([v])))
              for n, v in (("starts", 0), ("ends", 6), ("axes", 1))],
            helper.make_node("Constant", [], ["steps"], name="steps_c", value=steps),
            helper.make_node("Slice", ["x", "starts", "ends", "axes", "steps"], ["y"], name="strided"),
        ],
        "then", [], [floats("y", [4, 3])],
    )
    other = helper.make_graph([helper.make_node("Slice", ["x", "starts_o", "ends_o"], ["z"], name="plain")], "else",
                              [], [floats("z", [4, 3])])
    model = make_model(
        [helper.make_node("If", ["cond"], ["out"], then_branch=then, else_branch=other, name="choose")],
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []), ("x", [4, 6])], [("out", [4, 3])],
        initializers=[("starts_o", np.array([0])), ("ends_o", np.array([3]))], opset=13, ir_version=ir_for(13),
    )
    source = save(model, tmp_path / "in.onnx")
    code, _, err = cli("optimize", source, "-o", tmp_path / "out.onnx", "--opset", "9", "--passes", "none")
    assert code == 2
    assert err.strip() == (
        "onnx-opt: error: cannot convert to opset 9: node 'strided' (Slice) in then_branch of If 'choose': "
        "it slices with steps [2]; Slice has steps only from opset 10"
    )
    assert not (tmp_path / "out.onnx").exists()


# -- 3. every scope: main graph, If branches, Loop body, model-local function --------------------------
SCOPE_RUNS = [
    pytest.param(scope, source, target, id=f"{scope}-{source}-to-{target}")
    for scope in SCOPES
    for source, targets in ((13, (9, 10, 11, 12)), (11, (9, 13)), (9, (13, 18)))
    for target in targets
]


def run_both_ways(model: ir.Model, x: np.ndarray) -> list[dict]:
    """Outputs with the If's condition true and false (the same twice without an If)."""
    names = {value.name for value in model.graph.inputs}
    feeds = {"x": x, "a": x}
    return [
        run_onnxruntime(model, {**{k: v for k, v in feeds.items() if k in names},
                                **({"cond": np.array(side)} if "cond" in names else {})})
        for side in (True, False)
    ]


@pytest.mark.parametrize("scope, source, target", SCOPE_RUNS)
def test_every_scope_is_converted(scope, source, target):
    model = ir.serde.deserialize_model(scoped(scope, source))
    x = random_x(PATTERN_X)
    expected = run_both_ways(model, x)
    converted = convert(model, target)
    for want, got in zip(expected, run_both_ways(converted, x), strict=True):
        assert_same_outputs(want, got)
    if scope == "function":
        [function] = converted.functions.values()
        assert function.opset_imports[""] == target


@pytest.mark.parametrize("model_opset, function_opset, target", [(11, 13, 11), (11, 13, 9), (13, 11, 13)])
def test_a_function_at_another_opset_ends_at_the_models(model_opset, function_opset, target):
    """onnxruntime does not even run a function whose opset differs from the model's; after the
    conversion it computes what the function meant at its own opset."""
    model = ir.serde.deserialize_model(scoped("function", model_opset, function_opset))
    x = random_x(PATTERN_X)
    expected = run_both_ways(ir.serde.deserialize_model(scoped("main", function_opset)), x)[0]
    converted = convert(model, target)
    assert converted.opset_imports[""] == target
    assert_same_outputs({"out": expected["y"]}, run_both_ways(converted, x)[0])


def test_branches_may_take_their_constants_from_the_main_graph():
    """Both branches read axes / starts / ends that are initializers of the main graph."""
    def branch(name: str, op: str) -> onnx.GraphProto:
        nodes = [
            helper.make_node("Unsqueeze", ["x", "axes"], [f"{name}_u"], name=f"{name}_unsqueeze"),
            helper.make_node(
                "Slice", [f"{name}_u", "starts", "ends", "slice_axes"], [f"{name}_s"], name=f"{name}_slice"
            ),
            helper.make_node(op, [f"{name}_s"], [f"{name}_y"], name=f"{name}_op"),
        ]
        return helper.make_graph(nodes, name, [], [floats(f"{name}_y", [1, 4, 2])])

    model = make_model(
        [helper.make_node("If", ["cond"], ["y"], then_branch=branch("then", "Relu"), else_branch=branch("else", "Neg"),
                          name="if")],
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []), ("x", [4, 6])], [("y", [1, 4, 2])],
        initializers=[("axes", np.array([0])), ("starts", np.array([1])), ("ends", np.array([-3])),
                      ("slice_axes", np.array([-1]))],
        opset=13, ir_version=ir_for(13),
    )
    original = ir.serde.deserialize_model(model)
    converted = convert(original, 9)
    assert not converted.graph.initializers  # each went into both branches as attributes
    x = random_x([4, 6])
    for side in (True, False):
        feeds = {"cond": np.array(side), "x": x}
        assert_same_outputs(run_onnxruntime(original, feeds), run_onnxruntime(converted, feeds))


def test_a_loop_that_carries_nothing_gets_a_dummy_below_opset_11():
    converted = convert(ir.serde.deserialize_model(scoped("loop", 13)), 10)
    [loop] = [n for n in converted.graph if n.op_type == "Loop"]
    assert loop.name == "loop" and len(loop.inputs) == 3 and len(loop.outputs) == 2
    assert loop.outputs[1].name == "out" and converted.graph.outputs == [loop.outputs[1]]


# -- 4. the supported range --------------------------------------------------------------------------
def test_supported_range_is_7_to_the_newest_onnx_opset():
    assert supported_opsets() == (7, NEWEST)
    for opset in (0, 6, NEWEST + 1):
        with pytest.raises(UserError, match=f"onnx-opt converts to opsets 7 to {NEWEST}$"):
            convert_opset(ir.serde.deserialize_model(CASES["slice-13"].model()), opset, HERE)


@pytest.mark.parametrize("opset", [0, 6, NEWEST + 1])
def test_opset_outside_the_range_exits_2_stating_it(opset, cli, tmp_path):
    source = save(CASES["slice-13"].model(), tmp_path / "in.onnx")
    out = tmp_path / "out.onnx"
    code, _, err = cli("optimize", source, "-o", out, "--opset", opset, "--passes", "none")
    assert code == 2
    [line] = err.strip().splitlines()
    low, high = supported_opsets()
    assert str(opset) in line and f"opsets {low} to {high}" in line, line
    assert not out.exists()


# -- 5. upward conversion neither copies nor reads the weights ----------------------------------------
WEIGHT = 1024  # a 1024 x 1024 float32 initializer: 4 MiB


def weighty(opset: int = 11) -> onnx.ModelProto:
    """x [2, 1024] -> MatMul(4 MiB weight) -> Unsqueeze(axes 0) -> Slice -> y, plus a large Constant."""
    weight = np.random.default_rng(0).standard_normal((WEIGHT, WEIGHT)).astype(np.float32)
    bias = np.linspace(-1, 1, 2 * WEIGHT, dtype=np.float32).reshape(2, WEIGHT)
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"], name="matmul"),
        helper.make_node("Constant", [], ["bias"], name="bias", value=numpy_helper.from_array(bias)),
        helper.make_node("Add", ["m", "bias"], ["a"], name="add"),
        node("Unsqueeze", ["a"], ["u"], axes=[0]),
        helper.make_node("Slice", ["u", "starts", "ends", "axes"], ["y"], name="slice"),
    ]
    return make_model(
        nodes, [("x", [2, WEIGHT])], [("y", [1, 2, WEIGHT - 1])], opset=opset, ir_version=ir_for(opset),
        initializers=[("w", weight), ("starts", np.array([1])), ("ends", np.array([WEIGHT])),
                      ("axes", np.array([-1]))],
    )


def peak_during(convert_call) -> tuple[ir.Model, int]:
    tracemalloc.start()
    try:
        result = convert_call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.mark.parametrize("target", [13, 18, 9])
def test_conversion_keeps_the_weight_objects(target):
    model = ir.serde.deserialize_model(weighty())
    weight = model.graph.initializers["w"].const_value
    bias = next(n for n in model.graph if n.name == "bias").attributes.get_tensor("value")
    converted, peak = peak_during(lambda: convert_opset(model, target, HERE))
    assert converted.graph.initializers["w"].const_value is weight
    assert next(n for n in converted.graph if n.name == "bias").attributes.get_tensor("value") is bias
    assert peak < weight.nbytes // 4, f"peak {peak} bytes while converting a {weight.nbytes}-byte weight"
    feeds = {"x": random_x([2, WEIGHT])}
    assert_same_outputs(run_onnxruntime(model, feeds), run_onnxruntime(convert(model, target), feeds))


def test_upward_conversion_never_reads_external_data(tmp_path):
    path = tmp_path / "weighty.onnx"
    save_model(ir.serde.deserialize_model(weighty()), path, external_data=True)
    data = tmp_path / "weighty.onnx.data"
    model = load_model(path)
    weight = model.graph.initializers["w"].const_value
    assert isinstance(weight, ir.ExternalTensor)
    hidden = data.rename(tmp_path / "elsewhere")  # reading it would now fail
    try:
        converted, peak = peak_during(lambda: convert_opset(model, 18, tmp_path))
    finally:
        shutil.move(hidden, data)
    assert converted.graph.initializers["w"].const_value is weight and weight.raw is None
    assert peak < weight.nbytes // 4, f"peak {peak} bytes while converting a {weight.nbytes}-byte weight"
    assert converted.opset_imports[""] == 18 and converted.ir_version == ir_for(18)
    feeds = {"x": random_x([2, WEIGHT])}
    assert_same_outputs(run_onnxruntime(path, feeds), run_onnxruntime(converted, feeds))


# -- 6. a pass that refuses only because of the opset names the --opset that lets it run ---------------
def test_fuse_depth_to_space_crd_below_11_names_opset_11():
    x, c, b = [1, 8, 3, 5], 2, 2
    nodes = [
        helper.make_node("Reshape", ["x", "s1"], ["r"], name="split_channels"),
        helper.make_node("Transpose", ["r"], ["t"], perm=[0, 1, 4, 2, 5, 3], name="crd"),
        helper.make_node("Reshape", ["t", "s2"], ["y"], name="merge_space"),
    ]
    model = make_model(
        nodes, [("x", x)], [("y", [1, c, 6, 10])], opset=13, ir_version=ir_for(13),
        initializers=[("s1", np.array([1, c, b, b, 3, 5])), ("s2", np.array([1, c, 6, 10]))],
    )
    result = check_pass("fuse-depth-to-space", model, final_opset=10, expect_changes=0, expect_skips=1)
    [skip] = result.record.skips
    assert "--opset 11" in skip["reason"], skip


def test_softmax_transpose_below_13_names_opset_13():
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1], name="t1"),
        helper.make_node("Softmax", ["t"], ["s"], axis=-1, name="softmax"),
        helper.make_node("Transpose", ["s"], ["y"], perm=[0, 2, 1], name="t2"),
    ]
    model = make_model(nodes, [("x", [2, 3, 4])], [("y", [2, 3, 4])], opset=13, ir_version=ir_for(13))
    result = check_pass("softmax-transpose", model, final_opset=11, expect_changes=0, expect_skips=1)
    [skip] = result.record.skips
    assert "--opset 13" in skip["reason"], skip
