"""Tests that can fail: generated graphs that hold each pass's pattern (tests/fuzz_graphs.py).

(a) Differential fuzz: seeded random graphs of the patterns' op types at opsets 9-18, ``optimize``
    with every pass alone and every target pipeline, without and with an opset change,
    ``verify=False``; the written model's outputs are compared with the original's in
    onnxruntime. A wrong or broken output or an internal error fails; a UserError refusal is
    counted. To stay within CI time each graph runs ``RUNS_PER_GRAPH`` configurations, taken in
    turn, so every configuration runs on as many graphs with an opset change as without;
    ``benchmarks/fuzz.py`` runs the full product on thousands of graphs.
(b) Properties per pass: on graphs holding its pattern the pass fires in a high share of
    examples (the share is reported), keeps the numbers and is idempotent (``check_pass``).
(c) Regressions: the faults the fuzzing found outside the passes, each reduced to a small model.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from fuzz_graphs import CONFIGS, FOCUSES, OK, REFUSED, Tally, check_case, generate, opset_choices
from helpers import make_model
from onnx import TensorProto, helper

from optimizer.testing import ANY, check_pass
from optimizer.verify import run_onnxruntime

RUNS_PER_GRAPH = 3
# (focus, first seed, graphs): 240 graphs in all, 720 runs.
SHARDS = [(None, 0, 50), (None, 50, 50), *((focus, 0, 28) for focus in FOCUSES)]
# Per rewriting pass: examples, and the share of them in which the pass must fire.
PROPERTY_EXAMPLES = {
    "softmax-transpose": 40,
    "decompose-depth-to-space": 30,
    "fuse-depth-to-space": 40,
    "simplify": 16,
}
MIN_FIRED_SHARE = 0.7
MIN_CANDIDATE_SHARE = 0.9

_SUMMARY: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def fuzz_summary(request):
    """Print every test's counts once the module is done (shown with or without -s; under
    pytest-xdist each worker's lines are in the junit properties only)."""
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is None or capture is None or not _SUMMARY:
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        for line in _SUMMARY:
            reporter.write_line(f"fuzz: {line}")


def _report(record_property, line: str) -> None:
    _SUMMARY.append(line)
    record_property("fuzz", line)
    print(line)


def _configs_for(index: int):
    """Configurations of graph ``index``: taken in turn, each alternately with an opset change."""
    slots = [(config, change) for change in (False, True) for config in CONFIGS]
    return [slots[(index * RUNS_PER_GRAPH + j) % len(slots)] for j in range(RUNS_PER_GRAPH)]


@pytest.mark.parametrize("focus, first, count", SHARDS, ids=[f"{f or 'mixed'}-{s}" for f, s, _ in SHARDS])
def test_differential_fuzz(focus, first, count, tmp_path, record_property):
    tally = Tally()
    for index in range(count):
        seed = first + index
        case = generate(seed, focus)
        rng = np.random.default_rng([seed, 7])
        pairs = [(config, int(rng.choice(opset_choices(config.target, case.opset))) if change else None)
                 for config, change in _configs_for(index)]
        tally.add(check_case(case, tmp_path, pairs))
    _report(record_property, f"differential {focus or 'mixed'} seeds {first}..{first + count - 1}: {tally.summary()}")
    bad = "\n".join(f"{r.outcome}: {r.config} opset {r.opset_from}->{r.opset_to}: {r.detail} -- {r.command()}"
                    for r in tally.bad)
    assert not tally.bad, f"{len(tally.bad)} bad runs:\n{bad}"
    assert tally.outcomes[OK] + tally.outcomes[REFUSED] == tally.runs
    assert tally.outcomes[REFUSED] <= tally.runs // 4, f"too many refusals: {tally.refusals.most_common(5)}"


@pytest.mark.parametrize("focus", FOCUSES)
def test_generated_graphs_hold_the_pattern_and_run(focus, record_property):
    """Valid (strict onnx inference, onnxruntime runs them), deterministic, and most hold a candidate."""
    count, holding = 30, 0
    for seed in range(count):
        case = generate(seed, focus)
        onnx.shape_inference.infer_shapes(case.model, check_type=True, strict_mode=True)
        run_onnxruntime(ir.serde.deserialize_model(case.model), case.feeds())
        again = generate(seed, focus)
        assert again.model.SerializeToString() == case.model.SerializeToString()
        holding += case.candidates[focus] > 0
    share = holding / count
    _report(record_property, f"graphs holding a {focus} candidate: {holding}/{count} ({share:.0%})")
    assert share >= MIN_CANDIDATE_SHARE


