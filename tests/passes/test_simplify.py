import functools
import itertools
import os
import re

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from helpers import make_model, op_types
from onnx import TensorProto, helper, numpy_helper
from scopes import SCOPES, Pattern, place

import passes.simplify as simplify
from optimizer.manager import PassManager
from optimizer.passapi import PassContext, iter_nodes
from optimizer.targets import load_target
from optimizer.testing import check_pass as check_any_pass
from optimizer.verify import run_onnxruntime

# simplify is a whole-model pass: what onnxsim folds differs by scope, so nested runs are checked
# (numbers, checker, idempotence) without comparing the nodes they changed.
check_pass = functools.partial(check_any_pass, compare_nested=False)

# onnxslim 0.1.98 on torch_model("vad", 17), every subgraph counted (benchmarks/bench_simplify.py);
# onnxslim is not a dependency, so its count is recorded here and onnxscript's is measured live.
ONNXSLIM_VAD17_NODES = 123
VAD_SHAPES = {"input": [1, 512], "state": [2, 1, 16], "sr": []}


def run_simplify(model):
    """The pass through the manager (as ``optimize`` runs it); returns the run and its record."""
    if isinstance(model, onnx.ModelProto):
        model = ir.serde.deserialize_model(model)
    run = PassManager(["simplify"], PassContext(load_target("onnxruntime"))).run(model)
    return run, run.records[0]


def count_everywhere(model) -> int:
    """Nodes of the main graph, every If / Loop / Scan body at any depth and every function,
    counted on the serialised proto (independently of the pass's own counter)."""
    proto = ir.serde.serialize_model(model) if isinstance(model, ir.Model) else model

    def count(nodes) -> int:
        total = 0
        for node in nodes:
            total += 1
            for attr in node.attribute:
                total += count(attr.g.node) if attr.type == onnx.AttributeProto.GRAPH else 0
                total += sum(count(graph.node) for graph in attr.graphs)
        return total

    return count(proto.graph.node) + sum(count(function.node) for function in proto.functions)


def ops_everywhere(model) -> list[str]:
    return [node.op_type for node in iter_nodes(model)]


def const(name, array):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(array), name), name=name)


def note_counts(note: str) -> tuple[int, int]:
    match = re.search(r"(\d+) -> (\d+) nodes, every subgraph counted", note)
    assert match, note
    return int(match[1]), int(match[2])


# --- what the pass did before -------------------------------------------------------------------


def test_folds_the_shape_subgraph_so_fuse_depth_to_space_sees_constant_shapes(torch_model, cli, tmp_path):
    source = torch_model("manual-shuffle", 11)
    assert {"Shape", "Gather", "Concat"} <= set(op_types(source))
    shapes = {"image": [1, 64, 19, 19]}
    result = check_pass("simplify", source, input_shapes=shapes)
    assert op_types(result.model) == ["Reshape", "Transpose", "Reshape"]
    assert list(result.model.graph.inputs[0].shape) == [1, 64, 19, 19]  # --input-shape is honoured
    out = tmp_path / "o.onnx"
    code, _, err = cli("optimize", source, "-o", out, "--input-shape", "image:1,64,19,19")
    assert code == 0, err
    assert op_types(out) == ["DepthToSpace"]


def test_without_input_shapes_the_dynamic_subgraph_stays(torch_model):
    result = check_pass(
        "fuse-depth-to-space",
        torch_model("manual-shuffle", 11),
        verify_shapes={"image": [2, 64, 7, 5]},
        expect_changes=0,
        expect_skips=1,
    )
    [skip] = result.record.skips
    assert "static C, H and W" in skip["reason"]
    assert [str(d) for d in result.model.graph.inputs[0].shape] == ["n", "64", "h", "w"]


def test_keeps_ir_version_and_metadata(torch_model):
    model = onnx.load(str(torch_model("ghost", 11)))
    helper.set_model_props(model, {"origin": "test"})
    result = check_pass("simplify", model)
    assert result.model.ir_version == model.ir_version
    assert result.model.metadata_props == {"origin": "test"}


