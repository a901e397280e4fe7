"""Join hotspots with passes: for each hot op type, the passes whose ``addresses`` name it and,
given the model, which of them would change a node of that op type (a dry run of each; a pass
that changes only other nodes does not count, see :mod:`optimizer.loop.candidates`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
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


@dataclass
class HotspotReport:
    """What ``onnx-opt hotspots`` shows: the hot op types with their passes, the hottest nodes, and the
    target of the dry run (None without a model)."""

    source: str
    target: object | None  # optimizer.loop.candidates.TargetChoice
    total_us: float
    suggestions: list[Suggestion]
    nodes: list  # profiles.hotspots.HotNode

    def to_dict(self) -> dict:
        """JSON-ready form (``hotspots --json``)."""
        return {
            "source": self.source,
            "target": None if self.target is None else {"name": self.target.name, "chosen": self.target.how},
            "total_us": self.total_us,
            "op_types": [asdict(s) for s in self.suggestions],
            "nodes": [asdict(n) for n in self.nodes],
        }


def hotspot_report(
    profile_path: Path,
    *,
    model_path: Path | None = None,
    target: str | None = None,
    top: int = 10,
    input_shapes: dict[str, list[int]] | None = None,
) -> HotspotReport:
    """Read a profile and say where its time goes and which passes aim at it; given the model, which
    of them would change it, dry-run for ``target`` (default: inferred from the profile)."""
    from optimizer.loop.candidates import choose_target
    from profiles.hotspots import hotspots
    from profiles.read import read_profile

    profile = read_profile(profile_path)
    hot = hotspots(profile, top)
    choice = choose_target(profile, target) if model_path is not None else None
    suggestions = suggest_passes(profile, model_path=model_path, target=choice.name if choice else "onnxruntime",
                                 top=top, input_shapes=input_shapes)
    return HotspotReport(profile.source, choice, hot.total_us, suggestions, hot.nodes)


def suggest_passes(
    profile,
    *,
    model_path: Path | None = None,
    target: str = "onnxruntime",
    top: int = 10,
    input_shapes: dict[str, list[int]] | None = None,
) -> list[Suggestion]:
    """Suggestions for the ``top`` op types of ``profile`` (a profiles.model.Profile)."""
    from optimizer.registry import default_passes
    from profiles.hotspots import hotspots

    passes = default_passes()
    touched = _dry_run(model_path, target, input_shapes or {}) if model_path is not None else None
    suggestions = []
    for hot in hotspots(profile, top).op_types:
        aimed = (
            sorted(name for name, cls in passes.items() if hot.onnx_op_type in cls.addresses)
            if (hot.onnx_op_type)
            else []
        )
        suggestion = Suggestion(
            op_type=hot.op_type,
            onnx_op_type=hot.onnx_op_type,
            category=hot.category,
            share=hot.share,
            total_us=hot.total_us,
            passes=aimed,
        )
        if touched is not None:
            suggestion.matching = [name for name in aimed if hot.onnx_op_type in touched[name][1]]
            for name in aimed:
                if name not in suggestion.matching and (why := _refusal(touched[name], hot.onnx_op_type)):
                    suggestion.refusals[name] = why
        suggestions.append(suggestion)
    return suggestions


def _refusal(touched: tuple, onnx_op_type: str) -> str | None:
    """Why a pass leaves the op type alone: its refusal, or that it changes only other op types."""
    record, op_types = touched
    if record.reason or record.skips:
        return record.reason or record.skips[0]["reason"]
    if op_types:
        return f"changes no {onnx_op_type} node (only {', '.join(sorted(op_types))})"
    return None


def _dry_run(model_path: Path, target: str, input_shapes: dict[str, list[int]]) -> dict[str, tuple]:
    """Every registered pass run alone on the model: (its record, the op types of the nodes it touches)."""
    from optimizer.loop.candidates import dry_run, touched_nodes
    from optimizer.modelio import load_model
    from optimizer.passapi import iter_nodes
    from optimizer.shapes import fix_input_shapes

    model = load_model(model_path)
    fix_input_shapes(model, input_shapes)
    op_type_of = {node.name: node.op_type for node in iter_nodes(model) if node.name}
    return {
        name: (record, {op_type_of[node] for node in touched_nodes(record) if node in op_type_of})
        for name, record in dry_run(model, target).items()
    }
