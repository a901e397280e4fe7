"""What the toolchain verbs orchestrate lives in library functions that ``auto`` shares; the CLI
modules only parse options and print; one msprof folder-name pattern."""

from __future__ import annotations

import re
from pathlib import Path

from optimizer.toolchain import jobs
from optimizer.toolchain.doctor import diagnose

ROOT = Path(__file__).resolve().parents[2]
VERBS = ("convert_cmd", "tune_cmd", "doctor_cmd", "hotspots_cmd")
ORCHESTRATION = ("discover(", "run_atc(", "run_aoe(", "optimize(", "add_shapes(", "tune_ops(", "read_profile(",
                 "suggest_passes(", "choose_target(", "has_ais_bench(")


def test_convert_runs_without_the_cli(fake_tools, toolkit, onnx_model, tmp_path):
    toolkit("7.0.0")
    fake_tools("atc")
    done = jobs.convert(jobs.ConvertJob(model=onnx_model(), soc="Ascend310", optimise=True, target="ascend310"))
    assert done.error is None and done.optimised.written == [str(tmp_path / "net.opt.onnx")]
    assert done.atc.ok and done.atc.om == tmp_path / "net.om"
    assert f"--model={tmp_path / 'net.opt.onnx'}" in done.atc.argv


def test_tune_runs_without_the_cli(fake_tools, toolkit, onnx_model, tmp_path):
    toolkit("7.0.0")
    fake_tools("aoe")
    done = jobs.tune(jobs.TuneJob(model=onnx_model(), soc="Ascend310", job_type=2, tune_bank=tmp_path / "bank"))
    assert done.result.ok and done.result.om == tmp_path / "net_aoe.om"
    assert done.notes == [f"created tune bank folder {tmp_path / 'bank'}"]


def test_doctor_findings_come_from_the_library():
    found = diagnose()
    assert dict(found.rows)["atc"] == "missing"
    assert found.todo[0].startswith("install the CANN toolkit")


def test_auto_converts_and_tunes_with_the_same_functions():
    from optimizer.loop import auto_ascend

    for name in ("atc_convert", "aoe_tune", "write_tune_ops", "prepare_tune_bank", "input_shape_for"):
        assert getattr(auto_ascend, name) is getattr(jobs, name)


def test_the_toolchain_verbs_only_parse_and_print():
    for verb in VERBS:
        text = (ROOT / "optimizer" / "cli" / f"{verb}.py").read_text()
        assert not [call for call in ORCHESTRATION if call in text], verb


def test_one_msprof_folder_name_pattern():
    from optimizer.toolchain import msprof
    from profiles.readers import msprof_dir

    assert msprof.PROF_DIR is msprof_dir.PROF_DIR
    defined = [path for path in (ROOT / "optimizer").rglob("*.py") if re.search(r"compile\(r?[\"']\^?PROF_",
                                                                                 path.read_text())]
    assert defined == []


def test_convert_runs_an_opt_in_fix_only_when_allowed(fake_tools, toolkit, tmp_path):
    """topk-int32 exists for ATC: convert takes --allow-approximate and converts what it leaves."""
    import pytest
    from onnx import TensorProto, helper, save_model

    from optimizer.errors import UserError

    toolkit("7.0.0")
    fake_tools("atc")
    k = helper.make_node("Constant", [], ["k"], value=helper.make_tensor("", TensorProto.INT64, [1], [2]))
    graph = helper.make_graph(
        [k, helper.make_node("TopK", ["x", "k"], ["values", "indices"], name="topk"),
         helper.make_node("Gather", ["x", "indices"], ["picked"], axis=1, name="pick")],
        "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 5])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, [3, 2]),
         helper.make_tensor_value_info("picked", TensorProto.FLOAT, [3, 3, 2])],
    )
    model = tmp_path / "topk.onnx"
    save_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), model)
    job = dict(model=model, soc="Ascend310", optimise=True, target="ascend310", passes=["topk-int32"])
    with pytest.raises(UserError, match="give --allow-approximate"):
        jobs.convert(jobs.ConvertJob(**job))
    done = jobs.convert(jobs.ConvertJob(**job, allow_approximate=True))
    assert done.error is None and done.atc.ok
    assert done.optimised.expected_differences == ["topk-int32"]
