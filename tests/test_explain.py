"""``optimize --explain PASS``: a verdict and reason per candidate node of a NodePass, a RulePass
and a wrapped onnx-ir pass, collected where the pass runs; in the report; bad usage exits 2."""

import json

import onnx
import onnx_ir as ir
import pytest
from helpers import make_model, save
from onnx import helper
from rule_examples import FoldDoubleTranspose
from scopes import place
from test_ir_pass import CSE, twin_relus
from test_rule_pass import SHAPE_INPUT, transposes, unknown_rank_nodes

from optimizer.manager import PassManager
from optimizer.passapi import PassContext
from optimizer.registry import registered
from optimizer.targets import load_target

SK_REASON = (
    "at opset 11 Softmax(axis=1) would flatten dims [16, 1, 1] of the input [1, 2, 16, 1, 1] into the softmax; "
    "--opset 13 enables this rewrite"
)


def mixed_model():
    """Candidates of softmax-transpose and of the fold, matched, refused and not matched."""
    nodes = [
        # softmax-transpose rewrites this sandwich ...
        helper.make_node("Transpose", ["x"], ["p"], perm=[0, 2, 3, 1], name="s1_in"),
        helper.make_node("Softmax", ["p"], ["q"], axis=-1, name="s1"),
        helper.make_node("Transpose", ["q"], ["y1"], perm=[0, 3, 1, 2], name="s1_out"),
        # ... and refuses this one, whose last perm does not undo the first
        helper.make_node("Transpose", ["x"], ["p2"], perm=[0, 2, 3, 1], name="s2_in"),
        helper.make_node("Softmax", ["p2"], ["q2"], axis=-1, name="s2"),
        helper.make_node("Transpose", ["q2"], ["y2"], perm=[0, 2, 3, 1], name="s2_out"),
        # the fold removes this pair ...
        helper.make_node("Transpose", ["x"], ["f"], perm=[1, 0, 2, 3], name="f1"),
        helper.make_node("Transpose", ["f"], ["y3"], perm=[1, 0, 2, 3], name="f2"),
        # ... refuses the pair without perms on a value of unknown rank (u_t1 -> u_t2) ...
        *unknown_rank_nodes("u_"),
        # ... and cannot take this pair: the inner Transpose has another consumer
        helper.make_node("Transpose", ["x"], ["g"], perm=[0, 1, 3, 2], name="g1"),
        helper.make_node("Transpose", ["g"], ["y5"], perm=[0, 1, 3, 2], name="g2"),
        helper.make_node("Relu", ["g"], ["y6"], name="relu"),
    ]
    outputs = [("y1", [2, 3, 4, 5]), ("y2", [2, 5, 3, 4]), ("y3", [2, 3, 4, 5]), ("u_y", []), ("y5", [2, 3, 4, 5]),
               ("y6", [2, 3, 5, 4])]
    return make_model(nodes, [("x", [2, 3, 4, 5]), SHAPE_INPUT], outputs)


def explain(cli, tmp_path, model, name, *extra):
    """Run optimize --passes NAME --explain NAME; the explain lines of stdout and the report record."""
    source, report = save(model, tmp_path / "in.onnx"), tmp_path / "report.json"
    code, out, err = cli("optimize", source, "--dry-run", "--passes", name, "--explain", name, "--report", report,
                         *extra)
    assert code == 0, err
    lines = out[out.index(f"explain {name}:"):].splitlines()
    record = next(r for r in json.loads(report.read_text())["passes"] if r["name"] == name)
    return lines, record


def test_a_node_pass_on_the_sk_unit(cli, examples, tmp_path):
    lines, record = explain(cli, tmp_path, onnx.load(examples / "skunit_opset11.onnx"), "softmax-transpose")
    assert lines[:4] == [
        "explain softmax-transpose: 3 candidates (1 refused, 2 no match)",
        "  Transpose '/softmax/Transpose' in the main graph: no match: the pass gave no reason",
        f"  Softmax '/softmax/Softmax' in the main graph: refused: {SK_REASON}",
        "  Transpose '/softmax/Transpose_1' in the main graph: no match: the pass gave no reason",
    ]
    assert record["explained"][1] == {
        "node": "/softmax/Softmax", "op_type": "Softmax", "scope": "the main graph", "outcome": "refused",
        "reason": SK_REASON,
    }


