"""onnx-opt's own latency file (`latency_<timestamp>.json`), written beside msprof-style CSVs."""

from __future__ import annotations

import json
from pathlib import Path

from .atomic import write_text_atomic
from .errors import ProfileError
from .model import Latency
from .readers.values import BadDurationError, check_duration

FORMAT = "onnx-opt-latency"
SUMMARY = ("min_ms", "max_ms", "mean_ms", "median_ms", "p99_ms", "spread_ms")


def write_latency_json(latency: Latency, path: str | Path, model_name: str | None = None) -> Path:
    """Write `latency` (samples and summary, ms) as JSON; returns the path."""
    doc = {
        "format": FORMAT,
        "version": 1,
        "model_name": model_name,
        "samples_ms": [float(x) for x in latency.samples_ms],
        "summary": {k: getattr(latency, k) for k in SUMMARY},
        "throughput": latency.throughput,
    }
    return write_text_atomic(Path(path), json.dumps(doc, indent=1, sort_keys=True) + "\n")


def matches(data: object) -> bool:
    """True for a document written by `write_latency_json`."""
    return isinstance(data, dict) and data.get("format") == FORMAT


def latency_from_json(path: Path, data: dict) -> Latency:
    """The Latency of a parsed latency document (samples win over the stored summary).

    A sample or summary time that is not a finite number >= 0 raises ProfileError naming the field.
    """
    try:
        samples = [_time(path, f"samples_ms[{i}]", x) for i, x in enumerate(data.get("samples_ms") or [])]
        throughput = None if data.get("throughput") is None else float(data["throughput"])
        if samples:
            return Latency.from_samples(samples, throughput)
        summary = data.get("summary") or {}
        return Latency(**{k: None if summary.get(k) is None else _time(path, f"summary.{k}", summary[k])
                          for k in SUMMARY}, throughput=throughput)
    except ProfileError:
        raise
    except (TypeError, ValueError, AttributeError):
        raise ProfileError(f"{path}: latency JSON with non-numeric values") from None


def _time(path: Path, field: str, x: object) -> float:
    try:
        return check_duration(x)
    except BadDurationError as e:
        raise ProfileError(f"{path}: field {field}: {e}") from None


def load_latency_doc(path: Path) -> dict:
    """The parsed JSON of a latency file; ProfileError when it is not one."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ProfileError(f"{path}: not a readable latency JSON ({e})") from None
    if not matches(data):
        raise ProfileError(f"{path}: JSON is not an onnx-opt latency file (no \"format\": \"{FORMAT}\")")
    return data


def read_latency_json(path: str | Path) -> Latency:
    """Read a file written by `write_latency_json`."""
    path = Path(path)
    return latency_from_json(path, load_latency_doc(path))
