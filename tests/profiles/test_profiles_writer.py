"""Writing msprof-style CSVs and the latency JSON, and reading them back."""

from __future__ import annotations

import csv

import pytest
from hypothesis import given
from hypothesis import strategies as st

from profiles import Latency, Profile, read_latency_json, read_profile, write_latency_json, write_msprof_csvs
from profiles.msprof_writer import OP_STATISTIC_HEADER, OP_SUMMARY_HEADER, format_shapes
from profiles.readers import values

LEVEL1 = "msinsight_torchnpu_level1_rank0_kernel_details_first200.csv"
TS = "20240102030405"


def op_fields(op):
    return (op.name, op.op_type, op.core_type, op.duration_us, op.start_us, op.wait_us, op.block_dim,
            op.model_id, op.input_shapes, op.output_shapes, op.input_dtypes, op.output_dtypes,
            op.input_formats, op.output_formats)


def test_headers_are_msprof_mindstudio_layout(data, tmp_path):
    summary, statistic = write_msprof_csvs(read_profile(data / LEVEL1), tmp_path, TS)
    assert (summary.name, statistic.name) == (f"op_summary_{TS}.csv", f"op_statistic_{TS}.csv")
    assert summary.read_text().splitlines()[0] == (
        "Device_id,Model ID,Task ID,Stream ID,Op Name,OP Type,OP State,Task Type,Task Start Time(us),"
        "Task Duration(us),Task Wait Time(us),Block Dim,Mix Block Dim,HF32 Eligible,Input Shapes,"
        "Input Data Types,Input Formats,Output Shapes,Output Data Types,Output Formats,Context ID"
    )
    assert statistic.read_text().splitlines()[0] == (
        "Device_id,OP Type,Core Type,Count,Total Time(us),Min Time(us),Avg Time(us),Max Time(us),Ratio(%)"
    )
    assert len(OP_SUMMARY_HEADER) == 21 and len(OP_STATISTIC_HEADER) == 9


def test_rows_quote_shapes_like_msprof(data, tmp_path):
    summary, _ = write_msprof_csvs(read_profile(data / LEVEL1), tmp_path, TS)
    lines = summary.read_text().splitlines()
    assert lines[3] == (
        'N/A,4294967295,11053,2,Conv2D1,Conv2D,dynamic,AI_CORE,1736408883704904\t,313.886,96.222,16,0,YES,'
        '"""32,1,224,224,8;121,4,16,8;64""",FLOAT;FLOAT;FLOAT,NC1HWC0;FRACTAL_Z;NCHW,'
        '"""32,8,55,55,8""",FLOAT,NC1HWC0,N/A'
    )


def test_na_where_unknown(data, tmp_path):
    p = read_profile(data / "msinsight_test_kernel_parse_op_summary_1.csv")
    summary, _ = write_msprof_csvs(p, tmp_path, TS)
    rows = list(csv.DictReader(summary.open(newline="")))
    hccl = rows[1]
    assert hccl["Op Name"] == "hcom_broadcast__483_0"
    assert [hccl[c] for c in ("Device_id", "Task ID", "Input Shapes", "Input Data Types", "Output Formats")] == [
        "N/A"] * 5
    scalar = next(r for r in rows if r["Op Name"] == "trans_Cast_5")
    assert scalar["Input Shapes"] == '""'  # the file holds """""" like msprof's


def test_round_trip_keeps_every_number(data, tmp_path):
    for name in (LEVEL1, "msinsight_test_kernel_parse_op_summary_1.csv", "msopgen_test_msopst_golden_op_summary.csv"):
        before = read_profile(data / name)
        out = tmp_path / name
        write_msprof_csvs(before, out, TS)
        after = read_profile(out)
        assert [op_fields(o) for o in after.ops] == [op_fields(o) for o in before.ops]
        assert [(s.op_type, s.core_type, s.count, s.total_us, s.min_us, s.max_us) for s in after.stats] == [
            (s.op_type, s.core_type, s.count, s.total_us, s.min_us, s.max_us) for s in before.stats]
        assert [s.share for s in after.stats] == pytest.approx([s.share for s in before.stats])


def test_output_is_deterministic(data, tmp_path):
    p = read_profile(data / LEVEL1)
    first = [f.read_bytes() for f in write_msprof_csvs(p, tmp_path / "a", TS)]
    second = [f.read_bytes() for f in write_msprof_csvs(p, tmp_path / "b", TS)]
    assert first == second


def test_statistics_only_profile_writes_op_statistic(data, tmp_path):
    written = write_msprof_csvs(read_profile(data / "rdn_before_op_statistic_0_1.csv"), tmp_path, TS)
    assert [f.name for f in written] == [f"op_statistic_{TS}.csv"]
    rows = list(csv.DictReader(written[0].open(newline="")))
    assert (rows[1]["OP Type"], rows[1]["Core Type"], rows[1]["Total Time(us)"], rows[1]["Ratio(%)"]) == (
        "TransposeD", "AI_CORE", "934287.8", "44.2058")


def test_onnxruntime_backend_folder_reads_as_one_profile(ort_profile, tmp_path):
    ort = read_profile(ort_profile)
    write_msprof_csvs(ort, tmp_path, TS)
    write_latency_json(ort.latency, tmp_path / f"latency_{TS}.json", model_name="tiny")
    p = read_profile(tmp_path)
    assert p.kind == "msprof" and p.model_name == "tiny"
    assert [op_fields(o) for o in p.ops] == [op_fields(o) for o in ort.ops]
    assert p.latency.samples_ms == ort.latency.samples_ms
    assert (p.latency.median_ms, p.latency.spread_ms) == (ort.latency.median_ms, ort.latency.spread_ms)
    assert sorted(p.meta["files"]) == [f"latency_{TS}.json", f"op_statistic_{TS}.csv", f"op_summary_{TS}.csv"]


def test_latency_json_round_trip(tmp_path):
    lat = Latency.from_samples([3.0, 1.0, 2.0, 10.0], throughput=250.0)
    path = write_latency_json(lat, tmp_path / "latency_1.json")
    back = read_latency_json(path)
    assert back == lat
    assert (back.median_ms, back.p99_ms) == (2.5, pytest.approx(9.79))
    assert read_profile(path).latency == lat


def test_latency_json_without_samples_keeps_the_summary(tmp_path):
    lat = Latency(mean_ms=26.1589, throughput=38.4344)
    back = read_latency_json(write_latency_json(lat, tmp_path / "latency_2.json"))
    assert back == lat


def test_nothing_to_write(tmp_path):
    with pytest.raises(ValueError, match="nothing to write"):
        write_msprof_csvs(Profile(source="x", kind="latency"), tmp_path, TS)


@given(st.lists(st.lists(st.integers(min_value=0, max_value=10**9), max_size=6), min_size=1, max_size=6))
def test_shapes_text_round_trip(shapes):
    assert values.shapes(format_shapes(shapes)) == shapes
