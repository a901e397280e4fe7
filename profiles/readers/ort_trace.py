"""Reader for onnxruntime profiling JSON (the chrome trace of `SessionOptions.enable_profiling`).

Each `Node` event named `<node>_kernel_time` is one OpRecord (dur and ts in us, args.op_name,
args.provider as core type, shapes and dtypes from args.input_type_shape / output_type_shape);
each `Session` event `model_run` is one latency sample.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ProfileError
from ..model import Latency, OpRecord, Profile
from . import values

SUFFIX = "_kernel_time"


def events(data: object) -> list | None:
    """The trace's event list (a bare list or {"traceEvents": [...]}) or None."""
    evs = data.get("traceEvents") if isinstance(data, dict) else data
    if not (isinstance(evs, list) and evs and all(isinstance(e, dict) for e in evs)):
        return None
    return evs if any(e.get("cat") in ("Node", "Session") and "dur" in e for e in evs) else None


def matches(data: object) -> bool:
    """True for an onnxruntime profile."""
    return events(data) is not None


def read(path: Path, data: object) -> Profile:
    """Per-node kernel runs and model_run latency samples.

    A `dur` that is not a finite number >= 0 raises ProfileError naming the file, the event
    (its index in the trace) and the field.
    """
    ops, runs = [], []
    try:
        for i, e in enumerate(events(data)):
            if e.get("cat") == "Node" and str(e.get("name", "")).endswith(SUFFIX):
                ops.append(_record(e, _dur(path, i, e)))
            elif e.get("cat") == "Session" and e.get("name") == "model_run":
                runs.append(_dur(path, i, e) / 1000.0)
    except ProfileError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError):
        raise ProfileError(f"{path}: onnxruntime profile with a malformed event") from None
    if not ops and not runs:
        raise ProfileError(f"{path}: onnxruntime profile without node or model_run events")
    latency = Latency.from_samples(runs) if runs else None
    return Profile(source=str(path), kind="onnxruntime", ops=ops, latency=latency,
                   meta={"runs": len(runs)})


def _dur(path: Path, index: int, e: dict) -> float:
    """The event's duration (us); ProfileError with the file, event and field when it is not one."""
    raw = e["dur"]
    try:
        return values.check_duration(values.duration(raw) if isinstance(raw, str) else raw)
    except values.BadDurationError as bad:
        raise ProfileError(f"{path}: event {index} ({e.get('name')!r}), field 'dur': {bad}") from None


def _record(e: dict, duration_us: float) -> OpRecord:
    args = e.get("args") or {}
    inputs, outputs = _tensors(args.get("input_type_shape")), _tensors(args.get("output_type_shape"))
    return OpRecord(
        name=e["name"][: -len(SUFFIX)],
        op_type=args.get("op_name"),
        duration_us=duration_us,
        core_type=args.get("provider"),
        start_us=float(e["ts"]) if "ts" in e else None,
        input_shapes=[s for _, s in inputs] if inputs is not None else None,
        output_shapes=[s for _, s in outputs] if outputs is not None else None,
        input_dtypes=[t for t, _ in inputs or []],
        output_dtypes=[t for t, _ in outputs or []],
    )


def _tensors(entries: list | None) -> list[tuple[str, list[int]]] | None:
    """[{"float": [2, 3]}] -> [("FLOAT", [2, 3])]."""
    if entries is None:
        return None
    return [(dtype.upper(), [int(d) for d in dims]) for entry in entries for dtype, dims in entry.items()]
