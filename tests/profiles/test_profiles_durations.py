"""Readers refuse times that are not durations (NaN, infinite, negative, text) with the file, row
and column, and read a large op_summary in memory bounded by a small multiple of its size."""

from __future__ import annotations

import importlib.util
import json
import tracemalloc
from pathlib import Path

import pytest

from profiles import ProfileError, read_profile

BAD = ["nan", "NaN", "inf", "-inf", "1e400", "-1.5", "fast"]
BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_profile_read.py"


def error_of(path) -> str:
    with pytest.raises(ProfileError) as info:
        read_profile(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def csv_with(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.mark.parametrize("cell", BAD)
def test_op_summary_refuses_a_duration_that_is_not_one(tmp_path, cell):
    path = csv_with(tmp_path / "op_summary_0_1.csv", "Op Name,OP Type,Task Duration(us),Task Wait Time(us)",
                    ["Conv_0,Conv2D,3.5,0", f"Relu_1,Relu,{cell},0"])
    message = error_of(path)
    assert f"{path}: row 3, column 'Task Duration(us)': {cell!r} is not a" in message


@pytest.mark.parametrize("cell", ["nan", "-2"])
def test_op_summary_refuses_a_bad_wait_time(tmp_path, cell):
    path = csv_with(tmp_path / "op_summary_0_1.csv", "Op Name,OP Type,Task Duration(us),Task Wait Time(us)",
                    [f"Conv_0,Conv2D,3.5,{cell}"])
    assert "row 2, column 'Task Wait Time(us)'" in error_of(path)


def test_kernel_details_and_msprof_folders_refuse_them_too(tmp_path):
    path = csv_with(tmp_path / "kernel_details.csv", "Step Id,Name,Type,Duration(us)", ["1,Conv_0,Conv2D,nan"])
    assert "row 2, column 'Duration(us)': 'nan' is not a duration (a finite number >= 0)" in error_of(path)
    folder = tmp_path / "prof" / "PROF_000001_20230608201922856_ABCDEFGH" / "mindstudio_profiler_output"
    folder.mkdir(parents=True)
    csv_with(folder / "op_summary_20230608201950.csv", "Op Name,OP Type,Task Duration(us)", ["Conv_0,Conv2D,-1"])
    with pytest.raises(ProfileError, match=r"op_summary_20230608201950\.csv: row 2, column 'Task Duration\(us\)'"):
        read_profile(tmp_path / "prof")


def test_missing_durations_still_skip_the_row(tmp_path):
    path = csv_with(tmp_path / "op_summary_0_1.csv", "Op Name,OP Type,Task Duration(us)",
                    ["hcom_0,HCCL,N/A", "Conv_0,Conv2D,2.5", "Relu_1,Relu,"])
    p = read_profile(path)
    assert [op.name for op in p.ops] == ["Conv_0"] and p.meta["skipped_rows"] == ["op_summary_0_1.csv:2",
                                                                                  "op_summary_0_1.csv:4"]


@pytest.mark.parametrize("cell", ["nan", "-3", "lots"])
def test_op_statistic_refuses_bad_times(tmp_path, cell):
    path = csv_with(tmp_path / "op_statistic_0_1.csv", "OP Type,Core Type,Count,Total Time(us),Avg Time(us)",
                    ["Conv2D,AI_CORE,4,12.0,3.0", f"Relu,AI_CORE,4,{cell},1.0"])
    assert f"row 3, column 'Total Time(us)': {cell!r} is not a" in error_of(path)


@pytest.mark.parametrize("dur", [float("nan"), -4, float("inf"), "fast"])
def test_onnxruntime_trace_refuses_bad_durations(tmp_path, dur):
    path = tmp_path / "ort.json"
    events = [{"cat": "Node", "name": "Relu_1_kernel_time", "dur": 2, "args": {}},
              {"cat": "Node", "name": "Conv_0_kernel_time", "dur": dur, "args": {}}]
    path.write_text(json.dumps(events))  # json writes NaN and Infinity, and Python reads them back
    assert "event 1 ('Conv_0_kernel_time'), field 'dur': " in error_of(path)


@pytest.mark.parametrize("samples", [[1.0, float("nan")], [1.0, -2.0], [float("inf")]])
def test_latency_files_refuse_bad_samples(tmp_path, samples):
    path = tmp_path / "latency_1.json"
    path.write_text(json.dumps({"format": "onnx-opt-latency", "version": 1, "samples_ms": samples}))
    assert f"field samples_ms[{len(samples) - 1}]: " in error_of(path)


def test_ais_bench_summary_refuses_negative_times(tmp_path):
    path = tmp_path / "x_summary.json"
    path.write_text(json.dumps({"NPU_compute_time": {"min": -1, "mean": 2.0}, "throughput": 1}))
    assert "NPU_compute_time.min: -1.0 is not a duration" in error_of(path)


def test_benchmark_result_refuses_a_negative_latency(tmp_path):
    path = tmp_path / "perf.txt"
    path.write_text("ave_throughputRate: 38.4344samples/s, ave_latency: -26.1589ms\n")
    assert "ave_latency: -26.1589 is not a duration" in error_of(path)


def test_a_large_op_summary_reads_in_memory_bounded_by_its_size(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_profile_read", BENCH)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    path = tmp_path / "op_summary_0_1_1.csv"
    iterations = bench.generate_op_summary(path, megabytes=8)
    size = path.stat().st_size
    tracemalloc.start()
    try:
        profile = read_profile(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(profile.ops) == 400 * iterations
    assert peak < 5 * size, f"peak {peak / 1e6:.0f} MB for a {size / 1e6:.0f} MB file"
