"""Reader for the old `benchmark` tool: perf_vision txt files and pure-inference results.

Vision files (`[e2e] throughputRate: 1.32351, latency: 3777.82` ... `[infer]` or `[inference]`):
the latency is the inference module's `moduleLatency` (ms) and the throughput its
`Interface throughputRate`, the figure ModelZoo guides report; every section is kept in meta.
Pure inference (`ave_throughputRate: 38.4344samples/s, ave_latency: 26.1589ms`, or with ` = `
in the txt file) gives a mean latency and a throughput.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import ProfileError
from ..model import Latency, Profile
from . import values

NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*(\w.*)$")
PAIR = re.compile(rf"(\w[\w ]*?)\s*:\s*({NUM})")
PURE = re.compile(rf"ave_throughputRate\s*[:=]\s*({NUM})\s*samples/s\s*,\s*ave_latency\s*[:=]\s*({NUM})\s*ms")
INFER = ("infer", "inference")


def matches(text: str) -> bool:
    """True for a perf_vision file or pure-inference output."""
    return PURE.search(text) is not None or bool(_sections(text).keys() & {"e2e", *INFER})


def read(path: Path, text: str) -> Profile:
    """Latency and throughput from benchmark output."""
    if m := PURE.search(text):
        latency = Latency(mean_ms=_time(path, "ave_latency", float(m.group(2))), throughput=float(m.group(1)))
        return Profile(source=str(path), kind="benchmark", latency=latency, meta={"mode": "pure_infer"})
    sections = _sections(text)
    infer = next((sections[k] for k in INFER if k in sections), {})
    module = infer.get("moduleLatency")
    latency = Latency(
        mean_ms=None if module is None else _time(path, "moduleLatency", module),
        throughput=infer.get("Interface throughputRate", infer.get("throughputRate")),
    )
    return Profile(source=str(path), kind="benchmark", latency=latency,
                   meta={"mode": "vision", "sections": sections})


def _time(path: Path, field: str, x: float) -> float:
    try:
        return values.check_duration(x)
    except values.BadDurationError as e:
        raise ProfileError(f"{path}: {field}: {e}") from None


def _sections(text: str) -> dict[str, dict[str, float]]:
    found = {}
    for line in text.splitlines():
        if (m := SECTION.match(line)) and (pairs := PAIR.findall(m.group(2))):
            found[m.group(1)] = {k.strip(): float(v) for k, v in pairs}
    return found