def test_nothing_to_simplify_is_unchanged():
    model = make_model([helper.make_node("Relu", ["x"], ["y"], name="r")], [("x", [2])], [("y", [2])])
    result = check_pass("simplify", model, expect_changes=0)
    assert result.record.status == "unchanged"


@pytest.mark.parametrize("name", ["skunit", "ghost"])
def test_real_models_keep_their_numbers(torch_model, name):
    check_pass("simplify", torch_model(name, 11))


# --- every model onnx-opt accepts -----------------------------------------------------------------


@pytest.mark.parametrize("ir_version", [11, 14])
def test_newer_ir_versions_are_simplified_by_onnxsim_and_keep_their_ir_version(ir_version):
    nodes = [
        helper.make_node("Mul", ["a", "b"], ["c"], name="mul"),  # constant: onnxsim folds it
        helper.make_node("Add", ["x", "c"], ["y"], name="add"),
    ]
    weights = [("a", np.ones((2, 3), np.float32)), ("b", np.full((2, 3), 2, np.float32))]
    model = make_model(
        nodes, [("x", [2, 3])], [("y", [2, 3])], initializers=weights, opset=21, ir_version=ir_version
    )
    result = check_pass("simplify", model)
    [note] = result.record.notes
    assert note.startswith("onnxsim 0.4.36") and "failed" not in note, note  # not skipped: the copy was lowered
    assert op_types(result.model) == ["Add"]
    assert result.model.ir_version == ir_version
    assert ir.serde.serialize_model(result.model).ir_version == ir_version


def test_folds_inside_if_and_loop_bodies_and_keeps_the_loops_empty_cond():
    body = helper.make_graph(
        [
            const("one", np.float32(1)),
            const("two", np.float32(2)),
            helper.make_node("Add", ["one", "two"], ["three"], name="fold_me"),
            helper.make_node("Identity", ["cond_in"], ["cond_out"], name="keep_going"),
            helper.make_node("Add", ["v_in", "three"], ["v_out"], name="accumulate"),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [2, 3]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [2, 3]),
        ],
    )
    then_branch = helper.make_graph(
        [const("a", np.float32(3)), const("b", np.float32(4)), helper.make_node("Mul", ["a", "b"], ["ab"], name="mul"),
         helper.make_node("Add", ["x", "ab"], ["t_out"], name="then_add")],
        "then", [], [helper.make_tensor_value_info("t_out", TensorProto.FLOAT, [2, 3])],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["e_out"], name="neg")],
        "else", [], [helper.make_tensor_value_info("e_out", TensorProto.FLOAT, [2, 3])],
    )
    model = make_model(
        [
            helper.make_node("Loop", ["trips", "", "x"], ["looped"], body=body, name="loop"),
            helper.make_node("ReduceSum", ["x"], ["total"], keepdims=0, name="sum"),
            helper.make_node("Greater", ["total", "zero"], ["positive"], name="positive"),
            helper.make_node(
                "If", ["positive"], ["chosen"], then_branch=then_branch, else_branch=else_branch, name="if"
            ),
            helper.make_node("Add", ["looped", "chosen"], ["y"], name="out"),
        ],
        [("x", [2, 3])],
        [("y", [2, 3])],
        initializers=[("trips", np.array(3, np.int64)), ("zero", np.float32(0))],
    )
    result = check_pass("simplify", model)
    loop = next(node for node in result.model.graph if node.op_type == "Loop")
    assert len(loop.inputs) == 3 and loop.inputs[1] is None  # the empty cond stays where it was
    body_ops = op_types(loop.attributes["body"].as_graph())
    assert sorted(body_ops) == ["Add", "Identity"], body_ops  # 1 + 2 folded inside the body
    [if_node] = [node for node in result.model.graph if node.op_type == "If"]
    assert op_types(if_node.attributes["then_branch"].as_graph()) == ["Add"]  # 3 * 4 folded inside the branch
    assert "Constant" not in ops_everywhere(result.model)


