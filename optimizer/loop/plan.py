"""Plans: the passes chosen from a recorded profile, written down so ``optimize --plan`` replays them.

A plan file (JSON, format ``onnx-opt-plan/1``)::

    {"format": "onnx-opt-plan/1",
     "model": {"path": "rdn.onnx", "sha256": "<hex digest of the model file>"},
     "target": "ascend910b", "target_chosen": "given with --target",
     "opset": 11,                        # null: the model keeps its opset
     "passes": ["fuse-depth-to-space"],  # [] runs no pass
     "options": {"input_shapes": {"image": [1, 3, 114, 114]}, "fixed_point": false,
                 "pass_options": {"simplify": {"onnxsim": "false"}}},   # --set, as given
     "whitelist_shapes": [[1, 64, 2, 2, 114, 114]],
     "candidates": [Candidate.to_dict(), ...], "rejected": [{"pass": ..., "reason": ...}],
     "profile": "<the profile's source>", "created_by": "onnx-opt 0.1.0"}

Replaying takes passes, opset, target and options from the plan and nothing else, and only on the
model whose file has the plan's sha256 (the ``.onnx`` file itself; external data is not hashed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optimizer import __version__
from optimizer.errors import UserError

FORMAT = "onnx-opt-plan/1"


@dataclass
class Plan:
    """A plan: what ``optimize --plan`` runs, and the choice behind it (candidates, rejected passes)."""

    model_path: str
    model_sha256: str
    target: str
    opset: int | None
    passes: list[str]
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    fixed_point: bool = False
    pass_options: dict[str, dict[str, str]] = field(default_factory=dict)  # --set: pass -> option -> value
    whitelist_shapes: list[list[int]] = field(default_factory=list)
    candidates: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    profile: str = ""
    target_chosen: str = ""
    created_by: str = f"onnx-opt {__version__}"

    def to_dict(self) -> dict[str, Any]:
        """The plan file's JSON object."""
        return {
            "format": FORMAT,
            "model": {"path": self.model_path, "sha256": self.model_sha256},
            "target": self.target,
            "target_chosen": self.target_chosen,
            "opset": self.opset,
            "passes": list(self.passes),
            "options": {
                "input_shapes": dict(self.input_shapes),
                "fixed_point": self.fixed_point,
                "pass_options": {name: dict(values) for name, values in self.pass_options.items()},
            },
            "whitelist_shapes": [list(s) for s in self.whitelist_shapes],
            "candidates": list(self.candidates),
            "rejected": list(self.rejected),
            "profile": self.profile,
            "created_by": self.created_by,
        }


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return digest.hexdigest()


def make_plan(
    profile,
    model_path: Path,
    target: str | None = None,
    *,
    input_shapes: dict[str, list[int]] | None = None,
    top: int = 10,
    pass_options: dict[str, dict[str, str]] | None = None,
) -> Plan:
    """Choose the passes for ``model_path`` from ``profile`` (nothing runs but dry runs) as a Plan.

    The passes are the candidates in pipeline order (the target's pipeline first); the opset is
    the highest a candidate needs. ``pass_options`` (``--set``) apply to the dry runs, and the
    plan keeps those of its passes.
    """
    from optimizer.loop.candidates import choose_candidates
    from optimizer.manager import order_pipeline
    from optimizer.targets import load_target

    shapes = dict(input_shapes or {})
    settings = dict(pass_options or {})
    candidates, rejected, choice = choose_candidates(
        profile, model_path, target, input_shapes=shapes, top=top, pass_options=settings
    )
    chosen = {c.pass_name for c in candidates}
    pipeline = load_target(choice.name).pipeline
    names = [name for name in pipeline if name in chosen] + sorted(chosen - set(pipeline))
    opsets = [c.opset for c in candidates if c.opset is not None]
    shapes_found: list[list[int]] = []
    for c in candidates:
        shapes_found += [s for s in c.whitelist_shapes if s not in shapes_found]
    return Plan(
        model_path=str(model_path),
        model_sha256=file_sha256(Path(model_path)),
        target=choice.name,
        target_chosen=choice.how,
        opset=max(opsets) if opsets else None,
        passes=order_pipeline(names),
        input_shapes=shapes,
        pass_options={name: values for name, values in settings.items() if name in chosen},
        whitelist_shapes=shapes_found,
        candidates=[c.to_dict() for c in candidates],
        rejected=rejected,
        profile=str(profile.source),
    )


def write_plan(plan: Plan, path: Path) -> Path:
    """Write ``plan`` as JSON, atomically."""
    from profiles.atomic import write_text_atomic

    if not path.parent.is_dir():
        raise UserError(f"{path}: folder {path.parent} does not exist")
    return write_text_atomic(path, json.dumps(plan.to_dict(), indent=2) + "\n")


