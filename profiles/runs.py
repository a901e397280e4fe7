"""How many inferences a profile covers, so times can be compared per inference.

A profile's rows add up the time of every run it recorded: msprof repeats each node's row per
iteration, an onnxruntime trace per `model_run`. `runs_of` takes the count from, in order:

1. the profile's own record (`meta["runs"]`: the model_run events of an onnxruntime trace);
2. the rows' iteration numbers (`Infer ID`, `Iteration ID`, `Step Id`): how many distinct ones;
3. the latency samples written beside per-op times (`onnx-opt profile` writes one per run);
4. repeated rows: the number of rows most node names have (ties: the smaller), when there are rows;

otherwise the count is unknown (an op_statistic alone). `per_inference` turns the two counts of a
comparison into divisors; when a count is unknown it uses the op counts both sides share (an
op_statistic's Count is runs x nodes of that type), and when nothing tells, times stay as recorded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from fractions import Fraction

from .model import Profile


@dataclass(frozen=True)
class Runs:
    """The number of inferences of a profile (None: unknown) and, in words, how it was found."""

    count: int | None
    how: str


@dataclass(frozen=True)
class PerInference:
    """Divisors that bring both sides of a comparison to one unit, and the normalisation in words."""

    before_runs: int | None
    after_runs: int | None
    before_divisor: float
    after_divisor: float
    how: str


def runs_of(profile: Profile) -> Runs:
    """The number of inferences `profile` covers, by the rules of this module's docstring."""
    recorded = profile.meta.get("runs")
    if isinstance(recorded, int) and recorded > 0:
        return Runs(recorded, "model_run events of the trace")
    if profile.ops and all(op.iteration is not None for op in profile.ops):
        return Runs(len({op.iteration for op in profile.ops}), "distinct iteration ids of the rows")
    if profile.latency is not None and profile.latency.samples_ms and (profile.ops or profile.stats):
        return Runs(len(profile.latency.samples_ms), "one latency sample per run")
    if profile.ops:
        per_name = Counter(Counter(op.name for op in profile.ops).values())
        count, names = min(per_name.items(), key=lambda item: (-item[1], item[0]))
        total = sum(per_name.values())
        return Runs(count, f"inferred: {names} of {total} node names have {count} row{'s' * (count != 1)}")
    return Runs(None, "unknown")


def per_inference(before: Profile, after: Profile) -> PerInference:
    """Divisors for the times of `before` and `after` (see the module docstring)."""
    rb, ra = runs_of(before), runs_of(after)
    if rb.count and ra.count:
        return PerInference(rb.count, ra.count, rb.count, ra.count,
                            f"time per inference: before {_runs(rb.count)} ({rb.how}), after {_runs(ra.count)} "
                            f"({ra.how})")
    ratio = count_ratio(before, after)
    if ratio is not None and rb.count:
        runs = rb.count * ratio
        return PerInference(rb.count, round(runs), rb.count, float(runs),
                            f"time per inference: before {_runs(rb.count)} ({rb.how}), after {float(runs):g} runs "
                            f"(inferred: its op counts are {float(ratio):g}x before's)")
    if ratio is not None and ra.count:
        runs = ra.count / ratio
        return PerInference(round(runs), ra.count, float(runs), ra.count,
                            f"time per inference: before {float(runs):g} runs (inferred: its op counts are "
                            f"{float(1 / ratio):g}x after's), after {_runs(ra.count)} ({ra.how})")
    unknown = " and ".join(side for side, r in (("before", rb), ("after", ra)) if not r.count)
    if ratio is not None and ratio != 1:
        return PerInference(None, None, 1.0, float(ratio),
                            f"number of runs unknown ({unknown}); after's op counts are {float(ratio):g}x "
                            f"before's, so after's times are divided by {float(ratio):g}")
    same = "; the op counts agree" if ratio == 1 else ""
    return PerInference(rb.count, ra.count, 1.0, 1.0, f"time as recorded: number of runs unknown ({unknown}){same}")


def _runs(count: int) -> str:
    return f"{count} run{'s' * (count != 1)}"


def count_ratio(before: Profile, after: Profile) -> Fraction | None:
    """after's op count / before's, when more than half of the op types both have agree on it."""
    counts_b = {k: s.count for k, s in before.stats_by_type().items() if s.count}
    counts_a = {k: s.count for k, s in after.stats_by_type().items() if s.count}
    shared = counts_b.keys() & counts_a.keys()
    if not shared:
        return None
    ratio, agreeing = Counter(Fraction(counts_a[k], counts_b[k]) for k in shared).most_common(1)[0]
    return ratio if 2 * agreeing > len(shared) else None
