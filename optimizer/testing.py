"""Test a pass with one call: it runs, keeps the numbers, and a second run changes nothing.

from optimizer.testing import check_pass
result = check_pass("my-pass", "model.onnx", expect_changes=1)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx_ir as ir

from optimizer.manager import FAILED, PassManager, PassRecord
from optimizer.modelio import load_model
from optimizer.passapi import PassContext
from optimizer.targets import load_target
from optimizer.verify import Verification, compare_outputs, input_specs, random_inputs, run_onnxruntime, verification


@dataclass
class PassCheck:
    """The rewritten model, what the pass recorded, and the numerical comparison."""

    model: ir.Model
    record: PassRecord
    verification: Verification


def check_pass(
    name: str,
    model: ir.Model | onnx.ModelProto | str | Path,
    *,
    target: str = "onnxruntime",
    input_shapes: dict[str, list[int]] | None = None,
    final_opset: int | None = None,
    expect_changes: int | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int = 0,
) -> PassCheck:
    """Run pass ``name`` on ``model`` and assert it did not fail, kept every output within
    tolerance on seeded random inputs (onnxruntime), made ``expect_changes`` changes when
    given, and is idempotent (a second run changes nothing)."""
    original = _as_ir(model)
    shapes = input_shapes or {}
    ctx = PassContext(load_target(target), shapes, final_opset)
    run = PassManager([name], ctx).run(original.clone())
    record = run.records[0]
    assert record.status != FAILED, f"{name} failed: {record.reason}"
    if expect_changes is not None:
        assert record.changes == expect_changes, (
            f"{name} made {record.changes} changes, expected {expect_changes}; refusals: {record.skips}"
        )
    feeds = random_inputs(input_specs(original, shapes), seed)
    checks = compare_outputs(run_onnxruntime(original, feeds), run_onnxruntime(run.model, feeds), rtol, atol)
    checked = verification(checks, feeds, f"random (seed {seed})")
    assert checked.ok, f"{name} changed the outputs: {checked.failures()}"
    again = PassManager([name], ctx).run(run.model.clone()).records[0]
    assert again.changes == 0, f"{name} is not idempotent: a second run changed {again.changed_nodes}"
    return PassCheck(run.model, record, checked)


def _as_ir(model: ir.Model | onnx.ModelProto | str | Path) -> ir.Model:
    if isinstance(model, ir.Model):
        return model
    if isinstance(model, onnx.ModelProto):
        return ir.serde.deserialize_model(model)
    return load_model(Path(model))
