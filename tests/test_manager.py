from collections import Counter

import numpy as np
import onnx_ir as ir
import pytest
from fuzz_graphs import generate
from helpers import make_model, op_types
from onnx import helper
from onnx_ir.passes.common import RemoveUnusedNodesPass
from scopes import SCOPES, Pattern, place

from optimizer.errors import UserError
from optimizer.manager import CHANGED, FAILED, SKIPPED, UNCHANGED, PassManager, nothing_unused, order_pipeline
from optimizer.passapi import Change, NodePass, Pass, PassContext, PassResult, Requires
from optimizer.targets import load_target
from optimizer.testing import registered


def context(target="onnxruntime", **kwargs):
    return PassContext(load_target(target), **kwargs)


def relu_chain(count=3, opset=13):
    nodes = [helper.make_node("Relu", [f"v{i}"], [f"v{i + 1}"], name=f"relu{i}") for i in range(count)]
    nodes[-1].output[0] = "y"
    nodes[0].input[0] = "x"
    return ir.serde.deserialize_model(make_model(nodes, [("x", [2])], [("y", [2])], opset=opset))


class OneReluToIdentity(NodePass):
    """Test pass: turns the first Relu it meets into an Identity (one per run)."""

    name = "test-one-relu-to-identity"
    summary = "Test: replace the first Relu by an Identity, one per run"
    addresses = ("Relu",)

    def run(self, model, ctx):
        for node in model.graph:
            if node.op_type == "Relu":
                node.op_type = "Identity"
                return PassResult(model, [Change("relu -> identity", (node.name,))])
        return PassResult(model)


class Raises(Pass):
    name = "test-raises"
    summary = "Test: edits the model, then raises"

    def run(self, model, ctx):
        next(iter(model.graph)).op_type = "Sigmoid"
        raise RuntimeError("boom\nsecond line")


class BreaksModel(Pass):
    name = "test-breaks-model"
    summary = "Test: leaves a node with an unknown op type"

    def run(self, model, ctx):
        node = next(iter(model.graph))
        node.op_type = "NoSuchOp"
        return PassResult(model, [Change("broke", (node.name,))])


class AddsDeadAndUnsortedNodes(Pass):
    name = "test-adds-out-of-order"
    summary = "Test: appends a producer after its consumer, plus a dead node"

    def run(self, model, ctx):
        graph = model.graph
        first = next(iter(graph))
        neg = ir.node("Neg", [first.inputs[0]], name="neg")
        neg2 = ir.node("Neg", [neg.outputs[0]], name="neg2")
        first.replace_input_with(0, neg2.outputs[0])
        graph.append(neg2)
        graph.append(neg)
        graph.append(ir.node("Abs", [graph.inputs[0]], name="dead"))
        return PassResult(model, [Change("added", ("neg", "neg2", "dead"))])


class NeedsOpset15(Pass):
    name = "test-needs-opset-15"
    summary = "Test: requires opset 15"
    requires = Requires(opsets=(15, None))

    def run(self, model, ctx):
        raise AssertionError("must not run")


def test_pipeline_runs_in_order_and_records_each_pass():
    model = relu_chain()
    run = PassManager(["test-one-relu-to-identity", "test-needs-opset-15"], context()).run(model)
    first, skipped, cleanup = run.records
    assert (first.name, first.status, first.matches, first.changes) == ("test-one-relu-to-identity", CHANGED, 1, 1)
    assert first.nodes_before == first.nodes_after == 3 and first.seconds >= 0
    assert first.changed_nodes == ["relu0"]
    assert (
        skipped.status == SKIPPED
        and skipped.reason == "needs opset >= 15; the model has opset 13 (--opset 15 lets it run)"
    )
    assert cleanup.name == "cleanup"
    assert op_types(run.model) == ["Identity", "Relu", "Relu"]
    assert run.model is model  # passes work on the model itself (it is used up)


def test_fixed_point_repeats_until_nothing_changes_or_the_cap():
    run = PassManager(["test-one-relu-to-identity"], context(), fixed_point=True).run(relu_chain(3))
    assert run.rounds == 4 and run.records[0].changes == 3
    assert op_types(run.model) == ["Identity"] * 3
    capped = PassManager(["test-one-relu-to-identity"], context(), fixed_point=True, max_rounds=2).run(relu_chain(5))
    assert capped.rounds == 2 and op_types(capped.model).count("Relu") == 3


def test_a_raising_pass_is_reported_and_the_pipeline_goes_on_from_the_last_good_model():
    run = PassManager(["test-raises", "test-one-relu-to-identity"], context()).run(relu_chain())
    failed = run.records[0]
    assert failed.status == FAILED and failed.reason == "RuntimeError: boom"
    assert op_types(run.model) == ["Identity", "Relu", "Relu"]  # the Sigmoid edit was rolled back


def test_a_pass_leaving_an_invalid_model_fails_the_checker_and_is_undone():
    run = PassManager(["test-breaks-model"], context()).run(relu_chain())
    assert run.records[0].status == FAILED and "ValidationError" in run.records[0].reason
    assert op_types(run.model) == ["Relu"] * 3


def test_cleanup_removes_dead_nodes_and_initializers_and_sorts():
    model = make_model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu")],
        [("x", [2])],
        [("y", [2])],
        initializers=[("unused", np.ones(2, np.float32))],
    )
    run = PassManager(["test-adds-out-of-order"], context()).run(ir.serde.deserialize_model(model))
    assert run.records[0].status == CHANGED
    assert op_types(run.model) == ["Neg", "Neg", "Relu"]
    cleanup = run.records[-1]
    assert cleanup.changes == 2  # the dead Abs and the unused initializer
    assert "unused" not in run.model.graph.initializers


