"""Comparing two profiles per op type or per node, and their end-to-end latency."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .errors import ProfileError
from .model import Profile
from .statistics import MIN_GAIN, RatioEstimate, describe, estimate

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


NO_SAMPLES = "no samples: no verdict"


@dataclass
class LatencyChange:
    """Change of the median (else mean) latency, after against before.

    With latency samples on both sides: ``ratio`` = median after / median before, its seeded
    bootstrap 95 % interval ``ci``, and ``verdict`` ``faster`` / ``slower`` / ``same`` against
    ``min_gain`` (:mod:`profiles.statistics`); ``decided`` is False when the interval crosses an
    edge of the band (more samples would tell). Without samples on a side there is no verdict
    (None) and ``reason`` says so; ``ratio`` is then the plain ratio of the two summaries.
    """

    statistic: str
    before_ms: float
    after_ms: float
    delta_ms: float
    ratio: float | None
    ci: list[float] | None
    verdict: str | None
    decided: bool | None
    reason: str
    min_gain: float
    before_samples_ms: list[float] = field(default_factory=list)
    after_samples_ms: list[float] = field(default_factory=list)
    estimate: RatioEstimate | None = None


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


def compare_profiles(
    before: Profile, after: Profile, by: str = "op-type", top: int | None = None, *,
    min_gain: float = MIN_GAIN, seed: int = 0,
) -> Comparison:
    """Compare two profiles `by` "op-type" or "node"; `top` keeps the N largest rows.

    Keys are compared literally: TransposeD and Transpose are different op types. The latency
    verdict needs a change beyond `min_gain` (0.02 = 2 %) with 95 % confidence (`seed` seeds the
    bootstrap).
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
        latency=_latency_change(before, after, min_gain, seed),
        warnings=_warnings(before, after),
    )


def _times(profile: Profile, by: str) -> dict[str, float]:
    if by == "op-type":
        return {k or UNKNOWN_TYPE: float(s.total_us) for k, s in profile.stats_by_type().items()}
    if not profile.ops and profile.stats:
        raise ProfileError(f"{profile.source}: no per-op rows (only op_statistic); compare by op-type")
    return {k: float(v) for k, v in profile.time_by_node().items()}


def _latency_change(before: Profile, after: Profile, min_gain: float, seed: int) -> LatencyChange | None:
    lb, la = before.latency, after.latency
    if lb is None or la is None:
        return None
    if lb.samples_ms and la.samples_ms:
        e = estimate(lb.samples_ms, la.samples_ms, min_gain=min_gain, seed=seed)
        return LatencyChange(
            statistic="median", before_ms=e.a_median, after_ms=e.b_median, delta_ms=e.b_median - e.a_median,
            ratio=e.ratio, ci=[e.lo, e.hi], verdict=e.verdict, decided=e.decided,
            reason=describe(e, "before", "after"), min_gain=min_gain,
            before_samples_ms=list(lb.samples_ms), after_samples_ms=list(la.samples_ms), estimate=e,
        )
    for statistic in ("median_ms", "mean_ms"):
        b, a = getattr(lb, statistic), getattr(la, statistic)
        if b is not None and a is not None:
            break
    else:
        return None
    missing = [side for side, lat in (("before", lb), ("after", la)) if not lat.samples_ms]
    only = "has only a summary" if len(missing) == 1 else "have only summaries"
    return LatencyChange(
        statistic=statistic.removesuffix("_ms"), before_ms=float(b), after_ms=float(a), delta_ms=float(a - b),
        ratio=float(a) / float(b) if b else None, ci=None, verdict=None, decided=None,
        reason=f"{NO_SAMPLES} ({' and '.join(missing)} {only})", min_gain=min_gain,
    )


def _warnings(before: Profile, after: Profile) -> list[str]:
    warnings = []
    if before.model_name and after.model_name and before.model_name != after.model_name:
        warnings.append(f"different models: before is {before.model_name!r}, after is {after.model_name!r}")
    types_b, types_a = before.stats_by_type().keys(), after.stats_by_type().keys()
    if types_b and types_a and not types_b & types_a:
        warnings.append("before and after share no op type: they look like profiles of different models")
    return warnings