@pytest.mark.parametrize("name", PROPERTY_EXAMPLES)
def test_pass_fires_keeps_numbers_and_is_idempotent(name, record_property):
    count, fired, changes = PROPERTY_EXAMPLES[name], 0, 0
    for seed in range(count):
        case = generate(seed, name)
        try:
            result = check_pass(name, case.model, verify_shapes=case.input_shapes, expect_changes=ANY,
                                expect_skips=ANY, scopes=())  # the generator places patterns in every scope
        except AssertionError as exc:
            raise AssertionError(f"{case.describe()}: {exc}") from None
        fired += result.record.changes > 0
        changes += result.record.changes
    share = fired / count
    _report(record_property, f"{name} fired in {fired}/{count} examples ({share:.0%}), {changes} changes")
    assert share >= MIN_FIRED_SHARE, f"{name} fired in only {share:.0%} of the graphs holding its pattern"


def test_transpose_whitelist_finds_the_true_shapes_and_changes_nothing(record_property):
    """The shapes it lists are those onnxruntime sees (main-graph Transposes, checked by exposing
    their inputs as outputs); the model is byte-identical afterwards."""
    count, found, checked = 24, 0, 0
    for seed in range(count):
        case = generate(seed, "transpose-whitelist")
        result = check_pass("transpose-whitelist", case.model, target="ascend310p", verify_shapes=case.input_shapes,
                            expect_changes=ANY, expect_skips=ANY, scopes=())
        assert result.record.changes == 0
        before = ir.serde.serialize_model(ir.serde.deserialize_model(case.model)).SerializeToString()
        assert ir.serde.serialize_model(result.model).SerializeToString() == before
        listed = result.record.findings.get("transpose_nodes", {})
        found += bool(listed)
        exposed = onnx.ModelProto()
        exposed.CopyFrom(case.model)
        inputs = {n.name: n.input[0] for n in exposed.graph.node if n.op_type == "Transpose" and n.name in listed}
        present = {o.name for o in exposed.graph.output}
        extra = [v for v in dict.fromkeys(inputs.values()) if v not in present]
        exposed.graph.output.extend(onnx.ValueInfoProto(name=v) for v in extra)
        outputs = run_onnxruntime(ir.serde.deserialize_model(exposed), case.feeds())
        for name, value in inputs.items():
            assert list(outputs[value].shape) == listed[name], f"{case.describe()}: {name}"
            checked += 1
    share = found / count
    _report(record_property, f"transpose-whitelist found shapes in {found}/{count} examples ({share:.0%}), "
                             f"{checked} main-graph shapes checked against onnxruntime")
    assert share >= MIN_FIRED_SHARE


# ----- (c) known bugs of code these tests do not own: strict xfail reproducers -------------------


def _optimize(model: onnx.ModelProto, folder, passes):
    from optimizer.optimize import OptimizeOptions, optimize

    source, output = folder / "in.onnx", folder / "out.onnx"
    onnx.save(model, str(source))
    optimize(OptimizeOptions(input=source, output=output, passes=passes, verify=False))
    return source, output


def _ints(name, values):
    tensor = helper.make_tensor("", TensorProto.INT64, [len(values)], values)
    return helper.make_node("Constant", [], [name], value=tensor)


def test_simplify_keeps_reshapes_whose_second_shape_has_a_zero(tmp_path):
    """onnxsim's own optimizer merged these two Reshapes keeping the 0, which then copied a dim of
    the wrong tensor; simplify runs onnxsim for constant folding only."""
    nodes = [
        helper.make_node("Reshape", ["x", "s1"], ["a"], name="first"),
        helper.make_node("Reshape", ["a", "s2"], ["y"], name="second"),  # its 0 copies dim 3 of a: 2
    ]
    inits = [("s1", np.array([-1, 3, 6, 2], np.int64)), ("s2", np.array([2, 3, 3, 0, 1, 2], np.int64))]
    model = make_model(nodes, [("x", [2, 1, 1, 1, 36])], [("y", [2, 3, 3, 2, 1, 2])], initializers=inits, opset=9)
    source, output = _optimize(model, tmp_path, ["simplify"])
    feeds = {"x": np.random.default_rng(0).standard_normal([2, 1, 1, 1, 36]).astype(np.float32)}
    np.testing.assert_array_equal(run_onnxruntime(output, feeds)["y"], run_onnxruntime(source, feeds)["y"])