def test_keeps_model_local_functions_and_folds_inside_them(tmp_path):
    function = helper.make_function(
        "local", "AddThree", ["a"], ["b"],
        [const("k1", np.float32(1)), const("k2", np.float32(2)), helper.make_node("Add", ["k1", "k2"], ["k"]),
         helper.make_node("Add", ["a", "k"], ["b"])],
        [helper.make_opsetid("", 13)],
    )
    model = make_model(
        [helper.make_node("Shape", ["x"], ["s"], name="s"), helper.make_node("Reshape", ["x", "s"], ["r"], name="r"),
         helper.make_node("AddThree", ["r"], ["y"], domain="local", name="call")],
        [("x", [2, 3])], [("y", [2, 3])],
        functions=[function], extra_opsets=[helper.make_opsetid("local", 1)],
    )
    result = check_pass("simplify", model)
    assert op_types(result.model) == ["AddThree"]  # called, not inlined
    [kept] = result.model.functions.values()
    assert kept.identifier() == ("local", "AddThree", "")
    assert op_types(kept) == ["Constant", "Add"]  # 1 + 2 folded inside the function (no initializers there)
    assert next(iter(kept)).attributes["value"].as_tensor().numpy() == 3
    assert result.model.opset_imports["local"] == 1
    path = tmp_path / "f.onnx"
    ir.save(result.model, path)
    onnx.checker.check_model(str(path))
    run_onnxruntime(path, {"x": np.zeros((2, 3), np.float32)})


def test_graph_output_shapes_stay_as_declared():
    model = make_model(
        [helper.make_node("Mul", ["c", "c"], ["cc"], name="mul"),
         helper.make_node("Add", ["x", "cc"], ["y"], name="add")],
        [("x", [2, 3])], [("y", ["rows", "cols"])],
        initializers=[("c", np.full((2, 3), 2, np.float32))],
    )
    result = check_pass("simplify", model)
    assert op_types(result.model) == ["Add"]
    assert [str(dim) for dim in result.model.graph.outputs[0].shape] == ["rows", "cols"]  # never made static


def onnxsim_breaking_model():
    # A constant Gather with an index out of range: onnxsim's constant folding fails on it.
    return make_model(
        [helper.make_node("Gather", ["c", "i"], ["r"], name="g"), helper.make_node("Add", ["x", "r"], ["y"], name="a")],
        [("x", [1])],
        [("y", [1])],
        initializers=[("c", np.ones(2, np.float32)), ("i", np.array([5], np.int64))],
    )


def test_when_onnxsim_fails_onnxscript_runs_the_note_says_so_and_nothing_is_printed(capfd):
    run, record = run_simplify(onnxsim_breaking_model())
    assert record.status == "unchanged", record.reason
    [note] = record.notes
    assert note.startswith("onnxscript optimizer ") and "(onnxsim 0.4.36 failed: " in note, note
    assert op_types(run.model) == ["Gather", "Add"]
    out, err = capfd.readouterr()
    assert "onnxruntime" not in err and "failed to run" not in out + err, (out, err)  # onnxsim's noise is silenced
    os.write(2, b"stderr is back\n")
    assert "stderr is back" in capfd.readouterr().err


def test_output_is_silenced_and_restored_on_an_exception(capfd):
    with pytest.raises(RuntimeError), simplify.silenced_output():
        os.write(1, b"hidden out\n")
        os.write(2, b"hidden err\n")
        raise RuntimeError("boom")
    os.write(1, b"shown out\n")
    os.write(2, b"shown err\n")
    out, err = capfd.readouterr()
    assert "hidden" not in out + err
    assert "shown out" in out and "shown err" in err


def test_when_onnxsim_crashes_on_an_if_model_onnxscript_folds_the_if(monkeypatch):
    def crash(*args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : Non-zero status code returned while running If node")

    monkeypatch.setattr("onnxsim.simplify", crash)
    then_branch = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["t"], name="relu")], "then", [], [helper.make_tensor_value_info("t", 1, [2])]
    )
    else_branch = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["e"], name="neg")], "else", [], [helper.make_tensor_value_info("e", 1, [2])]
    )
    model = make_model(
        [helper.make_node("If", ["flag"], ["y"], then_branch=then_branch, else_branch=else_branch, name="if")],
        [("x", [2])], [("y", [2])],
        initializers=[("flag", np.array(True))],
    )
    run, record = run_simplify(model)
    [note] = record.notes
    assert record.status == "changed", record.reason
    assert note.startswith("onnxscript optimizer ") and "(onnxsim 0.4.36 failed: [ONNXRuntimeError]" in note, note
    assert op_types(run.model) == ["Relu"]


