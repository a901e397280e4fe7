"""Test a pass with one call: it runs, keeps the numbers (every output, both sides of every If),
and a second run changes nothing.

from optimizer.testing import check_pass
result = check_pass("my-pass", "model.onnx", expect_changes=1)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx_ir as ir

from optimizer.manager import FAILED, SKIPPED, PassManager, PassRecord
from optimizer.modelio import load_model
from optimizer.opset import convert_opset
from optimizer.passapi import PassContext, model_opset
from optimizer.registry import registered
from optimizer.shapes import fix_input_shapes
from optimizer.targets import load_target
from optimizer.verifier import Verification, Verifier, choose_feeds

__all__ = ["PassCheck", "check_pass", "registered"]


@dataclass
class PassCheck:
    """The rewritten model (at the saved opset), what the pass recorded, and the numerical comparison."""

    model: ir.Model
    record: PassRecord
    verification: Verification


def check_pass(
    name: str,
    model: ir.Model | onnx.ModelProto | str | Path,
    *,
    target: str = "onnxruntime",
    input_shapes: dict[str, list[int]] | None = None,
    verify_shapes: dict[str, list[int]] | None = None,
    final_opset: int | None = None,
    expect_changes: int | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int = 0,
) -> PassCheck:
    """Run pass ``name`` on ``model`` and assert that it ran (was neither skipped nor failed),
    made ``expect_changes`` changes when given, kept every output within tolerance on seeded
    random inputs (onnxruntime) with both sides of every If forced in turn, and is idempotent
    (a second run changes nothing).

    ``input_shapes`` are fixed into the model first (``--input-shape``); ``verify_shapes``
    only shape the random inputs (dynamic dims are otherwise sized as ``optimize`` sizes
    them). With ``final_opset`` the result is converted to that opset (as ``--opset`` does
    after the passes) before it is compared, so a rewrite must be right at the opset the
    model is saved at.
    """
    original = _as_ir(model)
    if input_shapes:
        fix_input_shapes(original, input_shapes)
    ctx = PassContext(load_target(target), final_opset)
    run = PassManager([name], ctx).run(original.clone())
    record = run.records[0]
    assert record.status != FAILED, f"{name} failed: {record.reason}"
    assert record.status != SKIPPED, f"{name} was skipped: {record.reason}"
    if expect_changes is not None:
        assert record.changes == expect_changes, (
            f"{name} made {record.changes} changes, expected {expect_changes}; refusals: {record.skips}"
        )
    result = run.model
    if final_opset is not None and final_opset != model_opset(result):
        result = convert_opset(result, final_opset, Path.cwd())
    feeds = choose_feeds(original, verify_shapes=verify_shapes, seed=seed)
    checked = Verifier(original, feeds, rtol=rtol, atol=atol).check(result)
    assert checked.ok, f"{name} changed the outputs: {'; '.join(checked.failures())}"
    again = PassManager([name], ctx).run(run.model.clone()).records[0]
    assert again.changes == 0, f"{name} is not idempotent: a second run changed {again.changed_nodes}"
    return PassCheck(result, record, checked)


def _as_ir(model: ir.Model | onnx.ModelProto | str | Path) -> ir.Model:
    if isinstance(model, ir.Model):
        return model.clone()
    if isinstance(model, onnx.ModelProto):
        return ir.serde.deserialize_model(model)
    return load_model(Path(model))
