"""The upward conversion on chosen nodes only (optimizer.opset_nodes, optimizer.opset_steps) gives
what onnx's converter gives on the whole model: same nodes, same numbers, in every scope."""

from collections import Counter

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from helpers import make_model
from onnx import helper
from opset_models import floats, ir_for
from scopes import Pattern, feeds, place

from optimizer import opset_nodes, opset_steps, opset_up
from optimizer.graph_walk import walk
from optimizer.opset import convert_opset
from optimizer.opset_steps import compatible_steps, converter_changes
from optimizer.verify import run_onnxruntime

# Patterns reading x [2, 3, 4] and writing y, each with a node whose upward conversion does something.
PATTERNS = {
    "softmax-inner-axis": (11, [helper.make_node("Softmax", ["x"], ["y"], axis=1, name="sm")], [2, 3, 4]),
    "softmax-last-axis": (11, [helper.make_node("LogSoftmax", ["x"], ["y"], axis=2, name="lsm")], [2, 3, 4]),
    "unsqueeze-squeeze": (11, [helper.make_node("Unsqueeze", ["x"], ["u"], axes=[0], name="unsq"),
                               helper.make_node("Squeeze", ["u"], ["y"], axes=[0], name="sq")], [2, 3, 4]),
    "reduce-sum": (11, [helper.make_node("ReduceSum", ["x"], ["y"], axes=[1], keepdims=1, name="rs")], [2, 1, 4]),
    "split": (11, [helper.make_node("Split", ["x"], ["a", "b"], axis=2, split=[1, 3], name="split"),
                   helper.make_node("Concat", ["b", "a"], ["y"], axis=2, name="cat")], [2, 3, 4]),
    "clip": (10, [helper.make_node("Clip", ["x"], ["y"], min=-0.5, max=0.5, name="clip")], [2, 3, 4]),
    "pad": (10, [helper.make_node("Pad", ["x"], ["y"], pads=[0, 0, 1, 0, 0, 1], mode="constant", name="pad")],
            [2, 3, 6]),
    "topk": (9, [helper.make_node("TopK", ["x"], ["y", "i"], k=2, axis=2, name="topk")], [2, 3, 2]),
    "slice": (9, [helper.make_node("Slice", ["x"], ["y"], starts=[1], ends=[3], axes=[2], name="slice")], [2, 3, 2]),
    "dropout": (11, [helper.make_node("Dropout", ["x"], ["y"], ratio=0.3, name="drop")], [2, 3, 4]),
}
CASES = [pytest.param(name, scope, target, id=f"{name}-{scope}-{target}")
         for name, (opset, _, _) in PATTERNS.items()
         for scope in ("main", "if", "loop") if scope != "loop" or opset >= 11  # an empty-carry Loop needs 11
         for target in (13, 18)]


def placed(name: str, scope: str) -> onnx.ModelProto:
    opset, nodes, y_shape = PATTERNS[name]
    model = place(Pattern(nodes, [2, 3, 4], y_shape, opset=opset), scope)
    model.ir_version = ir_for(opset)
    return model


def whole(proto: onnx.ModelProto, target: int) -> onnx.ModelProto:
    return onnx.version_converter.convert_version(proto, target)


def ops(model) -> Counter:
    graphs = [model.graph]
    found = Counter()
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            found[node.op_type] += 1
            graphs.extend(attr.g for attr in node.attribute if attr.HasField("g"))
    return found


