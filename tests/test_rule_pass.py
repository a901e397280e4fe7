"""RulePass: onnxscript rewrite rules as a pass, in every scope, with numbers kept (onnxruntime),
idempotent, fresh names unique across scopes, check failures as Skips."""

import json
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
import rule_examples
from helpers import make_model, save
from onnx import helper
from onnxscript.rewriter import RewriteRule, RewriteRuleClassBase
from rule_examples import FoldDoubleTranspose
from scopes import SCOPES, Pattern, feeds, place

from optimizer.manager import PassManager
from optimizer.passapi import PassContext, Requires, iter_nodes
from optimizer.registry import registered
from optimizer.rules import RulePass
from optimizer.targets import load_target
from optimizer.verify import run_onnxruntime

CHANGES = {"main": 1, "function": 1, "if": 2, "loop": 1}


def transposes(first, second, y_shape, x_shape=(2, 3, 4, 5)):
    """Transpose -> Transpose on x (None: no perm); placed in a function, a main-graph value is also 't'."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], name="t1", **({"perm": first} if first else {})),
        helper.make_node("Transpose", ["t"], ["y"], name="t2", **({"perm": second} if second else {})),
    ]
    return Pattern(nodes, list(x_shape), y_shape, decoys=[("t", [7])])


def run_pass(pass_class, source):
    """Run the pass on an onnx model; assert the checker takes the result, the numbers are kept on
    both sides of every If, and a second run changes nothing. Returns the record and the model."""
    with registered(pass_class):
        ctx = PassContext(load_target("onnxruntime"))
        run = PassManager([pass_class.name], ctx).run(ir.serde.deserialize_model(source))
        again = PassManager([pass_class.name], ctx).run(run.model.clone()).records[0]
    assert run.records[0].status == "changed", run.records[0].reason
    assert again.changes == 0, again.changed_nodes
    onnx.checker.check_model(ir.serde.serialize_model(run.model), full_check=True)
    has_cond = any(value.type.tensor_type.elem_type == onnx.TensorProto.BOOL for value in source.graph.input)
    for cond in (True, False) if has_cond else (None,):
        inputs = feeds(source, seed=1, cond=cond)
        expected = run_onnxruntime(ir.serde.deserialize_model(source), inputs)
        actual = run_onnxruntime(run.model, inputs)
        for name, value in expected.items():
            np.testing.assert_allclose(actual[name], value, rtol=1e-5, atol=1e-6)
    return run.records[0], run.model


@pytest.mark.parametrize("scope", SCOPES)
@pytest.mark.parametrize(
    ("first", "second", "y_shape", "left"),
    [
        ([0, 2, 3, 1], [0, 3, 1, 2], [2, 3, 4, 5], 0),  # the perms compose to the identity: both go
        (None, None, [2, 3, 4, 5], 0),  # reversed twice (the rank from the shape of x, via ctx)
        ([0, 2, 3, 1], [1, 0, 2, 3], [4, 2, 5, 3], 1),  # one Transpose is left
    ],
)
def test_the_fold_fires_in_every_scope_and_keeps_the_numbers(scope, first, second, y_shape, left):
    record, model = run_pass(FoldDoubleTranspose, place(transposes(first, second, y_shape), scope))
    assert record.changes == record.matches == CHANGES[scope]
    assert record.changed_nodes == ["t1", "t2"] * CHANGES[scope]
    assert [node.op_type for node in iter_nodes(model)].count("Transpose") == left * CHANGES[scope]


def test_the_fold_fires_in_if_branches_inside_a_function():
    inner = place(transposes([0, 2, 3, 1], [1, 0, 2, 3], [4, 2, 5, 3]), "if")
    function = helper.make_function("local", "branchy", ["cond", "x"], ["out"], list(inner.graph.node),
                                    [helper.make_opsetid("", 13)])
    call = helper.make_node("branchy", ["cond", "a"], ["y"], domain="local", name="call")
    model = make_model([call], [inner.graph.input[0], ("a", [2, 3, 4, 5])], [("y", [4, 2, 5, 3])],
                       functions=[function], extra_opsets=[helper.make_opsetid("local", 1)])
    record, _ = run_pass(FoldDoubleTranspose, model)
    assert record.changes == 2


def test_a_single_transpose_gets_the_composed_perm():
    _, model = run_pass(FoldDoubleTranspose, place(transposes([0, 2, 3, 1], [1, 0, 2, 3], [4, 2, 5, 3]), "main"))
    [node] = [node for node in model.graph if node.op_type == "Transpose"]
    assert list(node.attributes.get_ints("perm")) == [2, 0, 3, 1]
    assert node.inputs[0].name == "x" and node.outputs[0].name == "y"


def unknown_rank_nodes(prefix=""):
    """Transpose -> Transpose without perms on a value of unknown rank (x reshaped to the shape s)."""
    return [
        helper.make_node("Reshape", ["x", "s"], [f"{prefix}r"], name=f"{prefix}reshape"),
        helper.make_node("Transpose", [f"{prefix}r"], [f"{prefix}t"], name=f"{prefix}t1"),
        helper.make_node("Transpose", [f"{prefix}t"], [f"{prefix}u"], name=f"{prefix}t2"),
        helper.make_node("ReduceSum", [f"{prefix}u"], [f"{prefix}y"], keepdims=0, name=f"{prefix}sum"),
    ]


SHAPE_INPUT = helper.make_tensor_value_info("s", onnx.TensorProto.INT64, ["k"])


def test_a_check_failure_is_a_skip_with_the_reason_in_the_report(cli, tmp_path):
    model = make_model(unknown_rank_nodes(), [("x", [6]), SHAPE_INPUT], [("y", [])])
    source = save(model, tmp_path / "rank.onnx")
    report = tmp_path / "report.json"
    with registered(FoldDoubleTranspose):
        code, _, err = cli("optimize", source, "-o", tmp_path / "out.onnx", "--passes", FoldDoubleTranspose.name,
                           "--no-verify", "--report", report)
    assert code == 0, err
    [record] = json.loads(report.read_text())["passes"]
    assert record["status"] == "unchanged" and record["matches"] == 1 and record["changes"] == 0
    assert record["skips"] == [{"node": "t2", "reason": "the rank of x is unknown and neither Transpose has a perm"}]


def test_a_pattern_that_does_not_fit_is_no_skip():
    """The inner Transpose has another consumer: onnxscript's matcher says no; nothing is refused."""
    nodes = [
        helper.make_node("Transpose", ["x"], ["t"], perm=[1, 0], name="t1"),
        helper.make_node("Transpose", ["t"], ["y"], perm=[1, 0], name="t2"),
        helper.make_node("Relu", ["t"], ["z"], name="relu"),
    ]
    model = ir.serde.deserialize_model(make_model(nodes, [("x", [2, 3])], [("y", [2, 3]), ("z", [3, 2])]))
    with registered(FoldDoubleTranspose):
        [record] = PassManager([FoldDoubleTranspose.name], PassContext(load_target("onnxruntime"))).run(model).records
    assert (record.status, record.matches, record.skips) == ("unchanged", 0, [])