# --- onnx-opt's folds, in every scope -------------------------------------------------------------


def copies(scope: str) -> int:
    return 2 if scope == "if" else 1  # place() puts the pattern in both branches


def shapes(scope: str, dims: list[int]) -> dict[str, list[int]]:
    return {"a" if scope == "function" else "x": dims}  # place() calls the function's input "a"


def static_dim_read() -> Pattern:
    """y = x * x.size(1) as torch exports it: Gather(Shape(x), scalar) with a symbolic batch."""
    nodes = [
        helper.make_node("Shape", ["x"], ["x_shape"], name="shape"),
        const("one", np.array(1, np.int64)),
        helper.make_node("Gather", ["x_shape", "one"], ["width"], name="width"),
        helper.make_node("Cast", ["width"], ["width_f"], to=TensorProto.FLOAT, name="cast"),
        helper.make_node("Mul", ["x", "width_f"], ["y"], name="scale"),
    ]
    return Pattern(nodes, ["n", 4], ["n", 4])


@pytest.mark.parametrize("scope", SCOPES)
def test_a_static_dim_read_beside_a_symbolic_one_folds_in_every_scope(scope):
    result = check_pass("simplify", place(static_dim_read(), scope), verify_shapes=shapes(scope, [3, 4]))
    assert not {"Shape", "Gather", "Cast"} & set(ops_everywhere(result.model)), ops_everywhere(result.model)


def test_a_body_reuses_the_same_computation_of_the_enclosing_graph():
    """x.size(0) is computed in the main graph and again in a branch: the branch uses the outer one."""
    def size_of_batch(prefix):
        return [
            helper.make_node("Shape", ["x"], [f"{prefix}_shape"], name=f"{prefix}_shape"),
            helper.make_node("Gather", [f"{prefix}_shape", "zero"], [f"{prefix}_n"], name=f"{prefix}_gather"),
            helper.make_node("Cast", [f"{prefix}_n"], [f"{prefix}_nf"], to=TensorProto.FLOAT, name=f"{prefix}_cast"),
        ]

    then_branch = helper.make_graph(
        [*size_of_batch("inner"), helper.make_node("Add", ["x", "inner_nf"], ["t"], name="then_add")],
        "then", [], [helper.make_tensor_value_info("t", TensorProto.FLOAT, ["n", 3])],
    )
    else_branch = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["e"], name="neg")],
        "else", [], [helper.make_tensor_value_info("e", TensorProto.FLOAT, ["n", 3])],
    )
    model = make_model(
        [
            *size_of_batch("outer"),
            helper.make_node("Mul", ["x", "outer_nf"], ["scaled"], name="scale"),
            helper.make_node("If", ["cond"], ["chosen"], then_branch=then_branch, else_branch=else_branch, name="if"),
            helper.make_node("Add", ["scaled", "chosen"], ["y"], name="out"),
        ],
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []), ("x", ["n", 3])],
        [("y", ["n", 3])],
        initializers=[("zero", np.array(0, np.int64))],
    )
    result = check_pass("simplify", model, verify_shapes={"x": [2, 3]})
    ops = ops_everywhere(result.model)
    assert (ops.count("Shape"), ops.count("Gather"), ops.count("Cast")) == (1, 1, 1), ops
    [if_node] = [node for node in result.model.graph if node.op_type == "If"]
    assert op_types(if_node.attributes["then_branch"].as_graph()) == ["Add"]


