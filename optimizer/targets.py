"""Named target descriptions, shipped as JSON data in ``optimizer/data/targets``."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from importlib import resources

from optimizer.errors import UserError

DEFAULT_TARGET = "onnxruntime"


@dataclass(frozen=True)
class Target:
    """What a pass needs to know about where the model will run, and its default pipeline."""

    name: str
    description: str
    backend: str
    soc_version: str | None
    cann: str | None
    opsets: tuple[int, int]
    unsupported_ops: frozenset[str]
    capabilities: frozenset[str]
    pipeline: tuple[str, ...]

    def supports_op(self, op_type: str) -> bool:
        """Whether the target's converter accepts ``op_type``."""
        return op_type not in self.unsupported_ops

    def accepts_opset(self, opset: int) -> bool:
        """Whether the target's converter accepts models of this ONNX opset."""
        return self.opsets[0] <= opset <= self.opsets[1]


def target_names() -> list[str]:
    """Names of every shipped target, sorted."""
    folder = resources.files("optimizer") / "data" / "targets"
    return sorted(entry.name[: -len(".json")] for entry in folder.iterdir() if entry.name.endswith(".json"))


def load_target(name: str) -> Target:
    """Load the target called ``name``; an unknown name is a :class:`UserError` naming close matches."""
    names = target_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known targets: {', '.join(names)}"
        raise UserError(f"unknown target '{name}'{hint}")
    data = json.loads((resources.files("optimizer") / "data" / "targets" / f"{name}.json").read_text())
    return Target(
        name=data["name"],
        description=data["description"],
        backend=data["backend"],
        soc_version=data["soc_version"],
        cann=data["cann"],
        opsets=(data["opsets"][0], data["opsets"][1]),
        unsupported_ops=frozenset(data["unsupported_ops"]),
        capabilities=frozenset(data["capabilities"]),
        pipeline=tuple(data["pipeline"]),
    )
