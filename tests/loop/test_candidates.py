"""Choosing passes from a profile: only what a pass touches is credited; layout kernels, opsets, targets."""

from pathlib import Path

import pytest

from optimizer.errors import UserError
from optimizer.loop.candidates import choose_candidates, choose_target
from optimizer.suggest import suggest_passes
from profiles.model import OpRecord, OpTypeStat, Profile
from profiles.msprof_writer import write_msprof_csvs
from profiles.read import read_profile

RDN = Path(__file__).resolve().parent.parent / "data" / "rdn" / "rdn_before_op_statistic_0_1.csv"
SHAPE_6D = [1, 64, 2, 2, 114, 114]


def stat(op_type, total, core="AI_CORE", count=1):
    return OpTypeStat(op_type, core, count, total, total / count, total / count, total / count, 0.0)


def by_pass(candidates):
    return {c.pass_name: c for c in candidates}


def test_simplify_is_not_credited_for_the_hot_concats_it_never_touches(examples):
    # simplify changes only the SK unit's Identity; its Concats (ConcatD, 60% here) stay as they are.
    profile = Profile("sk", "op_statistic", stats=[stat("ConcatD", 600.0, count=2), stat("Conv2D", 400.0, count=4)])
    candidates, rejected, _ = choose_candidates(profile, examples / "skunit_opset11.onnx", "ascend310")
    assert "simplify" not in by_pass(candidates)
    reasons = {r["pass"]: r["reason"] for r in rejected}
    assert reasons["simplify"] == "changes no node of a hot op type (it would change Identity x1)"

    concat = next(
        s
        for s in suggest_passes(profile, model_path=examples / "skunit_opset11.onnx", target="ascend310")
        if s.op_type == "ConcatD"
    )
    assert "simplify" in concat.passes and concat.matching == []  # aimed at Concat, but changes none
    assert concat.refusals["simplify"] == "changes no Concat node (only Identity)"


def test_per_row_profile_credits_the_rows_of_the_changed_nodes(examples):
    rows = [
        OpRecord("/Concat", "ConcatD", 500.0, "AI_CORE"),
        OpRecord("/Concat_1", "ConcatD", 300.0, "AI_CORE"),
        OpRecord("/softmax/Softmax", "SoftmaxV2", 150.0, "AI_CORE"),
        OpRecord("Identity_0", "Identity", 50.0),
    ]
    profile = Profile("sk", "op_summary", ops=rows)
    candidates, rejected, _ = choose_candidates(profile, examples / "skunit_opset11.onnx", "ascend310", top=2)
    assert "simplify" in {r["pass"] for r in rejected}  # Identity is not among the top 2 op types
    softmax = by_pass(candidates)["softmax-transpose"]
    assert softmax.op_types == ["SoftmaxV2"] and softmax.hot_us == pytest.approx(150.0)
    assert softmax.hot_share == pytest.approx(0.15) and softmax.opset == 13


def test_opset_change_is_proposed_when_only_the_opset_stops_a_pass(examples):
    profile = Profile("sk", "op_statistic", stats=[stat("SoftmaxV2", 500.0), stat("TransposeD", 400.0, count=2)])
    candidates, rejected, _ = choose_candidates(profile, examples / "skunit_opset11.onnx", "ascend310")
    softmax = by_pass(candidates)["softmax-transpose"]
    assert softmax.opset == 13  # ascend310 accepts 9-13
    assert softmax.nodes == ["/softmax/Transpose", "/softmax/Softmax", "/softmax/Transpose_1"]
    assert softmax.op_types == ["SoftmaxV2", "TransposeD"] and softmax.hot_us == pytest.approx(900.0)
    assert "--opset 13" in softmax.reason
    reasons = {r["pass"]: r["reason"] for r in rejected}
    assert reasons["transpose-whitelist"] == "softmax-transpose rewrites the nodes it would list"


def test_rdn_profile_on_ascend310_proposes_the_white_list(examples):
    candidates, rejected, choice = choose_candidates(read_profile(RDN), examples / "srnet_opset9.onnx", "ascend310")
    assert [c.pass_name for c in candidates] == ["transpose-whitelist"]
    whitelist = candidates[0]
    assert whitelist.op_types == ["TransposeD"] and whitelist.whitelist_shapes == [SHAPE_6D]
    assert whitelist.hot_us == pytest.approx(934287.8) and whitelist.hot_share == pytest.approx(0.442058, abs=1e-5)
    assert whitelist.nodes == ["/shuffle/Transpose"] and whitelist.opset is None
    reasons = {r["pass"]: r["reason"] for r in rejected}
    assert "does not support DepthToSpace" in reasons["fuse-depth-to-space"]  # even at --opset 11
    assert reasons["simplify"].startswith("changes no node of a hot op type")
    assert choice.name == "ascend310" and choice.how == "given with --target"


def test_rdn_profile_on_ascend910b_proposes_opset_11_and_the_fusion(examples):
    candidates, rejected, _ = choose_candidates(read_profile(RDN), examples / "srnet_opset9.onnx", "ascend910b")
    assert [c.pass_name for c in candidates] == ["fuse-depth-to-space"]
    fuse = candidates[0]
    assert fuse.opset == 11 and fuse.op_types == ["TransposeD"]
    assert fuse.nodes == ["/shuffle/Reshape", "/shuffle/Transpose", "/shuffle/Reshape_1"]
    assert {r["pass"]: r["reason"] for r in rejected}["transpose-whitelist"] == (
        "fuse-depth-to-space rewrites the nodes it would list"
    )


