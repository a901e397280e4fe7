"""Where white-list shapes come from: a model (the transpose-whitelist pass) or an msprof profile."""

from __future__ import annotations

from pathlib import Path

from optimizer.errors import UserError

WHITELIST_PASS = "transpose-whitelist"


def shapes_from_model(path: Path, input_shapes: dict[str, list[int]]) -> list[list[int]]:
    """Input shapes of the Transposes ATC would lower to TransposeD, after folding shape subgraphs."""
    from optimizer.manager import PassManager
    from optimizer.modelio import load_model
    from optimizer.passapi import PassContext
    from optimizer.shapes import fix_input_shapes
    from optimizer.targets import load_target

    model = load_model(path)
    fix_input_shapes(model, input_shapes)
    ctx = PassContext(load_target("ascend310"))
    run = PassManager(["simplify", WHITELIST_PASS], ctx).run(model)
    record = next(r for r in run.records if r.name == WHITELIST_PASS)
    if record.reason:
        raise UserError(f"{path}: {WHITELIST_PASS} could not run: {record.reason}")
    if record.skips and not record.findings.get("transpose_shapes"):
        raise UserError(f"{path}: {record.skips[0]['node']}: {record.skips[0]['reason']}")
    return record.findings.get("transpose_shapes", [])


def shapes_from_profile(path: Path) -> list[list[int]]:
    """First-input shapes of the TransposeD rows of an msprof op_summary (or any profile with ops)."""
    from profiles.read import read_profile

    profile = read_profile(path)
    if not profile.ops:
        raise UserError(f"{path}: holds no per-op rows (an op_summary is needed, not only op_statistic)")
    shapes: list[list[int]] = []
    for op in profile.ops:
        if op.op_type == "TransposeD" and op.input_shapes and op.input_shapes[0] and op.input_shapes[0] not in shapes:
            shapes.append(list(op.input_shapes[0]))
    return shapes
