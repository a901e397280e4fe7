"""Statistics of two latency samples: the ratio of their medians (B / A), a seeded bootstrap
confidence interval for it, and a verdict against a minimum gain.

``faster`` when the whole interval lies below ``1 - min_gain``, ``slower`` when it lies above
``1 + min_gain``, ``same`` otherwise. The interval is *decided* when it lies wholly in one of
those three zones; one that straddles ``1 - min_gain`` or ``1 + min_gain`` needs more samples
(the timing engine then adds rounds; a fixed pair of profiles can only say so).
Pure numpy: plain data about time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .model import MAD_TO_SIGMA

CONFIDENCE = 0.95
RESAMPLES = 2000
MIN_GAIN = 0.02
VERDICTS = ("faster", "slower", "same")


def ratio_interval(
    a_samples: Sequence[float],
    b_samples: Sequence[float],
    *,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
    paired: bool = False,
) -> tuple[float, float, float]:
    """``(median(b) / median(a), lo, hi)``: the ratio and its percentile bootstrap interval.

    Each side is resampled independently; with ``paired`` (equal lengths, sample i of A and of B
    taken in the same round) the rounds are resampled, both sides with the same indices, so drift
    that hit both sides of a round stays paired instead of being counted as noise.
    """
    a, b = _positive(a_samples, "a"), _positive(b_samples, "b")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), not {confidence}")
    if paired and len(a) != len(b):
        raise ValueError(f"paired samples need equal lengths, not {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    index_a = rng.integers(0, len(a), size=(resamples, len(a)))
    index_b = index_a if paired else rng.integers(0, len(b), size=(resamples, len(b)))
    with np.errstate(divide="ignore", invalid="ignore"):  # a resample of mostly zeros: an infinite ratio
        ratios = np.median(b[index_b], axis=1) / np.median(a[index_a], axis=1)
    tail = (1 - confidence) / 2
    lo, hi = np.nanquantile(ratios, [tail, 1 - tail])
    return float(np.median(b) / np.median(a)), float(lo), float(hi)


def verdict(lo: float, hi: float, min_gain: float = MIN_GAIN) -> str:
    """``faster`` if the interval lies below ``1 - min_gain``, ``slower`` if above ``1 + min_gain``, else ``same``."""
    if hi < 1 - min_gain:
        return "faster"
    if lo > 1 + min_gain:
        return "slower"
    return "same"


def decided(lo: float, hi: float, min_gain: float = MIN_GAIN) -> bool:
    """Whether the interval lies wholly below, within or above the ``±min_gain`` band (crosses no edge)."""
    return hi < 1 - min_gain or lo > 1 + min_gain or (lo >= 1 - min_gain and hi <= 1 + min_gain)


def relative_spread(samples: Sequence[float]) -> float:
    """The robust spread of ``samples`` relative to their median: 1.4826 * MAD / median."""
    x = np.asarray(samples, dtype=float)
    median = float(np.median(x))
    return float(MAD_TO_SIGMA * np.median(np.abs(x - median)) / median) if median else 0.0


@dataclass(frozen=True)
class RatioEstimate:
    """B against A: ratio of medians, its interval, the verdict and what it rests on.

    ``a_spread`` / ``b_spread`` are each side's :func:`relative_spread` (0.01 = ±1 %).
    """

    ratio: float
    lo: float
    hi: float
    verdict: str
    decided: bool
    a_median: float
    b_median: float
    a_spread: float
    b_spread: float
    a_count: int
    b_count: int
    min_gain: float = MIN_GAIN
    confidence: float = CONFIDENCE
    paired: bool = False

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return asdict(self)


def estimate(
    a_samples: Sequence[float],
    b_samples: Sequence[float],
    *,
    min_gain: float = MIN_GAIN,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = 0,
    paired: bool = False,
) -> RatioEstimate:
    """The :class:`RatioEstimate` of B (``b_samples``) against A (``a_samples``)."""
    if not 0 <= min_gain < 1:
        raise ValueError(f"min_gain must lie in [0, 1), not {min_gain}")
    ratio, lo, hi = ratio_interval(
        a_samples, b_samples, confidence=confidence, resamples=resamples, seed=seed, paired=paired
    )
    return RatioEstimate(
        ratio=ratio,
        lo=lo,
        hi=hi,
        verdict=verdict(lo, hi, min_gain),
        decided=decided(lo, hi, min_gain),
        a_median=float(np.median(a_samples)),
        b_median=float(np.median(b_samples)),
        a_spread=relative_spread(a_samples),
        b_spread=relative_spread(b_samples),
        a_count=len(a_samples),
        b_count=len(b_samples),
        min_gain=min_gain,
        confidence=confidence,
        paired=paired,
    )


def describe(e: RatioEstimate, a: str = "A", b: str = "B", *, undecided: bool = False) -> str:
    """The estimate in words: "B is faster than A: ratio 0.71 (95% CI 0.69-0.73), beyond the 2% threshold".

    ``undecided`` words an interval that crosses an edge of the band as the engine's verdict.
    """
    numbers = f"ratio {e.ratio:.3f} ({e.confidence:.0%} CI {e.lo:.3f}-{e.hi:.3f})"
    gain = f"{e.min_gain:.0%}" if round(e.min_gain * 100, 6).is_integer() else f"{e.min_gain:.1%}"
    if e.verdict == "faster":
        return f"{b} is faster than {a}: {numbers}, beyond the {gain} threshold"
    if e.verdict == "slower":
        return f"{b} is slower than {a}: {numbers}, beyond the {gain} threshold"
    if e.decided:
        return f"{b} and {a} take the same time: {numbers}, within ±{gain}"
    spread = f"spread {a} ±{e.a_spread:.1%}, {b} ±{e.b_spread:.1%}"
    head = f"undecided between {a} and {b}" if undecided else f"no clear difference between {b} and {a}"
    return f"{head}: {numbers} crosses the ±{gain} threshold; {spread}"


def _positive(samples: Sequence[float], side: str) -> np.ndarray:
    x = np.asarray(samples, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{side}: need a non-empty list of samples")
    if not np.all(np.isfinite(x)) or np.median(x) <= 0:
        raise ValueError(f"{side}: samples must be finite with a positive median")
    return x