def squeeze_pairs() -> Pattern:
    """Unsqueeze(Squeeze(x, 0), 0) and Squeeze(Unsqueeze(x, 2), 2): both are x."""
    nodes = [
        const("axis0", np.array([0], np.int64)),
        const("axis2", np.array([2], np.int64)),
        helper.make_node("Squeeze", ["x", "axis0"], ["squeezed"], name="squeeze"),
        helper.make_node("Relu", ["squeezed"], ["relu"], name="relu"),  # keeps the Squeeze alive
        helper.make_node("Unsqueeze", ["squeezed", "axis0"], ["restored"], name="unsqueeze"),
        helper.make_node("Unsqueeze", ["x", "axis2"], ["widened"], name="widen"),
        helper.make_node("Squeeze", ["widened", "axis2"], ["narrowed"], name="narrow"),
        helper.make_node("Add", ["restored", "narrowed"], ["sum"], name="add"),
        helper.make_node("Unsqueeze", ["relu", "axis0"], ["relu_back"], name="relu_back"),
        helper.make_node("Mul", ["sum", "relu_back"], ["y"], name="mul"),
    ]
    return Pattern(nodes, [1, "n"], [1, "n"])


@pytest.mark.parametrize("scope", ["main", "if"])
def test_squeeze_unsqueeze_pairs_cancel(scope):
    result = check_pass("simplify", place(squeeze_pairs(), scope), verify_shapes=shapes(scope, [1, 5]))
    ops = ops_everywhere(result.model)
    left = (ops.count("Squeeze"), ops.count("Unsqueeze"))
    assert left == (copies(scope), copies(scope)), ops  # only x -> Relu -> back is left


def test_unused_if_outputs_leave_both_branches():
    def branch(name, op):
        return helper.make_graph(
            [helper.make_node(op, ["x"], [f"{name}_used"], name=f"{name}_used"),
             helper.make_node("Exp", ["x"], [f"{name}_exp"], name=f"{name}_exp"),
             helper.make_node("Sin", [f"{name}_exp"], [f"{name}_unused"], name=f"{name}_unused")],
            name, [],
            [helper.make_tensor_value_info(f"{name}_used", TensorProto.FLOAT, [2]),
             helper.make_tensor_value_info(f"{name}_unused", TensorProto.FLOAT, [2])],
        )

    model = make_model(
        [helper.make_node("If", ["cond"], ["used", "unused"], then_branch=branch("then", "Relu"),
                          else_branch=branch("else", "Neg"), name="if"),
         helper.make_node("Abs", ["used"], ["y"], name="abs")],
        [helper.make_tensor_value_info("cond", TensorProto.BOOL, []), ("x", [2])],
        [("y", [2])],
    )
    result = check_pass("simplify", model)
    [if_node] = [node for node in result.model.graph if node.op_type == "If"]
    assert if_node.name == "if" and [output.name for output in if_node.outputs] == ["used"]
    for name, op in (("then_branch", "Relu"), ("else_branch", "Neg")):
        assert op_types(if_node.attributes[name].as_graph()) == [op]


def dynamic_pad() -> Pattern:
    """F.pad(x, (0, 64 - x.size(1))) as torch exports it with a dynamic length: the pads are
    Concat -> Reshape -> Slice (reversed) -> Transpose -> Reshape of [0, 64 - L, 0, 0]."""
    nodes = [
        helper.make_node("Shape", ["x"], ["x_shape"], name="shape"),
        const("one", np.array(1, np.int64)),
        const("window", np.array(64, np.int64)),
        const("axes0", np.array([0], np.int64)),
        const("zero1", np.array([0], np.int64)),
        const("zeros2", np.array([0, 0], np.int64)),
        const("pairs", np.array([-1, 2], np.int64)),
        const("flat", np.array([-1], np.int64)),
        const("start", np.array([-1], np.int64)),
        const("stop", np.array([np.iinfo(np.int64).min], np.int64)),
        const("step", np.array([-1], np.int64)),
        helper.make_node("Gather", ["x_shape", "one"], ["length"], name="length"),
        helper.make_node("Sub", ["window", "length"], ["missing"], name="missing"),
        helper.make_node("Unsqueeze", ["missing", "axes0"], ["missing_1d"], name="missing_1d"),
        helper.make_node("Concat", ["zero1", "missing_1d", "zeros2"], ["pads_flat"], axis=0, name="concat"),
        helper.make_node("Reshape", ["pads_flat", "pairs"], ["pads_pairs"], name="pairs"),
        helper.make_node("Slice", ["pads_pairs", "start", "stop", "axes0", "step"], ["pads_rev"], name="reverse"),
        helper.make_node("Transpose", ["pads_rev"], ["pads_t"], perm=[1, 0], name="transpose"),
        helper.make_node("Reshape", ["pads_t", "flat"], ["pads"], name="flatten"),
        helper.make_node("Pad", ["x", "pads"], ["y"], name="pad"),
    ]
    return Pattern(nodes, [1, "n"], [1, "m"])


