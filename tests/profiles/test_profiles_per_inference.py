"""Comparisons that cannot mislead: time per inference, different models refused, latency files
refused as per-op profiles, new / gone rows in the HTML, renamed nodes matched through the report."""

from __future__ import annotations

import json

import pytest

from profiles import Latency, OpRecord, Profile, ProfileError, compare_profiles, hotspots, read_profile
from profiles.compare import DifferentModelsError
from profiles.html_report import write_html
from profiles.renames import match_nodes, read_pass_report
from profiles.runs import runs_of

NODES = [("Conv_0", "Conv2D", 30.0, "1,3,8,8"), ("Relu_1", "Relu", 5.0, "1,8,8,8"),
         ("Transpose_2", "TransposeD", 15.0, "1,8,8,8")]


def write_op_summary(path, iterations: int, nodes=NODES, infer_id: bool = False):
    """An msprof-style op_summary: every node once per iteration."""
    header = ["Model ID", *(["Infer ID"] if infer_id else []), "Op Name", "OP Type", "Task Duration(us)",
              "Input Shapes"]
    lines = [",".join(header)]
    for i in range(iterations):
        for name, op_type, us, shape in nodes:
            lines.append(",".join(["1", *([str(i + 1)] if infer_id else []), name, op_type, str(us),
                                   f'"""{shape}"""']))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_50_run_profile_against_a_200_run_one_of_the_same_model_reads_as_the_same(tmp_path):
    before = read_profile(write_op_summary(tmp_path / "op_summary_50.csv", 50))
    after = read_profile(write_op_summary(tmp_path / "op_summary_200.csv", 200))
    for by in ("op-type", "node"):
        c = compare_profiles(before, after, by=by)
        assert c.total_ratio == pytest.approx(1.0)
        assert c.total_before_us == pytest.approx(50.0)  # us per inference
        assert all(r.ratio == pytest.approx(1.0) for r in c.rows)
        assert (c.runs_before, c.runs_after) == (50, 200)
        assert c.normalisation == ("time per inference: before 50 runs (inferred: 3 of 3 node names have 50 rows), "
                                   "after 200 runs (inferred: 3 of 3 node names have 200 rows)")
        assert c.to_dict()["total_ratio"] == pytest.approx(1.0)


def test_hotspots_are_per_inference(tmp_path):
    h = hotspots(read_profile(write_op_summary(tmp_path / "op_summary_200.csv", 200)))
    assert h.total_us == pytest.approx(50.0) and h.runs == 200
    assert [(n.name, n.total_us, n.count) for n in h.nodes][0] == ("Conv_0", pytest.approx(30.0), 200)
    assert h.op_types[0].total_us == pytest.approx(30.0) and h.op_types[0].share == pytest.approx(0.6)
    assert h.normalisation.startswith("time per inference over 200 runs")


def test_runs_come_from_the_infer_id_column(tmp_path):
    nodes = NODES + [("Relu_1", "Relu", 5.0, "1,8,8,8")]  # Relu_1 runs twice per inference
    p = read_profile(write_op_summary(tmp_path / "op_summary.csv", 7, nodes, infer_id=True))
    assert runs_of(p).count == 7 and runs_of(p).how == "distinct iteration ids of the rows"
    assert p.ops[0].iteration == 1 and p.ops[-1].iteration == 7


def test_runs_of_an_onnxruntime_trace_are_its_model_run_events(ort_profile, ort_runs):
    p = read_profile(ort_profile)
    assert (runs_of(p).count, runs_of(p).how) == (ort_runs, "model_run events of the trace")
    c = compare_profiles(p, p, by="node")
    assert c.total_before_us == pytest.approx(p.total_us / ort_runs)


def test_runs_of_a_profile_with_latency_samples_are_the_samples():
    p = Profile("p", "msprof", [OpRecord("Conv_0", "Conv", 1.0)] * 6, latency=Latency.from_samples([1.0, 2.0, 3.0]))
    assert (runs_of(p).count, runs_of(p).how) == (3, "one latency sample per run")


