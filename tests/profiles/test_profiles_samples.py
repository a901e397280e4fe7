"""Every real sample profile reads, with the numbers the files hold."""

from __future__ import annotations

import pytest

from profiles import read_profile

ALL_PROFILES = [
    "msopgen_test_msopst_golden_op_summary_0_1.csv",
    "msopgen_test_msopst_golden_op_summary.csv",
    "msinsight_test_kernel_parse_op_summary_1.csv",
    "msinsight_server_test_rank0_kernel_details_first200.csv",
    "msinsight_torchnpu_level0_rank0_kernel_details_first200.csv",
    "msinsight_torchnpu_level1_rank0_kernel_details_first200.csv",
    "msinsight_torchnpu_level1_rank0_op_statistic.csv",
    "msinsight_torchnpu_st_level2_rank0_op_statistic.csv",
    "ais_infer_console_Retinaface_bs1.log",
    "ais_infer_console_swin100_bs1.log",
    "benchmark_pureinfer_console_DPN131_bs4.log",
    "benchmark_pureinfer_txt_Jasper_bs1_PureInfer_perf_of_jasper_1batch_in_device_0.txt",
    "benchmark_vision_perf_Deepmar_bs1.txt",
    "benchmark_vision_perf_RDN_310P_bs1_variant_inference_postprocess.txt",
    "benchmark_vision_perf_RDN_bs1_perf_vision_batchsize_1_device_0.txt",
    "rdn_before_op_statistic_0_1.csv",
    "rdn_after_op_statistic_0_1.csv",
]


def test_every_sample_profile_is_in_the_list(data):
    on_disk = {p.name for p in data.iterdir()} - {
        "SOURCES.md", "op_statistic_RDN_cann502_markdown_table_from_readme.md",
        "atc_success_ICNet_readme_excerpt.log",
    }
    assert on_disk == set(ALL_PROFILES)


@pytest.mark.parametrize("name", ALL_PROFILES)
def test_sample_reads_with_time_or_latency(data, name):
    profile = read_profile(data / name)
    assert profile.source == str(data / name)
    assert profile.total_us > 0 or profile.latency.center_ms > 0


def test_msopst_golden_spreadsheet_values(data):
    p = read_profile(data / "msopgen_test_msopst_golden_op_summary_0_1.csv")
    assert p.kind == "op_summary"
    assert [op.duration_us for op in p.ops] == [338.93, 346.19, 334.35, 237.92]
    assert [op.wait_us for op in p.ops] == [0.0, 1318.56, 1204.28, 1302.08]
    first = p.ops[0]
    assert (first.name, first.op_type, first.core_type, first.block_dim) == ("Cast", "Cast", "AI_CPU", 1)
    assert first.model_id == 4290000000  # "4.29E+09"
    assert first.start_us == pytest.approx(5.42118e11)  # "5.42118E+14" ns
    assert [op.input_shapes for op in p.ops] == [[[2, 5]], [[2, 3]], [[5, 3]], [[4, 3]]]
    assert first.output_shapes == [[2, 5]]
    assert [op.input_dtypes for op in p.ops] == [["INT16"], ["INT32"], ["FLOAT"], ["INT16"]]
    assert [op.output_dtypes for op in p.ops] == [["INT32"], ["INT64"], ["INT64"], ["BOOL"]]
    assert first.input_formats == ["ND"] and first.output_formats == ["ND"]
    assert first.extra == {"Task ID": "2", "Stream ID": "2"}
    assert len(p.stats) == 1
    assert (p.stats[0].op_type, p.stats[0].count) == ("Cast", 4)
    assert p.stats[0].total_us == pytest.approx(1257.39)


def test_msopst_golden_op_name_spelling_and_nanosecond_start(data):
    p = read_profile(data / "msopgen_test_msopst_golden_op_summary.csv")
    assert [op.name for op in p.ops] == ["Cast"] * 4
    assert p.ops[0].start_us == pytest.approx(542118179416.190)
    # next start = previous start + previous duration + this wait, which holds only in us
    gap = p.ops[1].start_us - p.ops[0].start_us
    assert gap == pytest.approx(p.ops[0].duration_us + p.ops[1].wait_us)