@pytest.fixture
def atc_profile(tmp_path):
    """An msprof op_summary of the PixelShuffle net as ATC runs it: TransData around each format change."""
    plain, fractal = ["NCHW"], ["NC1HWC0"]
    rows = [
        ("trans_TransData_0", "TransData", 5.0, plain, fractal, [[1, 3, 114, 114]]),
        ("/expand/Conv", "Conv2D", 100.0, fractal, fractal, [[1, 3, 114, 114]]),
        ("trans_TransData_1", "TransData", 300.0, fractal, ["ND"], [[1, 256, 114, 114]]),
        ("/shuffle/Transpose", "TransposeD", 900.0, ["ND"], ["ND"], [SHAPE_6D]),
        ("trans_TransData_2", "TransData", 200.0, ["ND"], fractal, [[1, 64, 228, 228]]),
        ("/out/Conv", "Conv2D", 80.0, fractal, fractal, [[1, 64, 228, 228]]),
        ("/out/Conv_trans_TransData_3", "TransData", 7.0, fractal, plain, [[1, 3, 228, 228]]),
        ("Transpose_extra", "TransposeD", 8.0, ["ND"], ["ND"], [[2, 3, 4]]),
    ]
    ops = [
        OpRecord(
            name, kind, us, "AI_CORE", start_us=1000.0 * i, input_shapes=shapes, input_formats=fin, output_formats=fout
        )
        for i, (name, kind, us, fin, fout, shapes) in enumerate(rows)
    ]
    write_msprof_csvs(Profile("atc", "op_summary", ops=ops), tmp_path, "20240101000000")
    return read_profile(tmp_path)


def test_layout_kernels_are_credited_with_the_node_they_serve(examples, atc_profile):
    from optimizer.loop.candidates import Credit
    from optimizer.modelio import load_model

    credit = Credit(atc_profile, load_model(examples / "srnet_opset9.onnx"))
    served = {atc_profile.ops[i].name: nodes for i, nodes in credit.rows.items()}
    assert served["trans_TransData_0"] == {"/expand/Conv"}  # graph input -> first Conv
    assert served["trans_TransData_1"] == {"/shuffle/Transpose"}  # to ND: serves its consumer (Reshape has no row)
    assert served["trans_TransData_2"] == {"/shuffle/Transpose"}  # from ND: serves its producer
    assert served["/out/Conv_trans_TransData_3"] == {"/out/Conv"}  # by name

    candidates, _, _ = choose_candidates(atc_profile, examples / "srnet_opset9.onnx", "ascend910b")
    fuse = by_pass(candidates)["fuse-depth-to-space"]
    assert fuse.op_types == ["TransposeD", "TransData"]
    assert fuse.hot_us == pytest.approx(900.0 + 300.0 + 200.0)
    assert fuse.hot_share == pytest.approx(1400.0 / 1600.0)


def test_white_list_shapes_come_from_the_model_and_the_transposed_rows(examples, atc_profile):
    candidates, _, _ = choose_candidates(atc_profile, examples / "srnet_opset9.onnx", "ascend310")
    whitelist = by_pass(candidates)["transpose-whitelist"]
    assert whitelist.whitelist_shapes == [SHAPE_6D, [2, 3, 4]]
    assert whitelist.hot_us == pytest.approx(1400.0)


@pytest.mark.parametrize(
    "profile, target, told",
    [
        (Profile("x.csv", "op_statistic", stats=[stat("MatMulV3", 5.0, core="MIX_AIC")]), "ascend910b", "MIX_AIC"),
        (
            Profile("x.csv", "op_summary", ops=[OpRecord("a", "Add", 1.0, "AI_CORE", extra={"aic_total_cycles": "9"})]),
            "ascend910b",
            "aic_/aiv_",
        ),
        (
            Profile("x.json", "onnxruntime", ops=[OpRecord("a", "Add", 1.0, "CPUExecutionProvider")]),
            "onnxruntime",
            "onnxruntime profile",
        ),
        (
            Profile("d", "msprof", ops=[OpRecord("a", "Add", 1.0, "CPUExecutionProvider")]),
            "onnxruntime",
            "onnxruntime profile",
        ),
        (read_profile(RDN), "ascend310", "'AI Core'"),
    ],
)
def test_target_is_inferred_from_the_profile(profile, target, told):
    choice = choose_target(profile, None)
    assert choice.name == target and told in choice.how


def test_an_npu_profile_that_does_not_tell_its_target_asks_for_it(examples):
    stats = [stat("TransposeD", 5.0), stat("Add", 1.0, core="AI_VECTOR_CORE")]
    profile = Profile("prof.csv", "op_statistic", stats=stats)
    with pytest.raises(UserError, match=r"AI_CORE/AI_VECTOR_CORE kernels.*give --target \(ascend310, ascend310p"):
        choose_candidates(profile, examples / "srnet_opset9.onnx", None)
    with pytest.raises(UserError, match="unknown target 'ascend311'"):
        choose_target(profile, "ascend311")


def test_a_latency_only_profile_is_refused(examples):
    with pytest.raises(UserError, match="no per-op times"):
        choose_candidates(Profile("s.json", "ais_bench"), examples / "srnet_opset9.onnx", "ascend310")