def test_op_statistics_without_run_counts_are_scaled_by_their_count_ratio(data, tmp_path):
    text = (data / "rdn_before_op_statistic_0_1.csv").read_text().splitlines()
    header, rows = text[0].split(","), [r.split(",") for r in text[1:]]
    count, total = header.index("Count"), header.index("Total Time(us)")
    for r in rows:  # the same model profiled 4x as long
        r[count], r[total] = str(int(r[count]) * 4), str(float(r[total]) * 4)
    longer = tmp_path / "op_statistic_0_1.csv"
    longer.write_text("\n".join([text[0], *(",".join(r) for r in rows)]) + "\n")
    c = compare_profiles(read_profile(data / "rdn_before_op_statistic_0_1.csv"), read_profile(longer))
    assert c.total_ratio == pytest.approx(1.0) and (c.runs_before, c.runs_after) == (None, None)
    assert c.normalisation == ("number of runs unknown (before and after); after's op counts are 4x before's, "
                               "so after's times are divided by 4")
    same = compare_profiles(read_profile(data / "rdn_before_op_statistic_0_1.csv"),
                            read_profile(data / "rdn_after_op_statistic_0_1.csv"))
    assert same.normalisation == "time as recorded: number of runs unknown (before and after); the op counts agree"


def test_a_latency_file_against_a_profile_without_latency_is_refused(tmp_path):
    from profiles import write_latency_json

    write_latency_json(Latency.from_samples([1.0, 1.1, 0.9]), tmp_path / "latency_1.json")
    latency = read_profile(tmp_path / "latency_1.json")
    profile = read_profile(write_op_summary(tmp_path / "op_summary.csv", 5))
    with pytest.raises(ProfileError) as info:
        compare_profiles(profile, latency)
    assert str(info.value) == (
        f"AFTER {tmp_path / 'latency_1.json'} is an onnx-opt latency file (end-to-end latency only, no per-op "
        f"times), and BEFORE {tmp_path / 'op_summary.csv'} is an op_summary CSV without latency: give two "
        "profiles, or two latency results")
    with pytest.raises(ProfileError, match="BEFORE .*latency_1.json is an onnx-opt latency file"):
        compare_profiles(latency, profile)


def test_a_latency_file_against_a_profile_with_latency_compares_only_the_latency(tmp_path):
    from profiles import write_latency_json

    write_latency_json(Latency.from_samples([1.0, 1.1, 0.9]), tmp_path / "latency_1.json")
    profile = Profile("dir", "msprof", [OpRecord("Conv_0", "Conv", 3.0)], latency=Latency.from_samples([2.0, 2.1]))
    c = compare_profiles(profile, read_profile(tmp_path / "latency_1.json"))
    assert c.rows == [] and c.disappeared == [] and c.latency.ratio == pytest.approx(1.0 / 2.05)
    assert c.warnings[-1].endswith("is an onnx-opt latency file (end-to-end latency only, no per-op times): only "
                                   "the latency is compared")


def test_input_shapes_of_the_same_nodes_disagreeing_means_different_models(tmp_path):
    batch4 = [(name, op_type, us, "4" + shape[1:]) for name, op_type, us, shape in NODES]
    before = read_profile(write_op_summary(tmp_path / "op_summary_1.csv", 3))
    after = read_profile(write_op_summary(tmp_path / "op_summary_4.csv", 3, batch4))
    with pytest.raises(DifferentModelsError) as info:
        compare_profiles(before, after)
    assert str(info.value) == ("input shapes differ for 3 of the 3 nodes both profiles have (e.g. 'Conv_0': "
                               "[[1, 3, 8, 8]] before, [[4, 3, 8, 8]] after): profiles of different models or "
                               "input shapes")
    assert "input shapes differ" in compare_profiles(before, after, force=True).warnings[0]
    one_changed = [NODES[0], NODES[1], ("Transpose_2", "TransposeD", 15.0, "1,8,8,2")]  # a pass may change one
    compare_profiles(before, read_profile(write_op_summary(tmp_path / "op_summary_x.csv", 3, one_changed)))


def test_op_types_compare_as_onnx_types_when_telling_models_apart():
    ascend = Profile("a", "op_summary", [OpRecord("c", "Conv2D", 1.0), OpRecord("t", "TransposeD", 1.0)])
    ort = Profile("b", "onnxruntime", [OpRecord("c", "Conv", 1.0), OpRecord("t", "Transpose", 1.0)])
    assert compare_profiles(ascend, ort).warnings == []