def test_nothing_changed_means_no_cleanup_row():
    run = PassManager(["test-needs-opset-15"], context()).run(relu_chain())
    assert [r.name for r in run.records] == ["test-needs-opset-15"]
    assert PassManager([], context()).run(relu_chain()).records == []


class Early(Pass):
    name = "test-early"
    summary = "Test: ordering"
    after = ("test-late",)


class Late(Pass):
    name = "test-late"
    summary = "Test: ordering"
    after = ("test-early",)


def test_after_constraints_reorder_and_cycles_are_refused():
    assert order_pipeline(["transpose-whitelist", "softmax-transpose", "simplify"]) == [
        "softmax-transpose",
        "simplify",
        "transpose-whitelist",
    ]
    assert order_pipeline(["transpose-whitelist"]) == ["transpose-whitelist"]
    with pytest.raises(UserError, match="test-early -> test-late|test-late -> test-early"):
        order_pipeline(["test-early", "test-late"])


def test_unchanged_status_when_a_pass_finds_nothing():
    run = PassManager(["softmax-transpose"], context()).run(relu_chain())
    assert run.records[0].status == UNCHANGED and run.records[0].matches == 0


@pytest.fixture(autouse=True)
def _test_passes():
    with registered(OneReluToIdentity, Raises, BreaksModel, AddsDeadAndUnsortedNodes, NeedsOpset15, Early, Late):
        yield


def test_the_passes_run_in_place_and_the_pipeline_restarts_only_after_a_failure():
    starts = []

    def restart():
        starts.append(1)
        return relu_chain()

    model = relu_chain()
    run = PassManager(["test-one-relu-to-identity"], context()).run(model, restart=restart)
    assert run.model is model and starts == [] and op_types(model) == ["Identity", "Relu", "Relu"]
    run = PassManager(["test-one-relu-to-identity", "test-raises"], context()).run(relu_chain(), restart=restart)
    assert starts == [1]  # the careful run starts from a fresh model: the Sigmoid edit is not in it
    assert [(record.name, record.status) for record in run.records] == [
        ("test-one-relu-to-identity", CHANGED), ("test-raises", FAILED), ("cleanup", UNCHANGED)]
    assert op_types(run.model) == ["Identity", "Relu", "Relu"]


def test_is_sorted_sees_a_subgraph_reading_an_outer_value_defined_after_its_node():
    from optimizer.manager import is_sorted, sort_graphs

    then = helper.make_graph([helper.make_node("Neg", ["late"], ["t"], name="reads_late")], "then", [],
                             [helper.make_tensor_value_info("t", 1, [2])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["e"], name="same")], "else", [],
                              [helper.make_tensor_value_info("e", 1, [2])])
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0, name="sum"),
        helper.make_node("Greater", ["s", "zero"], ["c"], name="gt"),
        helper.make_node("Relu", ["x"], ["late"], name="late"),
        helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other, name="if"),
    ]
    model = ir.serde.deserialize_model(make_model(nodes, [("x", [2])], [("y", [2])],
                                                  initializers=[("zero", np.array(0.0, np.float32))]))
    assert is_sorted(model)
    late = model.graph.node("late")
    model.graph.remove(late)
    model.graph.append(late)  # now after the If whose branch reads it
    assert not is_sorted(model)
    sort_graphs(model)
    assert is_sorted(model) and [node.name for node in model.graph].index("late") < 3


# --- cleanup's test for nothing to remove ----------------------------------------------------------


def unused_pattern(kind: str) -> Pattern:
    """y = Relu(x), with something RemoveUnusedNodesPass removes or edits (or, "none", nothing)."""
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    if kind == "dead node":
        nodes.append(helper.make_node("Neg", ["x"], ["dead"], name="dead"))
    elif kind == "unused optional output":
        nodes = [helper.make_node("Dropout", ["x"], ["y", "mask"], name="dropout")]
    elif kind == "trailing empty input":
        nodes = [helper.make_node("Clip", ["x", "", ""], ["y"], name="clip")]
    return Pattern(nodes, [2, 3], [2, 3])


UNUSED_KINDS = ("dead node", "unused optional output", "trailing empty input")


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize("kind", ("none", *UNUSED_KINDS))
def test_nothing_unused_is_true_exactly_where_the_dead_node_pass_changes_nothing(kind, scope):
    model = ir.serde.deserialize_model(place(unused_pattern(kind), scope))
    before = ir.serde.serialize_model(model).SerializeToString()
    verdict = nothing_unused(model)
    RemoveUnusedNodesPass()(model)
    changed = ir.serde.serialize_model(model).SerializeToString() != before
    assert verdict is (kind == "none") and changed is (kind != "none")


def test_nothing_unused_sees_an_unused_initializer():
    model = ir.serde.deserialize_model(
        make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2])], [("y", [2])],
                   initializers=[("w", np.ones(2, np.float32))])
    )
    assert not nothing_unused(model)
    RemoveUnusedNodesPass()(model)
    assert nothing_unused(model) and not model.graph.initializers


def test_where_nothing_is_unused_the_dead_node_pass_changes_nothing_on_random_models():
    """Random models as they are (nothing unused), and with their last output dropped (what made it
    is then unused, unless another output needs it too)."""
    seen = Counter()
    for seed in range(60):
        model = ir.serde.deserialize_model(generate(seed).model)
        if seed % 2 and len(model.graph.outputs) > 1:
            model.graph.outputs.pop()
        before = ir.serde.serialize_model(model).SerializeToString()
        verdict = nothing_unused(model)
        RemoveUnusedNodesPass()(model)
        changed = ir.serde.serialize_model(model).SerializeToString() != before
        assert not (verdict and changed), seed
        seen[verdict, changed] += 1
    assert seen[True, False] >= 10 and seen[False, True] >= 5, seen  # both kinds are drawn