@pytest.mark.parametrize("name, scope, target", CASES)
def test_nodes_converted_alone_come_out_as_from_the_whole_model(name, scope, target, monkeypatch):
    """Node for node in the main graph. In a branch or a loop body onnx's converter does not see
    the types of the outer values a node reads, so it expands a Softmax whose rank it does not
    know; onnx-opt's inference knows it, and its result may be smaller there, never larger. Pad-11's
    adapter adds an initializer, which only a whole-graph conversion places."""
    proto = placed(name, scope)
    if name != "pad":
        monkeypatch.setattr(opset_up, "_convert_whole", lambda *a: pytest.fail("the whole graph went through"))
    ours = ir.serde.serialize_model(convert_opset(ir.serde.deserialize_model(proto), target, None))
    theirs = whole(proto, target)
    onnx.checker.check_model(ours, full_check=True)
    if scope == "main":
        assert ops(ours) == ops(theirs)
    else:
        assert ops(ours) - ops(theirs) == Counter() and ops(ours).total() <= ops(theirs).total()
    for cond in (True, False):
        given = feeds(proto, cond=cond)
        want = run_onnxruntime(ir.serde.deserialize_model(theirs), given)
        got = run_onnxruntime(ir.serde.deserialize_model(ours), given)
        for key, value in want.items():
            np.testing.assert_allclose(got[key], value, rtol=1e-6, atol=1e-6)


def test_the_rank_comes_from_shape_inference_as_in_the_converter():
    """onnx's converter infers shapes before it adapts: a Softmax over the last axis of an
    intermediate value without a declared shape stays one node (its axis becomes -1)."""
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, 2, 1], name="t"),
             helper.make_node("Softmax", ["t"], ["y"], axis=2, name="sm")]
    proto = make_model(nodes, [("x", [2, 3, 4])], [("y", [2, 4, 3])], opset=11, ir_version=8)
    converted = convert_opset(ir.serde.deserialize_model(proto), 13, None)
    assert [node.op_type for node in converted.graph] == ["Transpose", "Softmax"]
    assert converted.graph.node("sm").attributes.get_int("axis") == -1
    assert ops(whole(proto, 13)) == Counter({"Transpose": 1, "Softmax": 1})


def test_nodes_of_one_form_go_through_the_converter_once(monkeypatch):
    count = 40
    nodes = [helper.make_node("Unsqueeze", [f"v{i}"], [f"u{i}"], axes=[0], name=f"unsq{i}") for i in range(count)]
    nodes += [helper.make_node("Squeeze", [f"u{i}"], [f"v{i + 1}"], axes=[0], name=f"sq{i}") for i in range(count)]
    nodes.sort(key=lambda node: int(node.name.lstrip("unsq").lstrip("sq")) * 2 + node.name.startswith("sq"))
    nodes[0].input[0], nodes[-1].output[0] = "x", "y"
    proto = make_model(nodes, [("x", [2, 3])], [("y", [2, 3])], opset=11, ir_version=8)
    seen = []
    real = opset_nodes.run_converter

    def counting(given, target, what):
        seen.append(len(given.graph.node))
        return real(given, target, what)

    monkeypatch.setattr(opset_nodes, "run_converter", counting)
    converted = convert_opset(ir.serde.deserialize_model(proto), 13, None)
    assert seen == [2]  # one Unsqueeze, one Squeeze
    assert Counter(node.op_type for node in converted.graph) == Counter({"Unsqueeze": count, "Squeeze": count,
                                                                        "Constant": 2 * count})
    names = [value.name for node in converted.graph for value in node.outputs]
    assert len(names) == len(set(names)) and not any(name.startswith(opset_nodes.PREFIX) for name in names)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(run_onnxruntime(converted, {"x": x})["y"], x)


def test_a_node_holding_a_subgraph_sends_the_whole_graph_through(monkeypatch):
    """Scan changed form at opset 9 (its body is rewritten): such a node is not converted alone."""
    body = helper.make_graph([helper.make_node("Add", ["s", "e"], ["s2"], name="add"),
                              helper.make_node("Identity", ["s2"], ["o"], name="id")], "body",
                             [floats("s", [2]), floats("e", [2])], [floats("s2", [2]), floats("o", [2])])
    scan = helper.make_node("Scan", ["", "s0", "xs"], ["s", "os"], body=body, num_scan_inputs=1, name="scan")
    proto = make_model([scan], [("s0", [1, 2]), ("xs", [1, 3, 2])], [("s", [1, 2]), ("os", [1, 3, 2])],
                       opset=8, ir_version=ir_for(8))
    whole_graph = []
    real = opset_up._convert_whole
    monkeypatch.setattr(opset_up, "_convert_whole", lambda *args: whole_graph.append(1) or real(*args))
    converted = convert_opset(ir.serde.deserialize_model(proto), 9, None)
    assert whole_graph == [1]
    assert ops(ir.serde.serialize_model(converted)) == ops(whole(proto, 9))