def read_plan(path: Path) -> Plan:
    """Read and check a plan file; any fault is a :class:`UserError` naming its JSON path (``$.passes[1]``)."""
    from optimizer.opset import supported_opsets
    from optimizer.registry import all_passes, opt_in_reason
    from optimizer.targets import load_target

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read the plan: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None

    def fault(where: str, problem: str) -> UserError:
        return UserError(f"{path}: {where}: {problem}")

    def get(obj: dict, key: str, where: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
        if key not in obj:
            if optional:
                return None
            raise fault(f"{where}.{key}", "missing")
        value = obj[key]
        if value is None and optional:
            return None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise fault(f"{where}.{key}", f"expected {_json_kind(names)}, got {json.dumps(value)}")
        return value

    if not isinstance(data, dict):
        raise fault("$", "expected an object")
    if data.get("format") != FORMAT:
        raise fault("$.format", f"expected {FORMAT!r}, got {json.dumps(data.get('format'))} (not an onnx-opt plan?)")
    model = get(data, "model", "$", dict)
    model_path = get(model, "path", "$.model", str)
    sha256 = get(model, "sha256", "$.model", str)
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise fault("$.model.sha256", f"expected 64 lower-case hex digits, got {sha256!r}")
    target = get(data, "target", "$", str)
    try:
        load_target(target)
    except UserError as exc:
        raise fault("$.target", str(exc)) from None
    opset = get(data, "opset", "$", int, optional=True)
    low, high = supported_opsets()
    if opset is not None and not low <= opset <= high:
        raise fault("$.opset", f"{opset} is outside the opsets onnx-opt converts to ({low}-{high})")
    passes = get(data, "passes", "$", list)
    known = all_passes()
    for i, name in enumerate(passes):
        if not isinstance(name, str):
            raise fault(f"$.passes[{i}]", f"expected a pass name, got {json.dumps(name)}")
        if name not in known:
            raise fault(f"$.passes[{i}]", f"unknown pass {name!r}; registered: {', '.join(sorted(known))}")
        if opt_in_reason(known[name]):
            raise fault(f"$.passes[{i}]", f"{opt_in_reason(known[name])}; a plan never holds it")
    options = get(data, "options", "$", dict)
    input_shapes = get(options, "input_shapes", "$.options", dict, optional=True) or {}
    for name, dims in input_shapes.items():
        _check_dims(dims, f"$.options.input_shapes.{name}", fault, smallest=0)
    fixed_point = get(options, "fixed_point", "$.options", bool, optional=True) or False
    pass_options = get(options, "pass_options", "$.options", dict, optional=True) or {}
    for name, values in pass_options.items():
        where = f"$.options.pass_options.{name}"
        if name not in passes:
            raise fault(where, f"pass {name!r} is not in the plan's passes")
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise fault(where, f"expected an object of option values as strings, got {json.dumps(values)}")
    whitelist = get(data, "whitelist_shapes", "$", list, optional=True) or []
    for i, dims in enumerate(whitelist):
        _check_dims(dims, f"$.whitelist_shapes[{i}]", fault, smallest=1)
    candidates = get(data, "candidates", "$", list, optional=True) or []
    rejected = get(data, "rejected", "$", list, optional=True) or []
    for key, items in (("candidates", candidates), ("rejected", rejected)):
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise fault(f"$.{key}[{i}]", f"expected an object, got {json.dumps(item)}")
    return Plan(
        model_path=model_path,
        model_sha256=sha256,
        target=target,
        opset=opset,
        passes=list(passes),
        input_shapes={name: list(dims) for name, dims in input_shapes.items()},
        fixed_point=fixed_point,
        pass_options={name: dict(values) for name, values in pass_options.items()},
        whitelist_shapes=[list(dims) for dims in whitelist],
        candidates=candidates,
        rejected=rejected,
        profile=str(data.get("profile", "")),
        target_chosen=str(data.get("target_chosen", "")),
        created_by=str(data.get("created_by", "")),
    )


def options_from_plan(plan: Plan | Path | str, model_path: Path, base):
    """``base`` (an OptimizeOptions) with the plan's passes, opset, target, options and pass options.

    ``plan`` is a Plan or the path of a plan file. The model must be the planned one (same
    sha256), and ``base`` must not choose passes, an opset or pass options itself: UserErrors.
    """
    if not isinstance(plan, Plan):
        plan = read_plan(Path(plan))
    digest = file_sha256(Path(model_path))
    if digest != plan.model_sha256:
        raise UserError(
            f"the plan is for {plan.model_path} (sha256 {plan.model_sha256}), but {model_path} has sha256 "
            f"{digest}; make a plan for this model with 'onnx-opt plan PROFILE --model {model_path}'"
        )
    if base.passes is not None or base.opset is not None or base.pass_options:
        raise UserError(
            "a plan sets the passes, the opset and the pass options: give --plan without --passes and --opset, "
            "and without --set"
        )
    if base.input_shapes and base.input_shapes != plan.input_shapes:
        raise UserError(
            f"the plan was made with input shapes {plan.input_shapes or 'of the model'}; "
            "drop --input-shape or make a new plan with it"
        )
    return dataclasses.replace(
        base,
        passes=list(plan.passes),
        opset=plan.opset,
        target=plan.target,
        input_shapes={name: list(dims) for name, dims in plan.input_shapes.items()},
        fixed_point=plan.fixed_point,
        pass_options={name: dict(values) for name, values in plan.pass_options.items()},
    )


def _check_dims(dims: object, where: str, fault, *, smallest: int) -> None:
    """A list of integers >= ``smallest`` (a white-list shape also needs at least one)."""
    if not isinstance(dims, list) or (smallest and not dims):
        raise fault(where, f"expected an array of dims, got {json.dumps(dims)}")
    for i, d in enumerate(dims):
        if isinstance(d, bool) or not isinstance(d, int) or d < smallest:
            raise fault(f"{where}[{i}]", f"expected an integer >= {smallest}, got {json.dumps(d)}")


def _json_kind(names: str) -> str:
    """Python type names -> JSON ones, for messages."""
    for python, jsonish in (
        ("dict", "an object"),
        ("list", "an array"),
        ("str", "a string"),
        ("int", "an integer"),
        ("bool", "true or false"),
    ):
        names = names.replace(python, jsonish)
    return names