def test_simplify_survives_a_shape_slice_of_an_outer_value_in_an_if_branch(tmp_path):
    """onnxsim's optimizer (eliminate_shape_op) died with SIGSEGV here, killing onnx-opt."""
    branch = [
        helper.make_node("Shape", ["x"], ["s"], start=0, end=1),  # x is the main graph's
        _ints("c", [18, 8, 1]),
        helper.make_node("Concat", ["s", "c"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        _ints("c2", [2, 12, 1, 12]),
        helper.make_node("Reshape", ["r", "c2"], ["b"]),
    ]
    out = helper.make_tensor_value_info("b", TensorProto.FLOAT, [2, 12, 1, 12])
    then = helper.make_graph(branch, "then", [], [out])
    other = helper.make_graph(
        [_ints("c3", [2, 12, 1, 12]), helper.make_node("Reshape", ["x", "c3"], ["e"])],
        "else",
        [],
        [helper.make_tensor_value_info("e", TensorProto.FLOAT, [2, 12, 1, 12])],
    )
    model = make_model(
        [helper.make_node("If", ["cond"], ["y"], then_branch=then, else_branch=other, name="if")],
        [("x", [2, 12, 4, 3]), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
        [("y", [2, 12, 1, 12])],
        opset=16,
    )
    source = tmp_path / "in.onnx"
    onnx.save(model, str(source))
    code = (
        "from pathlib import Path\n"
        "from optimizer.optimize import OptimizeOptions, optimize\n"
        f"optimize(OptimizeOptions(input=Path({str(source)!r}), output=Path({str(tmp_path / 'out.onnx')!r}), "
        "passes=['simplify'], verify=False))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit status {done.returncode}: {done.stderr[-300:]}"


def test_a_function_called_on_an_intermediate_value_gets_shapes():
    """The call's argument has no declared type: its type comes from shape inference."""
    function = helper.make_function(
        "local",
        "shuffle",
        ["fx"],
        ["fy"],
        [helper.make_node("DepthToSpace", ["fx"], ["fy"], blocksize=2, mode="CRD", name="d2s")],
        [helper.make_opsetid("", 13)],
    )
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),  # r has no declared type
        helper.make_node("shuffle", ["r"], ["y"], domain="local", name="call"),
    ]
    model = make_model(
        nodes,
        [("x", [1, 8, 3, 3])],
        [("y", [1, 2, 6, 6])],
        functions=[function],
        extra_opsets=[helper.make_opsetid("local", 1)],
    )
    check_pass("decompose-depth-to-space", model, expect_changes=1)


def test_a_pass_before_the_added_decomposition_is_kept(tmp_path):
    """--opset 9 appends decompose-depth-to-space; the passes before it must not be blamed for the
    CRD DepthToSpace that only it removes."""
    from optimizer.optimize import OptimizeOptions, optimize

    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 3, 1], name="t1"),
        helper.make_node("Softmax", ["t"], ["s"], axis=3, name="softmax"),  # legal at opset 11 and 9
        helper.make_node("Transpose", ["s"], ["u"], perm=[0, 3, 1, 2], name="t2"),
        helper.make_node("DepthToSpace", ["u"], ["y"], blocksize=2, mode="CRD", name="d2s"),
    ]
    model = make_model(nodes, [("x", [1, 8, 1, 1])], [("y", [1, 2, 2, 2])], opset=11)
    onnx.save(model, str(tmp_path / "in.onnx"))
    report = optimize(OptimizeOptions(input=tmp_path / "in.onnx", output=tmp_path / "out.onnx", opset=9))
    statuses = {record.name: (record.status, record.reason) for record in report.records}
    assert statuses["softmax-transpose"][0] == "changed", statuses["softmax-transpose"]