def test_html_shows_the_verdict_the_ratio_and_the_new_and_gone_rows(tmp_path):
    def profile(name, nodes, samples):
        return Profile(name, "onnxruntime", [OpRecord(n, n.split("_")[0], us) for n, us in nodes],
                       latency=Latency.from_samples(samples))

    before = profile("b", [("Conv_1", 10.0), ("Relu_2", 2.0)], [9, 10, 11, 10, 12])
    after = profile("a", [("Conv_1", 8.0), ("Gelu_3", 1.0)], [6, 7, 8, 7, 9])
    html = write_html(compare_profiles(before, after, by="node"), tmp_path / "r.html").read_text()
    assert "<p class='faster'><b>verdict: after is faster, latency ratio 0.700</b></p>" in html
    assert "total: 2.400 us &rarr; 1.800 us (-0.600 us, ratio after/before 0.750)" in html  # per run of 5
    assert "<p>new after (1): Gelu_3</p>" in html and "<p>gone after (1): Relu_2</p>" in html
    assert "<td>Gelu_3</td><td>0.000</td><td>0.200</td><td>+0.200</td><td>-</td><td>0.00%</td><td>11.11%</td>" \
           "<td>new</td>" in html
    assert "<td>Relu_2</td>" in html and "<td>gone</td>" in html
    assert "<p>time per inference: before 5 runs (one latency sample per run)" in html


def test_html_without_latency_says_there_is_no_verdict_but_gives_the_ratio(data, tmp_path):
    c = compare_profiles(read_profile(data / "rdn_before_op_statistic_0_1.csv"),
                         read_profile(data / "rdn_after_op_statistic_0_1.csv"))
    html = write_html(c, tmp_path / "r.html").read_text()
    assert (f"<b>verdict: none (no latency in the profiles); kernel time ratio, ratio after/before "
            f"{c.total_ratio:.3f}</b>") in html


REPORT = {"passes": [
    {"name": "simplify", "changed_nodes": ["Constant_9"]},
    {"name": "fuse-depth-to-space", "changed_nodes": ["R_1", "T_2", "R_3", "R_11", "T_12", "R_13"]},
    {"name": "decompose-depth-to-space", "changed_nodes": ["D_20"]},
    {"name": "cleanup", "changed_nodes": []},
]}


def test_by_node_matches_the_nodes_a_pass_replaced_through_the_report(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps(REPORT))
    renames = read_pass_report(tmp_path / "report.json")
    before = Profile("b", "onnxruntime", [OpRecord(n, n[0], us) for n, us in [
        ("Conv_0", 50.0), ("R_1", 1.0), ("T_2", 20.0), ("R_3", 1.0), ("R_11", 2.0), ("T_12", 30.0), ("R_13", 2.0),
        ("D_20", 4.0)]])
    after = Profile("a", "onnxruntime", [OpRecord(n, n[0], us) for n, us in [
        ("Conv_0", 50.0), ("T_2", 5.0), ("T_12", 6.0), ("D_20/split", 1.0), ("D_20/transpose", 2.0),
        ("D_20/merge", 1.0)]])
    c = compare_profiles(before, after, by="node", renames=renames)
    rows = {r.key: r for r in c.rows}
    assert (rows["T_2"].before_us, rows["T_2"].after_us, rows["T_2"].status) == (22.0, 5.0, "matched")
    assert (rows["T_2"].before_keys, rows["T_2"].after_keys, rows["T_2"].matched_by) == (
        ["R_1", "R_3", "T_2"], ["T_2"], "fuse-depth-to-space")
    assert (rows["T_12"].before_us, rows["T_12"].before_keys) == (34.0, ["R_11", "R_13", "T_12"])
    assert (rows["D_20"].before_us, rows["D_20"].after_us) == (4.0, 4.0)
    assert rows["D_20"].after_keys == ["D_20/merge", "D_20/split", "D_20/transpose"]
    assert rows["Conv_0"].status == "" and c.appeared == c.disappeared == []
    plain = compare_profiles(before, after, by="node")
    assert plain.disappeared == ["D_20", "R_1", "R_11", "R_13", "R_3"]  # what the report explains


def test_a_node_changed_in_place_is_no_group():
    assert match_nodes({"A", "B"}, {"A", "B"}, [("p", ["A"])]) == []


def test_a_pass_report_that_is_not_one(tmp_path):
    bad = tmp_path / "report.json"
    bad.write_text("{")
    with pytest.raises(ProfileError, match="not JSON; expected the report of `onnx-opt optimize --report`"):
        read_pass_report(bad)
    bad.write_text(json.dumps({"format": "onnx-opt-latency"}))
    with pytest.raises(ProfileError, match='no "passes" list'):
        read_pass_report(bad)
