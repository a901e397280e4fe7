"""Hand-built ONNX models for edge cases (explicit IR version: onnxruntime refuses onnx's newest)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 8


def make_model(
    nodes,
    inputs,
    outputs,
    *,
    initializers=(),
    opset=13,
    ir_version=IR_VERSION,
    value_info=(),
    name="test",
    functions=(),
    extra_opsets=(),
) -> onnx.ModelProto:
    """A checked model from onnx.helper parts; inputs/outputs as (name, shape) float tensors or ValueInfos."""
    graph = helper.make_graph(
        nodes,
        name,
        [_info(i) for i in inputs],
        [_info(o) for o in outputs],
        initializer=[numpy_helper.from_array(np.asarray(a), n) for n, a in initializers],
        value_info=list(value_info),
    )
    opsets = [helper.make_opsetid("", opset), *extra_opsets]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=ir_version, functions=list(functions))
    onnx.checker.check_model(model)
    return model


def _info(item):
    if isinstance(item, onnx.ValueInfoProto):
        return item
    name, shape = item
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def op_types(model) -> list[str]:
    """Op types of the main graph of an onnx or onnx-ir model or graph, or of a file."""
    if isinstance(model, (str, Path)):
        model = onnx.load(str(model))
    if isinstance(model, onnx.ModelProto):
        return [n.op_type for n in model.graph.node]
    graph = getattr(model, "graph", model)
    return [n.op_type for n in graph]


def assert_fires_often(pass_class, strategy, *, examples: int, share: float, record_property) -> None:
    """Property test: on ``examples`` graphs drawn from ``strategy`` (hypothesis, fixed seed) the
    pass keeps the outputs and is idempotent (``check_pass``), and fires in at least ``share`` of
    them; the share seen is recorded (a property test whose cases rarely hold the pattern is void)."""
    from hypothesis import given, settings

    from optimizer.testing import ANY, check_pass

    fired = []

    @settings(max_examples=examples, deadline=None, derandomize=True)
    @given(strategy)
    def run(model):
        result = check_pass(pass_class, model, expect_changes=ANY, expect_skips=ANY, scopes=())
        fired.append(result.record.changes > 0)

    run()
    seen = sum(fired) / len(fired)
    line = f"{pass_class.name} fired in {sum(fired)}/{len(fired)} examples ({seen:.0%})"
    record_property("fired", line)
    print(line)
    assert seen >= share, line