class FoldFrom13(FoldDoubleTranspose):
    name = "fold-from-13"
    requires = Requires(opsets=(13, None))


def test_the_manager_respects_what_a_rule_pass_requires():
    pattern = transposes([1, 0, 2, 3], [1, 0, 2, 3], [2, 3, 4, 5])
    pattern.opset = 11
    with registered(FoldFrom13):
        ctx = PassContext(load_target("onnxruntime"))
        [record] = PassManager([FoldFrom13.name], ctx).run(ir.serde.deserialize_model(place(pattern, "main"))).records
    assert record.status == "skipped"
    assert record.reason == "needs opset >= 13; the model has opset 11 (--opset 13 lets it run)"


class ExpandSoftsign(RulePass):
    """Softsign(x) = x / (1 + |x|), with a named intermediate and an initializer (a Constant in every scope)."""

    name = "expand-softsign"
    summary = "Softsign as Div, Add and Abs"

    def pattern(self, op, x):
        return op.Softsign(x)

    def rewrite(self, op, x):
        one = op.initializer(ir.tensor(np.array(1.0, dtype=np.float32)), name="one")
        return op.Div(x, op.Add(op.Abs(x, _outputs=["abs"]), one))


@pytest.mark.parametrize("scope", SCOPES)
def test_new_values_get_names_unique_across_scopes(scope):
    """Both If branches meet the same authored names ('abs', 'one'): each gets its own."""
    pattern = Pattern([helper.make_node("Softsign", ["x"], ["y"], name="s")], [2, 3], [2, 3])
    source = place(pattern, scope)
    before = set(_defined(ir.serde.deserialize_model(source)))
    _, model = run_pass(ExpandSoftsign, source)
    created = [name for name in _defined(model) if name not in before]
    assert len(created) == len(set(created)) == 3 * CHANGES[scope]  # abs, one and the Add's output


def _defined(model):
    return [value.name for node in iter_nodes(model) for value in node.outputs]


class NegNeg(RewriteRuleClassBase):
    def pattern(self, op, x):
        return op.Neg(op.Neg(x))

    def rewrite(self, op, x):
        return op.Identity(x)


class Rules(RulePass):
    name = "several-rules"
    summary = "Rules given as a RewriteRuleClassBase class and a RewriteRule"
    rules = (NegNeg, RewriteRule(lambda op, x: op.Abs(op.Abs(x)), lambda op, x: op.Abs(x), name="AbsAbs"))


def test_several_rules_each_rewrite_their_pattern():
    nodes = [
        helper.make_node("Neg", ["x"], ["n"], name="n1"),
        helper.make_node("Neg", ["n"], ["m"], name="n2"),
        helper.make_node("Abs", ["m"], ["a"], name="a1"),
        helper.make_node("Abs", ["a"], ["y"], name="a2"),
    ]
    record, model = run_pass(Rules, make_model(nodes, [("x", [3])], [("y", [3])]))
    assert [node.op_type for node in model.graph] == ["Identity", "Abs"]
    assert record.changed_nodes == ["n1", "n2", "a1", "a2"]


def test_the_fold_fits_on_one_screen():
    assert len(Path(rule_examples.__file__).read_text().splitlines()) <= 40
