"""Comparing two profiles per op type or per node, and their end-to-end latency."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from .errors import ProfileError
from .model import Profile

UNKNOWN_TYPE = "N/A"


@dataclass
class Row:
    """Time of one key (op type or node name) before and after; ratio = after / before."""

    key: str
    before_us: float
    after_us: float
    delta_us: float
    ratio: float | None
    share_before: float
    share_after: float


@dataclass
class LatencyChange:
    """Change of the median (else mean) latency; noise = sqrt(spread_before^2 + spread_after^2).

    `significant` says whether |delta| exceeds the noise; None when a side has no spread.
    """

    statistic: str
    before_ms: float
    after_ms: float
    delta_ms: float
    noise_ms: float | None
    significant: bool | None


@dataclass
class Comparison:
    """Rows sorted by the larger of before/after time, descending, with totals and warnings."""

    by: str
    before_source: str
    after_source: str
    rows: list[Row]
    appeared: list[str]
    disappeared: list[str]
    total_before_us: float
    total_after_us: float
    latency: LatencyChange | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def total_delta_us(self) -> float:
        """Change of the total time (us)."""
        return self.total_after_us - self.total_before_us

    def to_dict(self) -> dict:
        """A JSON-ready dict (plain str / float / int / bool / None)."""
        d = asdict(self)
        d["total_delta_us"] = self.total_delta_us
        return d


def compare_profiles(before: Profile, after: Profile, by: str = "op-type", top: int | None = None) -> Comparison:
    """Compare two profiles `by` "op-type" or "node"; `top` keeps the N largest rows.

    Keys are compared literally: TransposeD and Transpose are different op types.
    """
    if by not in ("op-type", "node"):
        raise ValueError(f"by must be 'op-type' or 'node', not {by!r}")
    times_b, times_a = _times(before, by), _times(after, by)
    total_b, total_a = sum(times_b.values()), sum(times_a.values())
    rows = []
    for key in times_b.keys() | times_a.keys():
        b, a = times_b.get(key, 0.0), times_a.get(key, 0.0)
        rows.append(Row(
            key=key,
            before_us=b,
            after_us=a,
            delta_us=a - b,
            ratio=a / b if b else None,
            share_before=b / total_b if total_b else 0.0,
            share_after=a / total_a if total_a else 0.0,
        ))
    rows.sort(key=lambda r: (-max(r.before_us, r.after_us), r.key))
    return Comparison(
        by=by,
        before_source=before.source,
        after_source=after.source,
        rows=rows[:top] if top is not None else rows,
        appeared=sorted(times_a.keys() - times_b.keys()),
        disappeared=sorted(times_b.keys() - times_a.keys()),
        total_before_us=total_b,
        total_after_us=total_a,
        latency=_latency_change(before, after),
        warnings=_warnings(before, after),
    )


def _times(profile: Profile, by: str) -> dict[str, float]:
    if by == "op-type":
        return {k or UNKNOWN_TYPE: float(s.total_us) for k, s in profile.stats_by_type().items()}
    if not profile.ops and profile.stats:
        raise ProfileError(f"{profile.source}: no per-op rows (only op_statistic); compare by op-type")
    return {k: float(v) for k, v in profile.time_by_node().items()}


def _latency_change(before: Profile, after: Profile) -> LatencyChange | None:
    lb, la = before.latency, after.latency
    if lb is None or la is None:
        return None
    for statistic in ("median_ms", "mean_ms"):
        b, a = getattr(lb, statistic), getattr(la, statistic)
        if b is not None and a is not None:
            break
    else:
        return None
    noise = None
    if lb.spread_ms is not None and la.spread_ms is not None:
        noise = math.hypot(lb.spread_ms, la.spread_ms)
    return LatencyChange(
        statistic=statistic.removesuffix("_ms"),
        before_ms=float(b),
        after_ms=float(a),
        delta_ms=float(a - b),
        noise_ms=noise,
        significant=None if noise is None else abs(a - b) > noise,
    )


def _warnings(before: Profile, after: Profile) -> list[str]:
    warnings = []
    if before.model_name and after.model_name and before.model_name != after.model_name:
        warnings.append(f"different models: before is {before.model_name!r}, after is {after.model_name!r}")
    types_b, types_a = before.stats_by_type().keys(), after.stats_by_type().keys()
    if types_b and types_a and not types_b & types_a:
        warnings.append("before and after share no op type: they look like profiles of different models")
    return warnings
