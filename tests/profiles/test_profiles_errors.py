"""Bad inputs raise ProfileError with one line naming the path and what was expected."""

from __future__ import annotations

import json

import pytest

from profiles import ProfileError, read_profile
from profiles.latency_json import read_latency_json

GOLDEN = "msopgen_test_msopst_golden_op_summary_0_1.csv"


def error_of(path) -> str:
    with pytest.raises(ProfileError) as info:
        read_profile(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert isinstance(info.value, ValueError)
    return message


def test_missing_path(tmp_path):
    assert "no such file or directory" in error_of(tmp_path / "nope.csv")


@pytest.mark.parametrize("content", [b"", b"  \n\r\n\t"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "op_summary_0_1.csv"
    path.write_bytes(content)
    assert "empty file" in error_of(path)


def test_png_like_binary(tmp_path):
    path = tmp_path / "op_summary_0_1.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00" + bytes(range(256)))
    assert "binary file" in error_of(path)


@pytest.mark.parametrize("text", [
    "Lorem ipsum dolor sit amet,\nconsectetur adipiscing elit.\n",
    "a,b,c\n1,2,3\n",
    "[INFO] nothing measured here\n",
])
def test_text_that_is_not_a_profile(tmp_path, text):
    path = tmp_path / "profile.csv"
    path.write_text(text)
    assert "not a profile; expected" in error_of(path)


def test_atc_log_is_not_a_profile(data):
    assert "not a profile" in error_of(data / "atc_success_ICNet_readme_excerpt.log")


def test_truncated_csv_mid_row(data, tmp_path):
    text = (data / GOLDEN).read_text()
    path = tmp_path / "op_summary_0_1.csv"
    path.write_text(text[: text.index("346.19") + 3])
    assert "truncated CSV: last row (line 3) has 8 of 16 fields" in error_of(path)


def test_truncated_csv_inside_a_quoted_shape(data, tmp_path):
    text = (data / GOLDEN).read_text()
    path = tmp_path / "op_summary_0_1.csv"
    path.write_text(text[: text.index('"""2,3') + 5])
    assert "CSV" in error_of(path)


def test_header_without_rows(data, tmp_path):
    path = tmp_path / "op_summary_0_1.csv"
    path.write_text((data / GOLDEN).read_text().splitlines()[0] + "\n")
    assert "a header but no rows" in error_of(path)


def test_garbled_rows(data, tmp_path):
    header = (data / GOLDEN).read_text().splitlines()[0]
    cells = ["x"] * 16
    cells[header.split(",").index("Task Duration(us)")] = "N/A"  # no time: the row is skipped
    path = tmp_path / "op_summary_0_1.csv"
    path.write_text(header + "\n" + ",".join(cells) + "\nshort,row\n")
    assert "none of its 2 rows parse" in error_of(path)


def test_garbled_op_statistic(tmp_path):
    path = tmp_path / "op_statistic_0_1.csv"
    path.write_text("OP Type,Core Type,Count,Total Time(us)\nConv2D,AI_CORE,many,12.5\n")
    assert "none of its 1 rows parse" in error_of(path)


@pytest.mark.parametrize("doc", [{"foo": 1}, [1, 2, 3], {"traceEvents": []}, []])
def test_json_that_is_not_a_profile(tmp_path, doc):
    path = tmp_path / "result.json"
    path.write_text(json.dumps(doc))
    assert "not a profile" in error_of(path)


def test_broken_json(tmp_path):
    path = tmp_path / "result.json"
    path.write_text('{"NPU_compute_time": {"min": 1,')
    assert "not a profile" in error_of(path)


def test_malformed_onnxruntime_event(tmp_path):
    path = tmp_path / "ort.json"
    path.write_text(json.dumps([{"cat": "Node", "name": "Relu_1_kernel_time", "dur": "fast", "args": {}}]))
    assert "event 0 ('Relu_1_kernel_time'), field 'dur': 'fast' is not a number" in error_of(path)
    shape = {"input_type_shape": [{"float": ["two"]}]}
    path.write_text(json.dumps([{"cat": "Node", "name": "Relu_1_kernel_time", "dur": 3, "args": shape}]))
    assert "malformed event" in error_of(path)


def test_ais_summary_with_text_times(tmp_path):
    path = tmp_path / "x_summary.json"
    path.write_text(json.dumps({"NPU_compute_time": {"min": "n/a"}, "throughput": 1}))
    assert "non-numeric" in error_of(path)


def test_empty_directory(tmp_path):
    assert "no profile in this directory" in error_of(tmp_path)


def test_directory_without_profile_files(tmp_path):
    (tmp_path / "PROF_000001_20230608201922856_ABCDEFGH" / "device_0" / "data").mkdir(parents=True)
    (tmp_path / "notes.txt").write_text("hello")
    assert "no profile in this directory" in error_of(tmp_path)


def test_directory_with_a_garbage_op_summary(tmp_path):
    (tmp_path / "op_summary_20230919172305.csv").write_text("hello,world\n1,2\n")
    with pytest.raises(ProfileError, match=r"op_summary_20230919172305\.csv: not an op_summary CSV"):
        read_profile(tmp_path)


def test_latency_json_of_another_kind(tmp_path):
    path = tmp_path / "latency_20240101000000.json"
    path.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ProfileError, match="not an onnx-opt latency file"):
        read_latency_json(path)
