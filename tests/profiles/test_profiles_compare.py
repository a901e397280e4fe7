"""compare_profiles: the RDN TransposeD fix, node comparisons, latency verdict and warnings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from profiles import Latency, OpRecord, Profile, ProfileError, compare_profiles, read_profile
from profiles.compare import DifferentModelsError

RDN_TOTAL_BEFORE = 935253.6 + 934287.8 + 126733.2 + 117099.7 + 121.6667
RDN_TOTAL_AFTER = RDN_TOTAL_BEFORE - 934287.8 + 10141.094


@pytest.fixture
def rdn(data):
    return read_profile(data / "rdn_before_op_statistic_0_1.csv"), read_profile(data / "rdn_after_op_statistic_0_1.csv")


def test_rdn_transposed_drop_and_share(rdn):
    c = compare_profiles(*rdn)
    assert [r.key for r in c.rows] == ["TransData", "TransposeD", "Conv2D", "ConcatD", "Cast"]
    t = c.rows[1]
    assert (t.before_us, t.after_us) == (934287.8, 10141.094)
    assert t.delta_us == pytest.approx(-924146.706)
    assert t.ratio == pytest.approx(10141.094 / 934287.8)
    assert t.share_before == pytest.approx(934287.8 / RDN_TOTAL_BEFORE) == pytest.approx(0.442058, abs=1e-6)
    assert t.share_after == pytest.approx(10141.094 / RDN_TOTAL_AFTER) == pytest.approx(0.0085266, abs=1e-7)
    assert c.total_before_us == pytest.approx(RDN_TOTAL_BEFORE)
    assert c.total_delta_us == pytest.approx(-924146.706)
    unchanged = c.rows[0]
    assert (unchanged.delta_us, unchanged.ratio) == (0.0, 1.0)
    assert c.appeared == c.disappeared == c.warnings == []
    assert c.latency is None


def test_top_keeps_the_largest_rows_and_all_totals(rdn):
    c = compare_profiles(*rdn, top=2)
    assert [r.key for r in c.rows] == ["TransData", "TransposeD"]
    assert c.total_after_us == pytest.approx(RDN_TOTAL_AFTER)


def test_sorted_by_the_larger_side(rdn):
    before, after = rdn
    after.stats[2].total_us = 2_000_000.0  # Conv2D grows past everything
    assert compare_profiles(before, after).rows[0].key == "Conv2D"


def test_transposed_and_transpose_are_different_keys(rdn):
    before, after = rdn
    after.stats[1].op_type = "Transpose"
    c = compare_profiles(before, after)
    assert (c.appeared, c.disappeared) == (["Transpose"], ["TransposeD"])
    gone = next(r for r in c.rows if r.key == "TransposeD")
    new = next(r for r in c.rows if r.key == "Transpose")
    assert (gone.after_us, gone.share_after) == (0.0, 0.0)
    assert (new.before_us, new.ratio) == (0.0, None)


def test_to_dict_is_json_ready(rdn):
    d = json.loads(json.dumps(compare_profiles(*rdn).to_dict()))
    assert d["by"] == "op-type"
    assert d["rows"][1]["key"] == "TransposeD" and d["rows"][1]["after_us"] == 10141.094
    assert d["total_delta_us"] == pytest.approx(-924146.706)
    assert d["latency"] is None and d["warnings"] == []


def ops(*pairs):
    return [OpRecord(name=n, op_type=n.split("_")[0], duration_us=d) for n, d in pairs]


def test_by_node_sums_repeated_runs():
    before = Profile("b", "onnxruntime", ops(("Conv_1", 10.0), ("Relu_2", 2.0), ("Conv_1", 12.0)))
    after = Profile("a", "onnxruntime", ops(("Conv_1", 11.0), ("Conv_1", 11.0), ("Gelu_3", 1.0)))
    c = compare_profiles(before, after, by="node")
    assert [(r.key, r.before_us, r.after_us) for r in c.rows] == [
        ("Conv_1", 22.0, 22.0), ("Relu_2", 2.0, 0.0), ("Gelu_3", 0.0, 1.0)]
    assert (c.appeared, c.disappeared) == (["Gelu_3"], ["Relu_2"])


def test_by_node_needs_ops(rdn):
    with pytest.raises(ProfileError, match="no per-op rows"):
        compare_profiles(*rdn, by="node")
    with pytest.raises(ValueError, match="by must be"):
        compare_profiles(*rdn, by="kernel")


def with_latency(samples):
    return Profile("p", "onnxruntime", ops(("Conv_1", 1.0)), latency=Latency.from_samples(samples))


def test_latency_small_samples_give_no_clear_difference():
    c = compare_profiles(with_latency([9, 10, 11, 10, 12]), with_latency([7, 8, 9, 8, 10]))
    lat = c.latency
    assert (lat.statistic, lat.before_ms, lat.after_ms, lat.delta_ms, lat.ratio) == ("median", 10.0, 8.0, -2.0, 0.8)
    assert lat.ci[0] < 0.98 < lat.ci[1]  # five samples a side: the interval reaches across the band
    assert (lat.verdict, lat.decided) == ("same", False)
    assert lat.reason.startswith("no clear difference between after and before: ratio 0.800 (95% CI ")
    assert "crosses the ±2% threshold; spread before ±14.8%, after ±18.5%" in lat.reason


def test_latency_clearly_faster():
    c = compare_profiles(with_latency([9, 10, 11, 10, 12]), with_latency([6, 7, 8, 7, 9]))
    lat = c.latency
    assert lat.delta_ms == -3.0 and lat.ratio == pytest.approx(0.7) and lat.ci[1] < 0.98
    assert (lat.verdict, lat.decided) == ("faster", True)
    assert lat.reason.startswith("after is faster than before: ratio 0.700 (95% CI ")
    d = json.loads(json.dumps(c.to_dict()))["latency"]
    assert d["verdict"] == "faster" and d["ci"] == lat.ci and d["before_samples_ms"] == [9, 10, 11, 10, 12]
    assert d["estimate"]["a_count"] == 5 and d["min_gain"] == 0.02


def test_latency_min_gain_decides_a_small_change():
    rng = np.random.default_rng(0)
    before = (10 * np.exp(rng.normal(0, 0.01, 40))).tolist()
    after = (9.7 * np.exp(rng.normal(0, 0.01, 40))).tolist()
    assert compare_profiles(with_latency(before), with_latency(after)).latency.verdict == "faster"
    wide = compare_profiles(with_latency(before), with_latency(after), min_gain=0.05).latency
    assert (wide.verdict, wide.decided) == ("same", True)
    assert wide.reason.startswith("after and before take the same time: ratio 0.975") and "within ±5%" in wide.reason
    assert compare_profiles(with_latency(before), with_latency(before)).latency.verdict == "same"


def test_latency_without_samples_has_no_verdict(data):
    before = read_profile(data / "benchmark_pureinfer_console_DPN131_bs4.log")
    after = read_profile(data / "benchmark_pureinfer_txt_Jasper_bs1_PureInfer_perf_of_jasper_1batch_in_device_0.txt")
    lat = compare_profiles(before, after).latency
    assert (lat.statistic, lat.delta_ms) == ("mean", pytest.approx(192.894 - 26.1589))
    assert lat.ratio == pytest.approx(192.894 / 26.1589)
    assert (lat.ci, lat.verdict, lat.decided) == (None, None, None)
    assert lat.reason == "no samples: no verdict (before and after have only summaries)"
    one_side = compare_profiles(with_latency([9, 10, 11]), after).latency
    assert one_side.verdict is None and one_side.reason == "no samples: no verdict (after has only a summary)"


def test_warns_on_different_models(rdn):
    before, after = rdn
    after.model_name = "wdsr_x2_bs1"
    assert compare_profiles(before, after).warnings == [
        "different models: before is 'rdn_x2_bs1', after is 'wdsr_x2_bs1'"]
    other = Profile("o", "op_summary", ops(("Gelu_1", 3.0), ("LayerNorm_2", 4.0)))
    with pytest.raises(DifferentModelsError, match="share 0 of their 4 and 2 op types: they look like profiles of"):
        compare_profiles(before, other)
    warnings = compare_profiles(before, other, force=True).warnings
    assert warnings == ["before and after share 0 of their 4 and 2 op types: they look like profiles of different "
                        "models"]
