"""Test a pass with one call: it fired, kept the numbers (every output, both sides of every If),
left a model the onnx checker accepts, is idempotent, and did the same with the graph moved into
a function, an If branch and a Loop body.

    from optimizer.testing import check_pass
    result = check_pass("my-pass", "model.onnx", expect_changes=1)
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import onnx_ir as ir

from optimizer.manager import FAILED, SKIPPED, PassManager, PassRecord
from optimizer.modelio import load_model
from optimizer.opset import convert_opset
from optimizer.passapi import Pass, PassContext, model_opset
from optimizer.registry import all_passes, registered
from optimizer.shapes import fix_input_shapes
from optimizer.targets import load_target
from optimizer.testing.nesting import nest
from optimizer.verifier import Verification, Verifier, choose_feeds

__all__ = ["ANY", "PassCheck", "check_pass"]

NESTED = ("function", "if", "loop")
ANY = -1  # ``expect_changes=ANY`` / ``expect_skips=ANY``: any number (e.g. on generated graphs)


@dataclass
class PassCheck:
    """The rewritten model (at the saved opset), what the pass recorded, the numerical comparison,
    and the record of each nested run by scope."""

    model: ir.Model
    record: PassRecord
    verification: Verification
    nested: dict[str, PassRecord]


def check_pass(
    pass_: str | type[Pass],
    model: ir.Model | onnx.ModelProto | str | Path,
    *,
    target: str = "onnxruntime",
    options: Any = None,
    input_shapes: dict[str, list[int]] | None = None,
    verify_shapes: dict[str, list[int]] | None = None,
    final_opset: int | None = None,
    expect_changes: int | None = None,
    expect_skips: int = 0,
    scopes: Sequence[str] = NESTED,
    compare_nested: bool = True,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int = 0,
) -> PassCheck:
    """Run ``pass_`` (a registered name, or a pass class, registered for the call) on ``model`` and
    assert that it ran (neither skipped nor failed) and fired (made ``expect_changes`` changes
    when given, else at least one), refused ``expect_skips`` candidates (a Skip fails it unless
    expected; ``ANY`` accepts any number of either), kept
    every output within tolerance on seeded random inputs (onnxruntime) with both sides of every
    If forced in turn, left a model the onnx checker accepts (full check), and is idempotent.
    Then the same with the main graph moved into each of ``scopes`` (see
    :func:`optimizer.testing.nest`): the pass must change the same nodes and refuse the same ones
    for the same reasons there (``compare_nested=False`` keeps only the checks of each run, for a
    whole-model pass such as ``simplify`` whose work differs by scope).

    ``options`` are the pass's options (its ``Options`` instance, or a dict of field values).
    ``input_shapes`` are fixed into the model first (``--input-shape``); ``verify_shapes`` only
    shape the random inputs. With ``final_opset`` the result is converted to that opset (as
    ``--opset`` does after the passes) before it is compared, so a rewrite must be right at the
    opset the model is saved at.
    """
    original = _as_ir(model)
    if input_shapes:
        fix_input_shapes(original, input_shapes)
    with _registered(pass_) as name:
        ctx = PassContext(load_target(target), final_opset)
        settings = {} if options is None else {name: options}
        check = dict(ctx=ctx, settings=settings, final_opset=final_opset, verify_shapes=verify_shapes,
                     rtol=rtol, atol=atol, seed=seed)
        record, result, checked = _run_checked(name, original, "", **check)
        if expect_changes is None:
            assert record.changes or record.findings, f"{name} did not fire; refusals: {record.skips}"
        elif expect_changes != ANY:
            assert record.changes == expect_changes, (
                f"{name} made {record.changes} changes, expected {expect_changes}; refusals: {record.skips}"
            )
        if expect_skips != ANY:
            assert len(record.skips) == expect_skips, (
                f"{name} refused {len(record.skips)} candidates, expected {expect_skips}: {record.skips}"
            )
        nested = {}
        proto = ir.serde.serialize_model(original)
        for scope in scopes:
            nested_model = nest(proto, scope)
            inner, _, _ = _run_checked(name, ir.serde.deserialize_model(nested_model), f" in {scope}", **check)
            if compare_nested:
                own = _node_names(proto)  # the nodes nest() adds around the graph are not compared
                for what, there, here in (
                    ("changed", set(inner.changed_nodes) & own, set(record.changed_nodes)),
                    ("refused", {r for r in _refusals(inner) if r[0] in own}, _refusals(record)),
                ):
                    assert there == here, (
                        f"{name} {what} {sorted(there)} with the graph in {scope}, {sorted(here)} in the main graph"
                    )
            nested[scope] = inner
    return PassCheck(result, record, checked, nested)


def _node_names(model: onnx.ModelProto) -> set[str]:
    """Names of the nodes of every graph, subgraph and function of ``model``."""
    names = set()
    graphs = [model.graph, *(function for function in model.functions)]
    while graphs:
        graph = graphs.pop()
        for node in graph.node:
            names.add(node.name)
            for attr in node.attribute:
                graphs += [attr.g] if attr.HasField("g") else list(attr.graphs)
    return names


def _refusals(record: PassRecord) -> set[tuple[str, str]]:
    return {(skip["node"], skip["reason"]) for skip in record.skips}


def _run_checked(
    name: str, original: ir.Model, where: str, *, ctx: PassContext, settings: dict[str, Any],
    final_opset: int | None, verify_shapes: dict[str, list[int]] | None, rtol: float | None,
    atol: float | None, seed: int,
) -> tuple[PassRecord, ir.Model, Verification]:
    """Run the pass once, assert it ran, kept the numbers, passes the checker and is idempotent."""
    run = PassManager([name], ctx, options=settings).run(original.clone())
    record = run.records[0]
    assert record.status != FAILED, f"{name} failed{where}: {record.reason}"
    assert record.status != SKIPPED, f"{name} was skipped{where}: {record.reason}"
    result = run.model
    if final_opset is not None and final_opset != model_opset(result):
        result = convert_opset(result, final_opset, Path.cwd())
    try:
        onnx.checker.check_model(ir.serde.serialize_model(result), full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise AssertionError(f"{name} left a model the onnx checker refuses{where}: {exc}") from None
    feeds = choose_feeds(original, verify_shapes=verify_shapes, seed=seed)
    checked = Verifier(original, feeds, rtol=rtol, atol=atol).check(result)
    assert checked.ok, f"{name} changed the outputs{where}: {'; '.join(checked.failures())}"
    again = PassManager([name], ctx, options=settings).run(run.model.clone()).records[0]
    assert again.changes == 0, f"{name} is not idempotent{where}: a second run changed {again.changed_nodes}"
    return record, result, checked


@contextlib.contextmanager
def _registered(pass_: str | type[Pass]) -> Iterator[str]:
    """The pass's name, with a pass class registered for the block unless it already is."""
    if isinstance(pass_, str):
        yield pass_
    elif all_passes().get(pass_.name) is pass_:
        yield pass_.name
    else:
        with registered(pass_):
            yield pass_.name


def _as_ir(model: ir.Model | onnx.ModelProto | str | Path) -> ir.Model:
    if isinstance(model, ir.Model):
        return model.clone()
    if isinstance(model, onnx.ModelProto):
        return ir.serde.deserialize_model(model)
    return load_model(Path(model))
