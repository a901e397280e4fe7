"""msprof output directories in every layout, built at test time from the real samples."""

from __future__ import annotations

import os

import pytest

from profiles import read_profile

GOLDEN = "msopgen_test_msopst_golden_op_summary_0_1.csv"  # 4 Cast ops
A2 = "msinsight_test_kernel_parse_op_summary_1.csv"  # 20 readable ops, ZerosLike first
STAT = "rdn_before_op_statistic_0_1.csv"  # 5 op types, model rdn_x2_bs1
PROF_OLD = "PROF_000001_20230101000000000_AAAAAAAA"
PROF_NEW = "PROF_000001_20230608201922856_LPKNFOADMAQRMDGC"


def is_golden(p) -> bool:
    return [op.name for op in p.ops] == ["Cast"] * 4 and p.ops[3].duration_us == 237.92


def is_a2(p) -> bool:
    return len(p.ops) == 20 and p.ops[0].name == "ZerosLike"


def test_job_layout_cann_5_0(place, tmp_path):
    place(GOLDEN, "prof/JOBHJAJBBGDBFBFJEIC/summary/op_summary_0_1.csv")
    place(STAT, "prof/JOBHJAJBBGDBFBFJEIC/summary/op_statistic_0_1.csv")
    job = tmp_path / "prof/JOBHJAJBBGDBFBFJEIC"
    for given in (job, job / "summary", tmp_path / "prof"):
        p = read_profile(given)
        assert p.kind == "msprof" and is_golden(p)
        assert [s.op_type for s in p.stats][:2] == ["TransData", "TransposeD"]  # from op_statistic
        assert p.model_name == "rdn_x2_bs1"


def test_newest_job_dir_by_mtime(place, tmp_path):
    old = place(A2, "prof/JOBZZZ/summary/op_summary_0_1.csv").parents[1]
    new = place(GOLDEN, "prof/JOBAAA/summary/op_summary_0_1.csv").parents[1]
    os.utime(old, (1_600_000_000, 1_600_000_000))
    os.utime(new, (1_700_000_000, 1_700_000_000))
    assert is_golden(read_profile(tmp_path / "prof"))


def test_prof_device_summary_layout_cann_5_to_6(place, tmp_path):
    place(A2, f"out/{PROF_NEW}/device_1/summary/op_summary_1_1.csv")
    place(GOLDEN, f"out/{PROF_NEW}/device_0/summary/op_summary_0_1.csv")
    (tmp_path / f"out/{PROF_NEW}/host/data").mkdir(parents=True)
    p = read_profile(tmp_path / f"out/{PROF_NEW}")
    assert is_golden(p)  # the lowest device
    assert p.meta["files"] == ["device_0/summary/op_summary_0_1.csv"]
    assert p.stats[0].count == 4  # computed from the ops: no op_statistic here


def test_mindstudio_output_newest_timestamp_wins(place, tmp_path):
    out = f"{PROF_NEW}/mindstudio_profiler_output"
    place(GOLDEN, f"{out}/op_summary_20230919172305.csv")
    place(A2, f"{out}/op_summary_20230919172204.csv")
    place("rdn_after_op_statistic_0_1.csv", f"{out}/op_statistic_20230919172305.csv")
    place(STAT, f"{out}/op_statistic_20230919172204.csv")
    p = read_profile(tmp_path / PROF_NEW)
    assert is_golden(p)
    assert p.stats_by_type()["TransposeD"].total_us == 10141.094  # the newer op_statistic
    assert sorted(p.meta["files"]) == [
        "mindstudio_profiler_output/op_statistic_20230919172305.csv",
        "mindstudio_profiler_output/op_summary_20230919172305.csv",
    ]


def test_mindstudio_slices_are_concatenated(data, tmp_path):
    lines = (data / A2).read_text().splitlines(keepends=True)
    out = tmp_path / PROF_NEW / "mindstudio_profiler_output"
    out.mkdir(parents=True)
    (out / "op_summary_slice_1_20230919172305.csv").write_text("".join(lines[:1] + lines[11:]))
    (out / "op_summary_slice_0_20230919172304.csv").write_text("".join(lines[:11]))
    (out / "op_summary_20230101000000.csv").write_text("".join(lines[:3]))  # an older full export
    p = read_profile(out)
    assert is_a2(p)
    assert p.ops[-1].name == "NonZero"
    assert p.meta["skipped_rows"] == ["op_summary_slice_1_20230919172305.csv:7"]


def test_parent_of_two_prof_dirs_takes_the_newest_by_name(place, tmp_path):
    place(GOLDEN, f"{PROF_NEW}/mindstudio_profiler_output/op_summary_20230608201950.csv")
    place(A2, f"{PROF_OLD}/mindstudio_profiler_output/op_summary_20230101000010.csv")
    os.utime(tmp_path / PROF_NEW, (1_600_000_000, 1_600_000_000))  # mtime must not decide
    p = read_profile(tmp_path)
    assert is_golden(p)
    assert p.meta["files"] == [f"{PROF_NEW}/mindstudio_profiler_output/op_summary_20230608201950.csv"]


def test_plain_folder_and_torch_npu_output(place, tmp_path):
    place("msinsight_torchnpu_level1_rank0_kernel_details_first200.csv",
          "run_ascend_pt/ASCEND_PROFILER_OUTPUT/kernel_details.csv")
    place("msinsight_torchnpu_level1_rank0_op_statistic.csv", "run_ascend_pt/ASCEND_PROFILER_OUTPUT/op_statistic.csv")
    p = read_profile(tmp_path / "run_ascend_pt")
    assert len(p.ops) == 191 and len(p.stats) == 33
    assert p.total_us == pytest.approx(8873.751)  # op_statistic decides the per-type time


def test_device_prefixed_names_pick_the_largest_trailing_number(place, tmp_path):
    place(A2, "s/op_summary_0_1_1.csv")
    place(GOLDEN, "s/op_summary_0_1_2.csv")
    assert is_golden(read_profile(tmp_path / "s"))
