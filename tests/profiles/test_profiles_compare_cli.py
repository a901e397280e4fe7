"""`onnx-opt compare` on hostile names, latency files, different models and a pass report."""

from __future__ import annotations

import json

import pytest

HEADER = "Op Name,OP Type,Task Duration(us),Input Shapes"


def op_summary(path, rows, iterations: int = 1):
    path.write_text("\n".join([HEADER, *rows * iterations]) + "\n")
    return path


@pytest.mark.parametrize("by", ["op-type", "node"])
def test_hostile_names_are_printed_literally(cli, tmp_path, by):
    rows = ['[/x],[/x],5.0,"""1,2"""', 'evil\x1b[31mred,Relu\x1b[2J,3.0,"""1,2"""', "[bold]Conv_0,Conv2D,9.0,N/A"]
    before = op_summary(tmp_path / "op_summary_b.csv", rows)
    after = op_summary(tmp_path / "op_summary_a.csv", rows[:2])
    code, out, err = cli("compare", before, after, "--by", by)
    assert code == 0, err
    assert "\x1b" not in out and "\x1b" not in err
    if by == "node":
        assert "[/x]" in out and "evil" in out and "red" in out and "[bold]Conv_0" in out
        assert "gone after: [bold]Conv_0" in out
    else:
        assert "[/x]" in out and "Relu" in out and "gone after: Conv2D" in out


def test_hostile_names_in_a_warning_are_shown_literally(cli, tmp_path):
    rows = ['Conv_0,Conv2D,5.0,"""1,2"""']
    before = tmp_path / "op_summary_b.csv"
    before.write_text('Model Name,' + HEADER + '\n"m\x1b]0;pwned\x07",' + rows[0] + "\n")
    after = tmp_path / "op_summary_a.csv"
    after.write_text("Model Name," + HEADER + "\n[/red]," + rows[0] + "\n")
    code, out, err = cli("compare", before, after)
    assert code == 0 and "warning: different models" in err and "[/red]" in err
    assert "\x1b" not in err and "\x07" not in err


def test_a_latency_json_as_after_is_refused_in_one_line(cli, tmp_path):
    from profiles import Latency, write_latency_json

    before = op_summary(tmp_path / "op_summary_0_1.csv", ['Conv_0,Conv2D,5.0,"""1,2"""'])
    write_latency_json(Latency.from_samples([1.0, 2.0]), tmp_path / "latency_1.json")
    code, out, err = cli("compare", before, tmp_path / "latency_1.json", "--json", tmp_path / "c.json")
    assert code == 2 and len(err.strip().splitlines()) == 1 and out == ""
    assert "latency_1.json is an onnx-opt latency file (end-to-end latency only, no per-op times)" in err
    assert not (tmp_path / "c.json").exists()


def test_different_models_are_refused_unless_forced(cli, tmp_path):
    before = op_summary(tmp_path / "op_summary_b.csv", ['Conv_0,Conv2D,5.0,"""1,3"""', 'Relu_1,Relu,1.0,"""1,3"""'])
    after = op_summary(tmp_path / "op_summary_a.csv", ['Conv_0,Conv2D,5.0,"""8,3"""', 'Relu_1,Relu,1.0,"""8,3"""'])
    code, out, err = cli("compare", before, after)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "input shapes differ for 2 of the 2 nodes" in err and "give --force to compare them anyway" in err
    code, out, err = cli("compare", before, after, "--force")
    assert code == 0 and "warning: input shapes differ" in err


def test_runs_are_normalised_and_said(cli, tmp_path):
    rows = ['Conv_0,Conv2D,5.0,"""1,3"""', 'Relu_1,Relu,1.0,"""1,3"""']
    before = op_summary(tmp_path / "op_summary_b.csv", rows, iterations=50)
    after = op_summary(tmp_path / "op_summary_a.csv", rows, iterations=200)
    code, out, err = cli("compare", before, after, "--json", tmp_path / "c.json")
    assert code == 0, err
    data = json.loads((tmp_path / "c.json").read_text())
    assert data["total_ratio"] == pytest.approx(1.0) and (data["runs_before"], data["runs_after"]) == (50, 200)
    assert "time per inference: before 50 runs" in out and "x1.000" in out


def test_report_matches_the_fused_node_to_its_originals(cli, tmp_path):
    before = op_summary(tmp_path / "op_summary_b.csv", [
        'Conv_0,Conv2D,5.0,"""1,3"""', 'R_1,Reshape,1.0,"""1,3"""', 'T_2,Transpose,4.0,"""1,3"""',
        'R_3,Reshape,1.0,"""1,3"""'])
    after = op_summary(tmp_path / "op_summary_a.csv", ['Conv_0,Conv2D,5.0,"""1,3"""', 'T_2,DepthToSpace,2.0,N/A'])
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"passes": [{"name": "fuse-depth-to-space", "changed_nodes": ["R_1", "T_2", "R_3"]}]}))
    code, out, err = cli("compare", before, after, "--by", "node", "--report", report, "--json", tmp_path / "c.json")
    assert code == 0, err
    data = json.loads((tmp_path / "c.json").read_text())
    row = next(r for r in data["rows"] if r["key"] == "T_2")
    assert (row["before_us"], row["after_us"], row["status"]) == (6.0, 2.0, "matched")
    assert data["disappeared"] == [] and "matched by fuse-depth-to-space: R_1 + R_3 + T_2 -> T_2" in out
    code, _, err = cli("compare", before, after, "--report", report)
    assert code == 2 and "use it with --by node" in err
    report.write_text("[]")
    code, _, err = cli("compare", before, after, "--by", "node", "--report", report)
    assert code == 2 and 'no "passes" list' in err and len(err.strip().splitlines()) == 1


def test_a_bad_duration_exits_2_naming_file_row_and_column(cli, tmp_path):
    good = op_summary(tmp_path / "op_summary_b.csv", ['Conv_0,Conv2D,5.0,"""1,3"""'])
    bad = op_summary(tmp_path / "op_summary_a.csv", ['Conv_0,Conv2D,5.0,"""1,3"""', 'Relu_1,Relu,NaN,"""1,3"""'])
    code, out, err = cli("compare", good, bad)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{bad}: row 3, column 'Task Duration(us)': 'NaN' is not a duration" in err