@pytest.mark.parametrize("scope", ["main", "if", "function"])
def test_torch_dynamic_pad_arithmetic_becomes_one_concat(scope):
    result = check_pass("simplify", place(dynamic_pad(), scope), verify_shapes=shapes(scope, [1, 40]))
    ops = ops_everywhere(result.model)
    assert not {"Reshape", "Slice", "Transpose"} & set(ops), ops
    assert ops.count("Concat") == copies(scope), ops


# --- the voice-activity model: nested Ifs, onnxsim working or crashing ------------------------------


def vad_feeds():
    """Every side of every If: 16 kHz, 8 kHz, 32 kHz (decimated) and another rate; batch 1 and 2;
    512 and 256 samples, and 24 (padded up to the window); the state's batch matching or not."""
    rng = np.random.default_rng(0)
    for sr, batch, length, state_batch in itertools.product(
        (16000, 8000, 32000, 12345), (1, 2), (512, 256, 24), ("same", 1)
    ):
        yield {
            "input": rng.standard_normal((batch, length)).astype(np.float32),
            "state": rng.standard_normal((2, batch if state_batch == "same" else state_batch, 16)).astype(np.float32),
            "sr": np.array(sr, np.int64),
        }


@pytest.fixture(scope="module")
def vad_baseline(torch_model):
    """The VAD model and what onnxscript's optimizer (defaults) leaves of it, every subgraph counted."""
    import logging

    import onnxscript.optimizer

    path = torch_model("vad", 17)
    source = onnx.load(str(path))
    logging.disable(logging.WARNING)
    try:
        optimized = onnxscript.optimizer.optimize(onnx.load(str(path)))
    finally:
        logging.disable(logging.NOTSET)
    return path, source, count_everywhere(optimized)


@pytest.mark.parametrize("onnxsim_crashes", [False, True], ids=["onnxsim-works", "onnxsim-crashes"])
def test_vad_reaches_the_better_of_onnxscript_and_onnxslim_with_every_output_kept(
    vad_baseline, monkeypatch, onnxsim_crashes
):
    path, source, onnxscript_nodes = vad_baseline
    if onnxsim_crashes:
        monkeypatch.setattr("onnxsim.simplify", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("segfault-ish")))
    result = check_pass("simplify", path, verify_shapes=VAD_SHAPES, scopes=())  # its own Ifs and Loops
    [note] = result.record.notes
    before, after = note_counts(note)
    assert before == count_everywhere(source) > 300  # every branch counted, as onnxslim and onnxscript count
    assert after == count_everywhere(result.model)
    assert after <= min(onnxscript_nodes, ONNXSLIM_VAD17_NODES), (after, onnxscript_nodes, note)
    assert ("onnxsim 0.4.36 failed: segfault-ish" in note) == onnxsim_crashes, note
    assert "onnxscript optimizer" in note and "onnx-opt folds" in note, note
    kept = ir.serde.serialize_model(result.model)
    assert [(v.name, v.type) for v in kept.graph.input] == [(v.name, v.type) for v in source.graph.input]
    assert [(v.name, v.type) for v in kept.graph.output] == [(v.name, v.type) for v in source.graph.output]
    assert kept.ir_version == source.ir_version
    from optimizer.verify import onnxruntime_runner

    with onnxruntime_runner(path) as original, onnxruntime_runner(result.model) as simplified:
        for feeds in vad_feeds():
            expected, actual = original(feeds), simplified(feeds)
            assert list(actual) == ["output", "stateN"]
            for name, value in expected.items():
                assert actual[name].shape == value.shape, (name, feeds["sr"], feeds["input"].shape)
                np.testing.assert_allclose(actual[name], value, rtol=1e-5, atol=1e-6, err_msg=f"{name} at {feeds}")


