"""Join hotspots with passes: for each hot op type, the passes whose ``addresses`` name it and,
given the model, which of them would change it (a dry run of each)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Suggestion:
    """A hot op type, its share of the time, and the passes aimed at it."""

    op_type: str | None
    onnx_op_type: str | None
    category: str
    share: float
    total_us: float
    passes: list[str] = field(default_factory=list)
    matching: list[str] | None = None  # None without a model
    refusals: dict[str, str] = field(default_factory=dict)  # pass -> why it left a candidate


def suggest_passes(
    profile,
    *,
    model_path: Path | None = None,
    target: str = "onnxruntime",
    top: int = 10,
    input_shapes: dict[str, list[int]] | None = None,
) -> list[Suggestion]:
    """Suggestions for the ``top`` op types of ``profile`` (a profiles.model.Profile)."""
    from optimizer.registry import all_passes
    from profiles.hotspots import hotspots

    passes = all_passes()
    records = _dry_run(model_path, target, input_shapes or {}) if model_path is not None else None
    suggestions = []
    for hot in hotspots(profile, top).op_types:
        aimed = (
            sorted(name for name, cls in passes.items() if hot.onnx_op_type in cls.addresses)
            if (hot.onnx_op_type)
            else []
        )
        suggestions.append(
            Suggestion(
                op_type=hot.op_type,
                onnx_op_type=hot.onnx_op_type,
                category=hot.category,
                share=hot.share,
                total_us=hot.total_us,
                passes=aimed,
                matching=None if records is None else [name for name in aimed if _would_change(records[name])],
                refusals={}
                if records is None
                else {
                    name: records[name].reason or records[name].skips[0]["reason"]
                    for name in aimed
                    if not _would_change(records[name]) and (records[name].reason or records[name].skips)
                },
            )
        )
    return suggestions


def _would_change(record) -> bool:
    """Whether a pass changed the model (or, for an analysis, found something)."""
    return bool(record.changes or (record.findings and record.matches))


def _dry_run(model_path: Path, target: str, input_shapes: dict[str, list[int]]) -> dict:
    """The record of every registered pass run alone on the model."""
    from optimizer.manager import PassManager
    from optimizer.modelio import load_model
    from optimizer.passapi import PassContext
    from optimizer.registry import all_passes
    from optimizer.shapes import fix_input_shapes
    from optimizer.targets import load_target

    model = load_model(model_path)
    fix_input_shapes(model, input_shapes)
    ctx = PassContext(load_target(target))
    return {name: PassManager([name], ctx).run(model.clone()).records[0] for name in all_passes()}
