"""Comparing two profiles per op type or per node, and their end-to-end latency."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from .errors import ProfileError
from .hotspots import canonical_op_type
from .model import Profile
from .renames import NodeGroup, match_nodes
from .runs import per_inference
from .statistics import MIN_GAIN, RatioEstimate, describe, estimate

UNKNOWN_TYPE = "N/A"


@dataclass
class Row:
    """Time per inference of one key (op type or node name) before and after; ratio = after / before.

    `status` is "new" (only after), "gone" (only before), "matched" (a group of nodes a pass
    replaced, see profiles.renames: `before_keys` and `after_keys` name them, `matched_by` the
    pass) or "" (on both sides under the same key).
    """

    key: str
    before_us: float
    after_us: float
    delta_us: float
    ratio: float | None
    share_before: float
    share_after: float
    status: str = ""
    before_keys: list[str] = field(default_factory=list)
    after_keys: list[str] = field(default_factory=list)
    matched_by: str | None = None


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
    """Rows sorted by the larger of before/after time, descending, with totals and warnings.

    Times are per inference as `normalisation` says (profiles.runs): `runs_before` and
    `runs_after` are the run counts used, None where unknown.
    """

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
    normalisation: str = ""
    runs_before: int | None = None
    runs_after: int | None = None

    @property
    def total_delta_us(self) -> float:
        """Change of the total time (us)."""
        return self.total_after_us - self.total_before_us

    @property
    def total_ratio(self) -> float | None:
        """Total time after / before (None when before has none)."""
        return self.total_after_us / self.total_before_us if self.total_before_us else None

    def to_dict(self) -> dict:
        """A JSON-ready dict (plain str / float / int / bool / None)."""
        d = asdict(self)
        d["total_delta_us"] = self.total_delta_us
        d["total_ratio"] = self.total_ratio
        return d


class DifferentModelsError(ProfileError):
    """Two profiles that look like profiles of different models (or input shapes)."""


# Two profiles of one model share most op types: below this share of the smaller set they differ.
MIN_SHARED_OP_TYPES = 0.5
KINDS = {
    "latency": "an onnx-opt latency file", "ais_bench": "an ais_bench result", "benchmark": "a benchmark tool result",
    "op_summary": "an op_summary CSV", "op_statistic": "an op_statistic CSV", "msprof": "an msprof profile",
    "onnxruntime": "an onnxruntime profile",
}


def compare_profiles(
    before: Profile, after: Profile, by: str = "op-type", top: int | None = None, *,
    min_gain: float = MIN_GAIN, seed: int = 0, renames: list[tuple[str, list[str]]] | None = None,
    force: bool = False,
) -> Comparison:
    """Compare two profiles `by` "op-type" or "node"; `top` keeps the N largest rows.

    Times are divided by each side's number of runs (profiles.runs.per_inference), so a 50-run
    profile and a 200-run one of the same model compare alike. Keys are compared literally:
    TransposeD and Transpose are different op types. By node, `renames` (the passes' changed
    nodes, profiles.renames.read_pass_report) match the nodes a pass replaced to their originals.
    The latency verdict needs a change beyond `min_gain` (0.02 = 2 %) with 95 % confidence
    (`seed` seeds the bootstrap).

    When one side has per-op times and the other only latency (a latency file), only the latency
    is compared, with a warning saying what the file is; ProfileError when that side has no
    latency to compare either. DifferentModelsError when the two look like different models (few
    shared op types, or input shapes of most shared nodes differ), unless `force`, which makes
    those warnings.
    """
    if by not in ("op-type", "node"):
        raise ValueError(f"by must be 'op-type' or 'node', not {by!r}")
    latency_only = _latency_only(before, after)
    warnings = _warnings(before, after) + ([latency_only] if latency_only else [])
    problems = _model_problems(before, after)
    if problems and not force:
        raise DifferentModelsError(problems[0])
    warnings += problems
    norm = per_inference(before, after)
    times_b = {} if latency_only else {k: v / norm.before_divisor for k, v in _times(before, by).items()}
    times_a = {} if latency_only else {k: v / norm.after_divisor for k, v in _times(after, by).items()}
    total_b, total_a = sum(times_b.values()), sum(times_a.values())
    groups = match_nodes(set(times_b), set(times_a), renames or []) if by == "node" else []
    matched = {n for g in groups for n in (*g.before, *g.after)}
    rows = [_row(g.key, sum(times_b[n] for n in g.before), sum(times_a[n] for n in g.after), total_b, total_a,
                 "matched", g) for g in groups]
    for key in (times_b.keys() | times_a.keys()) - matched:
        status = "" if key in times_b and key in times_a else "gone" if key in times_b else "new"
        rows.append(_row(key, times_b.get(key, 0.0), times_a.get(key, 0.0), total_b, total_a, status))
    rows.sort(key=lambda r: (-max(r.before_us, r.after_us), r.key))
    return Comparison(
        by=by,
        before_source=before.source,
        after_source=after.source,
        rows=rows[:top] if top is not None else rows,
        appeared=sorted(times_a.keys() - times_b.keys() - matched),
        disappeared=sorted(times_b.keys() - times_a.keys() - matched),
        total_before_us=total_b,
        total_after_us=total_a,
        latency=_latency_change(before, after, min_gain, seed),
        warnings=warnings,
        normalisation="none: only the latency is compared" if latency_only else norm.how,
        runs_before=norm.before_runs,
        runs_after=norm.after_runs,
    )


def _row(key: str, b: float, a: float, total_b: float, total_a: float, status: str,
         group: NodeGroup | None = None) -> Row:
    return Row(
        key=key,
        before_us=b,
        after_us=a,
        delta_us=a - b,
        ratio=a / b if b else None,
        share_before=b / total_b if total_b else 0.0,
        share_after=a / total_a if total_a else 0.0,
        status=status,
        before_keys=list(group.before) if group else [],
        after_keys=list(group.after) if group else [],
        matched_by=group.pass_name if group else None,
    )


def _times(profile: Profile, by: str) -> dict[str, float]:
    if by == "op-type":
        return {k or UNKNOWN_TYPE: float(s.total_us) for k, s in profile.stats_by_type().items()}
    if not profile.ops and profile.stats:
        raise ProfileError(f"{profile.source}: no per-op rows (only op_statistic); compare by op-type")
    return {k: float(v) for k, v in profile.time_by_node().items()}


def _latency_only(before: Profile, after: Profile) -> str | None:
    """When one side has per-op times and the other only latency: the warning that only latency is
    compared, or ProfileError when the timed side has no latency either (all would read as gone)."""
    if bool(before.ops or before.stats) == bool(after.ops or after.stats):
        return None
    timed_before = bool(before.ops or before.stats)
    bare_side, bare = ("AFTER", after) if timed_before else ("BEFORE", before)
    timed_side, timed = ("BEFORE", before) if timed_before else ("AFTER", after)
    what = f"{bare_side} {bare.source} is {_kind(bare)} (end-to-end latency only, no per-op times)"
    if bare.latency is None or timed.latency is None:
        raise ProfileError(f"{what}, and {timed_side} {timed.source} is {_kind(timed)} without latency: give two "
                           "profiles, or two latency results")
    return f"{what}: only the latency is compared"


def _kind(profile: Profile) -> str:
    return KINDS.get(profile.kind, f"a {profile.kind} profile")


def _model_problems(before: Profile, after: Profile) -> list[str]:
    """Signs that the two profiles are of different models: op types, then input shapes."""
    problems = []
    types_b, types_a = _compute_types(before), _compute_types(after)
    if types_b and types_a:
        shared = types_b & types_a
        if len(shared) < MIN_SHARED_OP_TYPES * min(len(types_b), len(types_a)):
            problems.append(
                f"before and after share {len(shared)} of their {len(types_b)} and {len(types_a)} op types: "
                "they look like profiles of different models"
            )
    shapes_b, shapes_a = _first_input_shapes(before), _first_input_shapes(after)
    shared_nodes = sorted(shapes_b.keys() & shapes_a.keys())
    differ = [n for n in shared_nodes if shapes_b[n] != shapes_a[n]]
    if len(differ) >= 2 and 2 * len(differ) > len(shared_nodes):
        n = differ[0]
        problems.append(
            f"input shapes differ for {len(differ)} of the {len(shared_nodes)} nodes both profiles have "
            f"(e.g. {n!r}: {shapes_b[n]} before, {shapes_a[n]} after): profiles of different models or input shapes"
        )
    return problems


def _compute_types(profile: Profile) -> set[str]:
    """The profile's op types as ONNX op types (so Conv2D and Conv agree), layout kernels left out."""
    onnx_types = (canonical_op_type(t) for t in profile.stats_by_type())
    return {t for t, category in onnx_types if category == "compute"}


def _first_input_shapes(profile: Profile) -> dict[str, list]:
    shapes: dict[str, list] = {}
    for op in profile.ops:
        if op.input_shapes is not None:
            shapes.setdefault(op.name, op.input_shapes)
    return shapes


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
    if before.model_name and after.model_name and before.model_name != after.model_name:
        return [f"different models: before is {before.model_name!r}, after is {after.model_name!r}"]
    return []
