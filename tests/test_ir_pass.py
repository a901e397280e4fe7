"""onnx-ir passes wrapped as onnx-opt passes: registered, run from the CLI, in place or not;
their pre- and postcondition failures skip the pass with the reason."""

import json

import onnx_ir as ir
from helpers import make_model, op_types, save
from onnx import helper
from onnx_ir.passes.common import CommonSubexpressionEliminationPass

from optimizer.ir_passes import wrap_ir_pass
from optimizer.manager import PassManager
from optimizer.passapi import Change, PassContext
from optimizer.registry import registered
from optimizer.targets import load_target

CSE = wrap_ir_pass(CommonSubexpressionEliminationPass, name="cse", summary="Share nodes that compute the same")


def twin_relus():
    """Two Relu of x added: CSE keeps one."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="r1"),
        helper.make_node("Relu", ["x"], ["b"], name="r2"),
        helper.make_node("Add", ["a", "b"], ["y"], name="add"),
    ]
    return make_model(nodes, [("x", [2, 3])], [("y", [2, 3])])


def run(pass_class, model):
    with registered(pass_class):
        ctx = PassContext(load_target("onnxruntime"))
        return PassManager([pass_class.name], ctx).run(ir.serde.deserialize_model(model))


def test_a_wrapped_onnx_ir_pass_runs_from_the_cli(cli, tmp_path):
    source, out, report = save(twin_relus(), tmp_path / "in.onnx"), tmp_path / "out.onnx", tmp_path / "report.json"
    with registered(CSE):
        code, stdout, err = cli("optimize", source, "-o", out, "--passes", "cse", "--report", report)
    assert code == 0, err
    assert "verification with onnxruntime" in stdout and "passed" in stdout
    assert op_types(out) == ["Relu", "Add"]
    record = json.loads(report.read_text())["passes"][0]
    assert (record["status"], record["changes"], record["changed_nodes"]) == ("changed", 1, ["r2"])
    assert (record["nodes_before"], record["nodes_after"]) == (3, 2)


def test_the_change_says_how_the_counts_moved_and_which_nodes_went():
    result = CSE().run(ir.serde.deserialize_model(twin_relus()), PassContext(load_target("onnxruntime")))
    assert result.changes == [Change("CommonSubexpressionEliminationPass: nodes 3 -> 2", ("r2",))]


def test_a_functional_pass_returns_a_new_model():
    functional = wrap_ir_pass(
        lambda: ir.passes.functionalize(CommonSubexpressionEliminationPass()), name="cse-copy", summary="CSE on a copy"
    )
    model = ir.serde.deserialize_model(twin_relus())
    with registered(functional):
        result = functional().run(model, PassContext(load_target("onnxruntime")))
    assert result.model is not model and len(model.graph) == 3
    assert [node.op_type for node in result.model.graph] == ["Relu", "Add"]
    assert result.changes[0].description.endswith(": nodes 3 -> 2")


def test_nothing_modified_is_no_change():
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="r1")]
    [record] = run(CSE, make_model(nodes, [("x", [2])], [("y", [2])])).records
    assert (record.status, record.changes, record.matches) == ("unchanged", 0, 0)


class NoFunctionsCSE(CommonSubexpressionEliminationPass):
    """onnx-ir's CSE, refusing a model with functions (it would leave their bodies alone)."""

    def requires(self, model):
        if model.functions:
            raise ir.passes.PreconditionError("model-local functions are not handled")


def test_a_precondition_failure_skips_the_pass_with_the_reason(cli, tmp_path):
    wrapped = wrap_ir_pass(NoFunctionsCSE, name="cse-main", summary="CSE of the main graph")
    function = helper.make_function("local", "f", ["a"], ["b"], [helper.make_node("Relu", ["a"], ["b"])],
                                    [helper.make_opsetid("", 13)])
    call = helper.make_node("f", ["x"], ["y"], domain="local", name="call")
    model = make_model([call], [("x", [2])], [("y", [2])], functions=[function],
                       extra_opsets=[helper.make_opsetid("local", 1)])
    report = tmp_path / "report.json"
    with registered(wrapped):
        code, _, err = cli("optimize", save(model, tmp_path / "in.onnx"), "-o", tmp_path / "out.onnx",
                           "--passes", "cse-main", "--report", report)
    assert code == 0, err
    record = json.loads(report.read_text())["passes"][0]
    assert (record["status"], record["reason"]) == ("skipped", "model-local functions are not handled")


class BrokenPromise(CommonSubexpressionEliminationPass):
    def ensures(self, model):
        raise ValueError("one Relu too many")


def test_a_postcondition_failure_fails_the_pass_and_undoes_it():
    """The post-condition is checked after the in-place pass changed the model: that is no skip."""
    wrapped = wrap_ir_pass(BrokenPromise, name="cse-broken", summary="CSE that breaks its promise")
    run_result = run(wrapped, twin_relus())
    [record] = run_result.records
    assert record.status == "failed"
    assert record.reason == "PostconditionError: Post-condition for pass 'BrokenPromise' failed: one Relu too many"
    assert [node.op_type for node in run_result.model.graph] == ["Relu", "Relu", "Add"]