def test_a_node_pass_matched_refused_and_not_matched(cli, tmp_path):
    _, record = explain(cli, tmp_path, mixed_model(), "softmax-transpose", "--no-verify")
    verdicts = {v["node"]: (v["outcome"], v["reason"]) for v in record["explained"]}
    assert verdicts["s1"] == ("matched", "Softmax(axis=1) replaces Transpose -> Softmax(axis=3) -> Transpose")
    assert verdicts["s2"] == ("refused", "perm [0, 2, 3, 1] of s2_out does not undo perm [0, 2, 3, 1] of s2_in")
    assert verdicts["f1"] == ("no match", "the pass gave no reason")
    assert "relu" not in verdicts and "u_reshape" not in verdicts  # not of an op type it addresses
    assert len(record["explained"]) == 11  # two Softmax, nine Transpose (s1_out went with s1, before its turn)


def test_a_rule_pass_matched_refused_and_not_matched(cli, tmp_path):
    with registered(FoldDoubleTranspose):
        lines, record = explain(cli, tmp_path, mixed_model(), FoldDoubleTranspose.name, "--no-verify")
    verdicts = {v["node"]: (v["outcome"], v["reason"]) for v in record["explained"]}
    refusal = "the rank of x is unknown and neither Transpose has a perm"
    assert verdicts["f2"] == ("matched", "Transpose -> Transpose became Identity")
    assert verdicts["u_t2"] == ("refused", refusal)
    assert verdicts["g2"] == ("no match", "Matched nodes have other uses preventing replacement.")
    assert verdicts["f1"] == ("no match", "Mismatch: Computed node pattern does not match uncomputed IR value.")
    assert verdicts["s1_out"] == ("no match", "OpType mismatch: expected Transpose, got Softmax.")
    assert "s1" not in verdicts and "relu" not in verdicts
    assert f"  Transpose 'u_t2' in the main graph: refused: {refusal}" in lines
    assert record["skips"] == [{"node": "u_t2", "reason": refusal}]


def test_verdicts_name_the_scope():
    model = ir.serde.deserialize_model(place(transposes([0, 2, 3, 1], [0, 3, 1, 2], [2, 3, 4, 5]), "if"))
    with registered(FoldDoubleTranspose):
        manager = PassManager([FoldDoubleTranspose.name], PassContext(load_target("onnxruntime")),
                              explain=FoldDoubleTranspose.name)
        [record, _] = manager.run(model).records
    matched = [(v["node"], v["scope"]) for v in record.explained if v["outcome"] == "matched"]
    assert matched == [("t2", "else_branch of If 'if'"), ("t2", "then_branch of If 'if'")]


def test_a_wrapped_onnx_ir_pass_explains_what_it_reported(cli, tmp_path):
    with registered(CSE):
        lines, record = explain(cli, tmp_path, twin_relus(), "cse")
    assert lines[:2] == [
        "explain cse: 1 candidate (1 matched)",
        "  Relu 'r2' in the main graph: matched: CommonSubexpressionEliminationPass: nodes 3 -> 2",
    ]


def test_a_skipped_pass_says_why_it_looked_at_nothing(cli, examples, tmp_path):
    lines, record = explain(cli, tmp_path, onnx.load(examples / "skunit_opset11.onnx"), "transpose-whitelist")
    reason = "target onnxruntime lacks transpose-whitelist"
    assert lines[0] == f"explain transpose-whitelist: skipped, no candidate looked at: {reason}"
    assert record["explained"] is None


def test_quiet_prints_nothing_but_the_report_has_it(cli, examples, tmp_path):
    report = tmp_path / "report.json"
    code, out, _ = cli("-q", "optimize", examples / "skunit_opset11.onnx", "--dry-run", "--passes", "softmax-transpose",
                       "--explain", "softmax-transpose", "--report", report)
    assert (code, out) == (0, "")
    assert len(json.loads(report.read_text())["passes"][0]["explained"]) == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--explain", "softmax-transpos"], "unknown pass 'softmax-transpos'; did you mean softmax-transpose"),
        (["--passes", "simplify", "--explain", "softmax-transpose"],
         "--explain softmax-transpose: not in the pipeline; add it with --passes +softmax-transpose"),
    ],
)
def test_bad_explain_usage_exits_2_and_writes_nothing(cli, examples, tmp_path, args, message):
    out = tmp_path / "out.onnx"
    code, _, err = cli("optimize", examples / "skunit_opset11.onnx", "-o", out, *args)
    [line] = err.strip().splitlines()
    assert code == 2 and line.startswith(f"onnx-opt: error: {message}")
    assert not out.exists()
