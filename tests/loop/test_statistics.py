"""profiles.statistics: the bootstrap interval of a ratio of medians, its coverage, and the verdicts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from profiles.statistics import decided, describe, estimate, ratio_interval, relative_spread, verdict


def lognormal(rng, median, sigma, n):
    return median * np.exp(rng.normal(0.0, sigma, n))


@pytest.mark.parametrize("paired", [False, True])
def test_the_95_percent_interval_covers_a_known_ratio(paired):
    true_ratio, hits, trials = 0.8, 0, 200
    for trial in range(trials):
        rng = np.random.default_rng(trial)
        a, b = lognormal(rng, 10.0, 0.1, 31), lognormal(rng, 10.0 * true_ratio, 0.1, 31)
        ratio, lo, hi = ratio_interval(a, b, seed=trial, resamples=1000, paired=paired)
        assert lo <= ratio <= hi
        hits += lo <= true_ratio <= hi
    assert hits >= 0.9 * trials


def test_identical_distributions_are_the_same():
    rng = np.random.default_rng(1)
    e = estimate(lognormal(rng, 5.0, 0.01, 40), lognormal(rng, 5.0, 0.01, 40))
    assert (e.verdict, e.decided) == ("same", True)
    assert 0.98 <= e.lo <= e.ratio <= e.hi <= 1.02


@pytest.mark.parametrize("factor, expected", [(0.7, "faster"), (1.3, "slower")])
def test_a_clear_30_percent_change(factor, expected):
    rng = np.random.default_rng(2)
    e = estimate(lognormal(rng, 5.0, 0.05, 30), lognormal(rng, 5.0 * factor, 0.05, 30))
    assert (e.verdict, e.decided) == (expected, True)
    assert e.lo < factor < e.hi and e.ratio == pytest.approx(factor, rel=0.05)
    assert (e.a_count, e.b_count) == (30, 30)


def test_verdict_and_decided_against_the_band():
    assert verdict(0.90, 0.97) == "faster" and decided(0.90, 0.97)
    assert verdict(1.03, 1.10) == "slower" and decided(1.03, 1.10)
    assert verdict(0.985, 1.01) == "same" and decided(0.985, 1.01)
    assert verdict(0.95, 0.99) == "same" and not decided(0.95, 0.99)  # crosses 0.98
    assert verdict(1.01, 1.05) == "same" and not decided(1.01, 1.05)  # crosses 1.02
    assert verdict(0.90, 0.97, min_gain=0.05) == "same" and not decided(0.90, 0.97, min_gain=0.05)


def test_the_interval_is_seeded():
    rng = np.random.default_rng(3)
    a, b = lognormal(rng, 1.0, 0.2, 25), lognormal(rng, 1.1, 0.2, 25)
    assert ratio_interval(a, b, seed=7) == ratio_interval(a, b, seed=7)
    assert ratio_interval(a, b, seed=7) != ratio_interval(a, b, seed=8)


def test_paired_rounds_keep_shared_drift_out_of_the_interval():
    rng = np.random.default_rng(4)
    drift = np.exp(rng.normal(0.0, 0.2, 40))  # load that hit both sides of a round alike
    a = 10.0 * drift * np.exp(rng.normal(0.0, 0.005, 40))
    b = 9.0 * drift * np.exp(rng.normal(0.0, 0.005, 40))
    _, lo, hi = ratio_interval(a, b, paired=True)
    _, lo_i, hi_i = ratio_interval(a, b, paired=False)
    assert hi - lo < (hi_i - lo_i) / 3 and lo < 0.9 < hi


def test_bad_samples_are_refused():
    with pytest.raises(ValueError, match="non-empty"):
        ratio_interval([], [1.0])
    with pytest.raises(ValueError, match="positive median"):
        ratio_interval([0.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="equal lengths"):
        ratio_interval([1.0, 2.0], [1.0], paired=True)
    with pytest.raises(ValueError, match="confidence"):
        ratio_interval([1.0], [1.0], confidence=1.0)
    with pytest.raises(ValueError, match="min_gain"):
        estimate([1.0], [1.0], min_gain=-0.1)


def test_estimate_in_words_and_as_json():
    rng = np.random.default_rng(5)
    a = lognormal(rng, 10.0, 0.05, 30)
    faster = estimate(a, lognormal(rng, 7.0, 0.05, 30))
    assert describe(faster).startswith("B is faster than A: ratio 0.")
    assert describe(faster).endswith(", beyond the 2% threshold") and "(95% CI " in describe(faster)
    slower = estimate(a, lognormal(rng, 13.0, 0.05, 30), min_gain=0.025)
    assert describe(slower, "base", "new").startswith("new is slower than base")
    assert describe(slower).endswith("beyond the 2.5% threshold")
    same = estimate(a, a, paired=True)  # the same rounds on both sides: exactly 1
    assert describe(same) == "B and A take the same time: ratio 1.000 (95% CI 1.000-1.000), within ±2%"
    wide = estimate([9, 10, 11, 10, 12], [7, 8, 9, 8, 10])
    assert describe(wide).startswith("no clear difference between B and A: ratio 0.800")
    assert describe(wide, undecided=True).startswith("undecided between A and B")
    assert describe(wide).endswith("crosses the ±2% threshold; spread A ±14.8%, B ±18.5%")
    d = json.loads(json.dumps(faster.to_dict()))
    assert set(d) >= {"ratio", "lo", "hi", "verdict", "decided", "a_median", "b_median", "a_spread", "b_spread"}
    assert relative_spread([9, 10, 11]) == pytest.approx(0.14826)