def test_the_compatible_steps_are_read_from_the_installed_converter():
    steps = compatible_steps()
    assert opset_steps.converter_header().is_file()
    assert ("Transpose", 12) in steps and ("Add", 12) in steps and ("Conv", 10) in steps
    assert ("Softmax", 12) not in steps and ("Unsqueeze", 12) not in steps and ("Clip", 10) not in steps
    # registered twice, as an adapter class and as compatible: taken as changing (the safe side)
    assert ("GroupNormalization", 20) not in steps


def test_without_the_converter_header_every_step_counts_as_a_change(monkeypatch, tmp_path):
    node = ir.node("Transpose", [ir.Value(name="x")], {"perm": [1, 0]})
    assert not converter_changes(node, 11, 13)
    monkeypatch.setattr(opset_steps, "converter_header", lambda: tmp_path / "missing.h")
    compatible_steps.cache_clear()
    try:
        assert converter_changes(node, 11, 13)
        assert not converter_changes(node, 13, 13)
    finally:
        monkeypatch.undo()
        compatible_steps.cache_clear()


def test_other_domains_and_unchanged_ops_are_left_alone():
    custom = ir.node("Custom", [ir.Value(name="x")], domain="com.example")
    add = ir.node("Add", [ir.Value(name="a"), ir.Value(name="b")])
    assert not converter_changes(custom, 9, 18) and not converter_changes(add, 14, 18)
    assert converter_changes(ir.node("NoSuchOp", [ir.Value(name="x")]), 11, 13)  # the converter's error, kept


def test_an_unknown_op_is_the_converters_one_line_error():
    graph = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"], name="odd")], "g",
                              [floats("x", [2])], [floats("y", [2])])
    model = ir.serde.deserialize_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)],
                                                         ir_version=8))
    with pytest.raises(Exception, match="onnx cannot convert the model from opset 11 to 13"):
        convert_opset(model, 13, None)


def test_walk_visits_what_onnx_irs_iterator_visits_in_its_order():
    proto = placed("unsqueeze-squeeze", "loop")
    inner = proto.graph.node[-1]
    outer = helper.make_node(
        "If", ["cond"], ["z"], name="outer",
        then_branch=helper.make_graph([inner], "then", [], [floats("y", [2, 3, 4])]),
        else_branch=helper.make_graph([helper.make_node("Identity", ["x"], ["y"], name="same")], "else", [],
                                      [floats("y", [2, 3, 4])]))
    graph = helper.make_graph([*proto.graph.node[:-1], outer], "g", list(proto.graph.input), [floats("z", [2, 3, 4])])
    model = ir.serde.deserialize_model(helper.make_model(graph, opset_imports=list(proto.opset_import), ir_version=8))
    expected = list(ir.traversal.RecursiveGraphIterator(model.graph))
    assert list(walk(model.graph)) == expected and len(expected) > 4


def test_the_graph_holders_are_the_default_domain_operators_with_graph_attributes():
    from optimizer.graph_walk import GRAPH_HOLDERS

    graphs = (onnx.defs.OpSchema.AttrType.GRAPH, onnx.defs.OpSchema.AttrType.GRAPHS)
    holders = {schema.name for schema in onnx.defs.get_all_schemas_with_history()
               if schema.domain in ("", "ai.onnx") and any(a.type in graphs for a in schema.attributes.values())}
    assert holders == GRAPH_HOLDERS
