"""Reader for ais_bench / ais_infer results: `*_summary.json`, the old `sumary.json`, console logs.

They hold latency only (NPU_compute_time in ms, throughput in items/s), no per-op rows.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ProfileError
from ..model import Latency, Profile
from . import values

SECTIONS = ("NPU_compute_time", "H2D_latency", "D2H_latency")
NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
SUMMARY_LINE = re.compile(rf"\b({'|'.join(SECTIONS)}) \(ms\):(.*)")
PAIR = re.compile(rf"([\w()%]+) = ({NUM})")
THROUGHPUT = re.compile(rf"\bthroughput\b.*:\s*({NUM})\s*$")
BATCH = re.compile(rf"batchsize(?:\.mean)?\(({NUM})\)")


def matches_json(data: object) -> bool:
    """True for an ais_bench / ais_infer summary JSON."""
    return isinstance(data, dict) and isinstance(data.get("NPU_compute_time"), dict)


def matches_log(text: str) -> bool:
    """True for console output holding the NPU_compute_time summary line."""
    return "NPU_compute_time (ms):" in text


def read_json(path: Path, data: dict) -> Profile:
    """Latency from a summary JSON; npu_compute_time_list gives the samples when present."""
    try:
        samples = [float(x) for x in data.get("npu_compute_time_list") or []]
        throughput = _float(data.get("throughput"))
        summaries = {k: _summary(data[k]) for k in SECTIONS if isinstance(data.get(k), dict)}
    except (TypeError, ValueError):
        raise ProfileError(f"{path}: ais_bench summary JSON with non-numeric times") from None
    _check(path, {f"npu_compute_time_list[{i}]": x for i, x in enumerate(samples)})
    _check(path, {f"{k}.{name}": x for k, s in summaries.items() for name, x in s.items()})
    if samples:
        latency = Latency.from_samples(samples, throughput)
    else:
        latency = _latency(summaries["NPU_compute_time"], throughput)
    meta = {"summaries": summaries}
    if isinstance(data.get("args"), dict):
        meta["args"] = data["args"]
    return Profile(source=str(path), kind="ais_bench", latency=latency, meta=meta)


def read_log(path: Path, text: str) -> Profile:
    """Latency from the `Performance Summary` lines of ais_bench / ais_infer console output."""
    summaries, throughput, batch = {}, None, None
    for line in text.splitlines():
        if m := SUMMARY_LINE.search(line):
            summaries[m.group(1)] = {k: float(v) for k, v in PAIR.findall(m.group(2))}
        elif m := THROUGHPUT.search(line):
            throughput = float(m.group(1))
            b = BATCH.search(line)
            batch = float(b.group(1)) if b else None
    _check(path, {f"{k} {name}": x for k, s in summaries.items() for name, x in s.items()})
    meta = {"summaries": summaries, "batch_size": batch}
    latency = _latency(summaries["NPU_compute_time"], throughput)
    return Profile(source=str(path), kind="ais_bench", latency=latency, meta=meta)


def _check(path: Path, times: dict[str, float]) -> None:
    """ProfileError naming the first time that is NaN, infinite or negative."""
    for field, x in times.items():
        try:
            values.check_duration(x)
        except values.BadDurationError as e:
            raise ProfileError(f"{path}: {field}: {e}") from None


def _summary(d: dict) -> dict[str, float]:
    return {str(k): float(v) for k, v in d.items()}


def _float(x: object) -> float | None:
    return None if x is None else float(x)


def _latency(s: dict[str, float], throughput: float | None) -> Latency:
    return Latency(
        min_ms=s.get("min"),
        max_ms=s.get("max"),
        mean_ms=s.get("mean"),
        median_ms=s.get("median"),
        p99_ms=s.get("percentile(99%)"),
        throughput=throughput,
    )