def test_atlas_a2_op_summary_oddities(data):
    p = read_profile(data / "msinsight_test_kernel_parse_op_summary_1.csv")
    # line 17 has 31 of 32 fields (a value is missing): it is skipped, and said so
    assert p.meta["skipped_rows"] == ["msinsight_test_kernel_parse_op_summary_1.csv:17"]
    assert len(p.ops) == 20
    zeros = p.ops[0]
    assert (zeros.name, zeros.duration_us, zeros.block_dim) == ("ZerosLike", 496.8508, 48)
    assert zeros.model_id == 4294967295
    assert zeros.input_shapes == [[232138240]]
    assert zeros.input_formats == ["ND"]  # FORMAT_ND
    assert zeros.iteration == 2 and "aicore_time(us)" not in zeros.extra  # counters: not kept per row
    assert "aicore_time(us)" in p.meta["columns"]
    hccl = p.ops[1]
    assert (hccl.name, hccl.core_type, hccl.block_dim) == ("hcom_broadcast__483_0", "HCCL", 0)
    assert hccl.start_us == 1695115378715400.2 and hccl.wait_us == 1242.3992
    assert hccl.input_shapes is None and hccl.output_shapes is None and hccl.input_dtypes == []
    assert hccl.extra["Task ID"] == "N/A"
    scalar = next(op for op in p.ops if op.name == "trans_Cast_5")
    assert scalar.input_shapes == [[]] and scalar.output_dtypes == ["UINT64"]
    mask = next(op for op in p.ops if op.op_type == "DSAStatelessGenBitMask")
    assert mask.input_shapes == [[1], [], [1], [2]]
    assert mask.input_dtypes == ["INT64", "UINT64", "BF16", "INT64"]  # DT_BF16
    fa = next(op for op in p.ops if op.op_type == "FlashAttentionScore")
    assert fa.input_shapes == [[8192, 2, 640]] * 3 + [[], [83886112], [], [1, 1, 8192, 8192]]
    assert fa.output_shapes == [[655360], [655360], [], [10485760]]
    assert (fa.core_type, fa.duration_us, fa.block_dim) == ("MIX_AIC", 6969.308, 24)
    by_type = p.stats_by_type()
    assert by_type["FlashAttentionScore"].count == 3
    assert by_type["hcom_broadcast_"].total_us == pytest.approx(4975.2664 + 542.459)


def test_kernel_details_renamed_columns_are_the_same_data(data):
    a = read_profile(data / "msinsight_test_kernel_parse_op_summary_1.csv")
    b = read_profile(data / "msinsight_server_test_rank0_kernel_details_first200.csv")
    assert [(o.name, o.op_type, o.duration_us, o.start_us) for o in a.ops] == [
        (o.name, o.op_type, o.duration_us, o.start_us) for o in b.ops
    ]


def test_torch_npu_level0_crlf_tab_and_na_types(data):
    p = read_profile(data / "msinsight_torchnpu_level0_rank0_kernel_details_first200.csv")
    assert len(p.ops) == 191
    first = p.ops[0]
    assert (first.name, first.op_type, first.core_type) == ("trans_TransData_0", None, None)
    assert first.start_us == 1736405443881410.320  # "1736405443881410.320\t"
    assert (first.duration_us, first.wait_us, first.block_dim) == (50.621, 0.0, 0)
    assert first.extra == {} and first.iteration == 50
    last = p.ops[-1]
    assert last.name == "aclnnForeachAddListV2_ForeachAddListV2_ForeachAddList"  # no "\r" left
    assert last.duration_us == 624.673
    assert sum(op.core_type == "HCCL" for op in p.ops) == 4


def test_torch_npu_level1_shapes_formats_and_metrics(data):
    p = read_profile(data / "msinsight_torchnpu_level1_rank0_kernel_details_first200.csv")
    assert len(p.ops) == 191
    t = p.ops[0]
    assert (t.op_type, t.core_type, t.duration_us, t.block_dim) == ("TransData", "AI_VECTOR_CORE", 53.741, 32)
    assert t.start_us == 1736408883704643.212
    assert (t.input_shapes, t.output_shapes) == ([[32, 3, 224, 224]], [[32, 1, 224, 224, 8]])
    assert (t.input_formats, t.output_formats) == (["NCHW"], ["NC1HWC0"])
    conv = p.ops[2]
    assert (conv.name, conv.op_type, conv.core_type) == ("Conv2D1", "Conv2D", "AI_CORE")
    assert conv.input_shapes == [[32, 1, 224, 224, 8], [121, 4, 16, 8], [64]]
    assert conv.input_dtypes == ["FLOAT", "FLOAT", "FLOAT"]
    assert conv.input_formats == ["NC1HWC0", "FRACTAL_Z", "NCHW"]
    assert conv.extra["OP State"] == "dynamic" and "cube_utilization(%)" in p.meta["columns"]
    assert conv.extra["HF32 Eligible"] == "YES"


