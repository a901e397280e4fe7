"""ais_bench summary JSON (new and old names) and onnxruntime profiles."""

from __future__ import annotations

import json
import statistics

import pytest

from profiles import read_profile
from profiles.model import MAD_TO_SIGMA

SAMPLES = [10.5, 10.0, 10.25, 12.0, 9.75]


def ais_summary(samples=None, count=True) -> dict:
    """A summary with the keys ais_bench's summary.py writes (ASCEND_FACTS 3.6)."""
    npu = {"min": 9.75, "max": 12.0, "mean": 10.5, "median": 10.25, "percentile(99%)": 11.93}
    if count:
        npu["count"] = 5
    doc = {
        "filesinfo": {"0": {"infiles": [], "outfiles": ["out/pure_infer_data_0.bin"]}},
        "args": {"model": "resnet50_bs1.om", "batchsize": 1},
        "NPU_compute_time": npu,
        "H2D_latency": {"min": 0.5, "max": 0.9, "mean": 0.6, "median": 0.55, "percentile(99%)": 0.89},
        "D2H_latency": {"min": 0.2, "max": 0.3, "mean": 0.25, "median": 0.25, "percentile(99%)": 0.3},
        "throughput": 95.238,
    }
    if samples is not None:
        doc["npu_compute_time_list"] = samples
        doc["pid"] = 4242
    return doc


def test_ais_bench_summary_json_uses_the_samples(tmp_path):
    path = tmp_path / "2023_01_02-03_04_05_summary.json"
    path.write_text(json.dumps(ais_summary(SAMPLES)))
    p = read_profile(path)
    lat = p.latency
    assert (p.kind, lat.samples_ms, lat.throughput) == ("ais_bench", SAMPLES, 95.238)
    assert lat.median_ms == statistics.median(SAMPLES) == 10.25
    assert lat.mean_ms == pytest.approx(10.5)
    deviations = [abs(x - 10.25) for x in SAMPLES]  # 0.25, 0.25, 0, 1.75, 0.5
    assert lat.spread_ms == pytest.approx(MAD_TO_SIGMA * statistics.median(deviations)) == MAD_TO_SIGMA * 0.25
    assert p.meta["args"]["model"] == "resnet50_bs1.om"
    assert p.meta["summaries"]["H2D_latency"]["median"] == 0.55


def test_old_ais_infer_sumary_json_has_summary_only(tmp_path):
    path = tmp_path / "sumary.json"
    path.write_text(json.dumps(ais_summary(count=False)))
    lat = read_profile(path).latency
    assert lat.samples_ms == [] and lat.spread_ms is None
    assert (lat.min_ms, lat.median_ms, lat.p99_ms, lat.throughput) == (9.75, 10.25, 11.93, 95.238)


def test_onnxruntime_profile_ops_and_latency(ort_profile, ort_runs):
    p = read_profile(ort_profile)
    assert p.kind == "onnxruntime"
    assert len(p.ops) == 3 * ort_runs
    assert [op.name for op in p.ops[:3]] == ["MatMul_0", "Transpose_1", "Relu_2"]
    matmul, transpose = p.ops[0], p.ops[1]
    assert (matmul.op_type, matmul.core_type) == ("MatMul", "CPUExecutionProvider")
    # onnxruntime lists the shapes of computed inputs only, not of initializers
    assert matmul.input_shapes == [[4, 8]] and matmul.output_shapes == [[4, 6]]
    assert matmul.input_dtypes == ["FLOAT"] and matmul.output_dtypes == ["FLOAT"]
    assert transpose.output_shapes == [[6, 4]]
    events = json.loads(ort_profile.read_text())
    kernel = [e for e in events if e["name"] == "Transpose_1_kernel_time"]
    assert [op.duration_us for op in p.ops if op.name == "Transpose_1"] == [float(e["dur"]) for e in kernel]
    runs = [e["dur"] / 1000 for e in events if e["name"] == "model_run"]
    assert len(runs) == ort_runs and p.latency.samples_ms == runs
    assert p.latency.median_ms == statistics.median(runs)
    assert {s.op_type: s.count for s in p.stats} == {"MatMul": ort_runs, "Transpose": ort_runs, "Relu": ort_runs}


def test_onnxruntime_profile_found_by_content_not_name(ort_profile, tmp_path):
    renamed = tmp_path / "op_summary_0_1.csv"
    renamed.write_bytes(ort_profile.read_bytes())
    assert read_profile(renamed).kind == "onnxruntime"


def test_chrome_trace_object_form(tmp_path):
    path = tmp_path / "trace.json"
    path.write_text(json.dumps({"traceEvents": [
        {"cat": "Node", "name": "Add_3_kernel_time", "dur": 7, "ts": 100, "ph": "X",
         "args": {"op_name": "Add", "provider": "CPUExecutionProvider"}},
    ]}))
    p = read_profile(path)
    assert [(o.name, o.op_type, o.duration_us, o.start_us) for o in p.ops] == [("Add_3", "Add", 7.0, 100.0)]
    assert p.latency is None and p.ops[0].input_shapes is None