# --- what a simplified model is held to ------------------------------------------------------------


def relu_model(domain: str = "") -> ir.Model:
    """y = Relu(x); with ``domain``, the op comes from a custom domain no onnxruntime kernel has."""
    node = helper.make_node("Relu", ["x"], ["y"], name="relu", domain=domain)
    opsets = [helper.make_opsetid("custom.test", 1)] if domain else []
    return ir.serde.deserialize_model(make_model([node], [("x", [2])], [("y", [2])], extra_opsets=opsets))


def count_validity_reads(monkeypatch) -> list[int]:
    reads = []
    real = simplify.simplifiers.validity_problems

    def counted(model):
        reads.append(id(model))
        return real(model)

    monkeypatch.setattr(simplify.simplifiers, "validity_problems", counted)
    return reads


def test_a_valid_result_passes_without_reading_the_original(monkeypatch):
    reads = count_validity_reads(monkeypatch)
    original, result = relu_model(), relu_model()
    simplify.Reference(original).check(result, "test")
    assert reads == [id(result)]


def test_an_invalid_result_of_a_valid_original_is_refused(monkeypatch):
    reads = count_validity_reads(monkeypatch)
    original, result = relu_model(), relu_model()
    relu = result.graph.node(0)
    relu.resize_inputs(2)
    relu.replace_input_with(1, result.graph.inputs[0])  # Relu takes one input
    reference = simplify.Reference(original)
    with pytest.raises(simplify.SimplifierError, match="test wrote an invalid model"):
        reference.check(result, "test")
    with pytest.raises(simplify.SimplifierError):
        reference.check(result, "test")
    assert reads == [id(result), id(original), id(result)]  # the original's verdict is read once


def test_a_result_keeps_a_problem_the_original_had():
    original, result = relu_model("custom.test"), relu_model("custom.test")
    assert simplify.Reference(original).original_valid() == (True, False)  # no onnxruntime kernel
    simplify.Reference(original).check(result, "test")


# --- which of onnxscript's rewrite rules are tried ---------------------------------------------------


def conv_model(with_pad: bool) -> ir.Model:
    """y = Conv(x, w), with a zero Pad before it when ``with_pad``."""
    nodes = [helper.make_node("Conv", ["p" if with_pad else "x", "w"], ["y"], name="conv")]
    initializers = [("w", np.ones((2, 2, 3, 3), np.float32))]
    if with_pad:
        nodes.insert(0, helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"))
        initializers.append(("pads", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)))
    shape = [1, 2, 5, 5] if with_pad else [1, 2, 7, 7]
    return ir.serde.deserialize_model(
        make_model(nodes, [("x", shape)], [("y", [1, 2, 5, 5])], initializers=initializers)
    )


def tried_rules(model: ir.Model) -> set[str]:
    from onnxscript import rewriter

    with simplify.simplifiers._rules_for(model):
        return {getattr(rule, "name", None) for rule in rewriter._DEFAULT_REWRITE_RULES}


def test_a_rule_is_tried_only_where_every_node_of_its_pattern_has_its_operator():
    assert "FuseConvPad" in tried_rules(conv_model(with_pad=True))
    assert "FuseConvPad" not in tried_rules(conv_model(with_pad=False))  # no Pad: it cannot match
    assert "NormalizePadFormatConv" in tried_rules(conv_model(with_pad=False))
    fused = simplify.simplifiers.run_onnxscript(conv_model(with_pad=True))
    assert [node.op_type for node in fused.graph] == ["Conv"]  # the rule that was kept did its work