def test_op_statistic_without_device_column(data):
    p = read_profile(data / "msinsight_torchnpu_level1_rank0_op_statistic.csv")
    assert (p.kind, len(p.stats), p.ops) == ("op_statistic", 33, [])
    s = p.stats[0]
    assert (s.op_type, s.core_type, s.count) == ("ForeachAddList", "AI_VECTOR_CORE", 3)
    assert (s.total_us, s.min_us, s.avg_us, s.max_us) == (1959.079, 624.152, 653.026, 706.614)
    assert s.share == pytest.approx(0.22077)
    assert p.stats_by_type()["DSAGenBitMask"].core_type == "DSA_SQE"
    assert p.total_us == pytest.approx(8873.751)


def test_op_statistic_with_device_column(data):
    p = read_profile(data / "msinsight_torchnpu_st_level2_rank0_op_statistic.csv")
    assert len(p.stats) == 35
    s = p.stats[0]
    assert (s.op_type, s.core_type, s.count, s.total_us) == ("FlashAttentionScoreGrad", "MIX_AIC", 28, 63128.66)
    assert s.share == pytest.approx(0.27294)


def test_rdn_cann502_op_statistic_matches_the_guide_table(data):
    p = read_profile(data / "rdn_before_op_statistic_0_1.csv")
    assert p.model_name == "rdn_x2_bs1"
    table = (data / "op_statistic_RDN_cann502_markdown_table_from_readme.md").read_text(encoding="utf-8")
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()
            if line.strip().startswith("| rdn_x2_bs1")]
    assert [(s.op_type, s.core_type, s.count, s.total_us, s.min_us, s.avg_us, s.max_us) for s in p.stats] == [
        (r[1], "AI_CORE", int(r[3]), float(r[4]), float(r[5]), float(r[6]), float(r[7])) for r in rows
    ]
    assert [s.share for s in p.stats] == pytest.approx([float(r[8]) / 100 for r in rows])


@pytest.mark.parametrize("name, mean, throughput, section, key, value", [
    ("benchmark_vision_perf_RDN_bs1_perf_vision_batchsize_1_device_0.txt", 139.064, 7.39423, "e2e", "latency", 3777.82),
    ("benchmark_vision_perf_RDN_310P_bs1_variant_inference_postprocess.txt", 135.745, 7.41332,
     "postprocess", "moduleLatency", 125.965),
    ("benchmark_vision_perf_Deepmar_bs1.txt", 4.45783, 326.049, "post", "throughputRate", 208.332),
])
def test_benchmark_vision_perf(data, name, mean, throughput, section, key, value):
    p = read_profile(data / name)
    assert (p.kind, p.latency.mean_ms, p.latency.throughput) == ("benchmark", mean, throughput)
    assert p.latency.median_ms is None and p.latency.samples_ms == []
    assert p.meta["sections"][section][key] == value


@pytest.mark.parametrize("name, mean, throughput", [
    ("benchmark_pureinfer_console_DPN131_bs4.log", 26.1589, 38.4344),
    ("benchmark_pureinfer_txt_Jasper_bs1_PureInfer_perf_of_jasper_1batch_in_device_0.txt", 192.894, 5.20623),
])
def test_benchmark_pure_inference(data, name, mean, throughput):
    p = read_profile(data / name)
    assert (p.latency.mean_ms, p.latency.throughput, p.meta["mode"]) == (mean, throughput, "pure_infer")


def test_ais_infer_console_log(data):
    p = read_profile(data / "ais_infer_console_Retinaface_bs1.log")
    lat = p.latency
    assert p.kind == "ais_bench" and p.ops == []
    assert (lat.min_ms, lat.max_ms) == (0.9319999814033508, 1.7660000324249268)
    assert (lat.mean_ms, lat.median_ms) == (0.9820722253774902, 0.9710000157356262)
    assert lat.p99_ms == float("1.15799999923706055")
    assert lat.throughput == 1018.2550469906821 and lat.spread_ms is None
    assert p.meta["batch_size"] == 1.0
    assert p.meta["summaries"]["D2H_latency"]["median"] == 17.602324485778812


def test_ais_bench_console_log_with_crlf(data):
    p = read_profile(data / "ais_infer_console_swin100_bs1.log")
    assert (p.latency.median_ms, p.latency.throughput) == (67.92250061035156, 14.7214459917491)
    assert p.latency.center_ms == 67.92250061035156
