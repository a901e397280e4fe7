"""``onnx-opt tune``: AOE against the fake aoe, auto_tune against the fake atc and the CANN version."""

from __future__ import annotations

import json
import os
import platform

import pytest

from optimizer.toolchain.aoe import read_report

AOE_NOTE = (
    "Auto Tune is not part of CANN 6.0.1 and later: tune with AOE instead "
    "(onnx-opt tune {model} --soc Ascend310 --tool aoe --job-type 2)"
)


@pytest.fixture
def aoe(fake_tools, toolkit):
    toolkit("7.0.0")
    return fake_tools("aoe") / "aoe"


def test_aoe_arguments_result_and_report(aoe, onnx_model, cli, calls, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    model = onnx_model()
    status, out, err = cli("tune", model, "--soc", "Ascend310P3", "--tool", "aoe", "--job-type", "2")
    assert status == 0, err
    [call] = calls()
    assert call["argv"] == [
        "--framework=5",
        f"--model={model}",
        "--job_type=2",
        f"--output={tmp_path / 'net_aoe'}",
        "--input_shape=image:1,3,8,8",
    ]
    assert call["cwd"] == str(tmp_path)
    assert "TUNE_BANK_PATH" not in call["env"]
    assert out.splitlines() == [
        f"tuned model: {tmp_path / 'net_aoe.om'}",
        "OPAT: 113.588725 ms -> 113.236731 ms (0.31%), 1 operator(s) changed in the tune bank; tuning successful",
        "  softmax (SoftmaxV2): 134.0 us -> 99.0 us (35.35%)",
        f"tune bank: {tmp_path}/home/Ascend/latest/data/aoe/custom/op/Ascend310P3",
        f"AOE output in {tmp_path / 'net_aoe.aoe.log'}",
    ]
    assert (tmp_path / "net_aoe.aoe.log").read_text() == "Aoe process finished\n"


def test_tune_bank_is_set_for_aoe_only(aoe, onnx_model, cli, calls, tmp_path):
    bank = tmp_path / "bank" / "icnet"
    status, out, err = cli("tune", onnx_model(), "--soc", "Ascend310P3", "--job-type", "1", "--tune-bank", bank)
    assert status == 0, err
    assert bank.is_dir()
    assert f"created tune bank folder {bank}" in err
    assert calls()[0]["env"]["TUNE_BANK_PATH"] == str(bank)
    assert "TUNE_BANK_PATH" not in os.environ
    assert f"tune bank: {bank}" in out.splitlines()


def test_ops_from_an_op_summary(aoe, onnx_model, cli, calls, data, tmp_path):
    report = tmp_path / "report.json"
    status, out, err = cli("tune", onnx_model(), "--soc", "Ascend910B", "--job-type", "2", "--ops-from",
                           data / "msinsight_test_kernel_parse_op_summary_1.csv", "--top", "3", "--report", report)
    assert status == 0, err
    ops_file = tmp_path / "net_aoe.tune_ops.json"
    assert json.loads(ops_file.read_text()) == {"tune_ops_name": ["FlashAttentionScore", "ZerosLike", "NonZero"]}
    assert calls()[0]["argv"][-1] == f"--tune_ops_file={ops_file}"
    saved = json.loads(report.read_text())
    assert saved["ok"] is True
    [found] = saved["reports"]
    assert [op["name"] for op in found["modified"]] == ["FlashAttentionScore", "ZerosLike", "NonZero"]
    assert (found["baseline_ms"], found["result_ms"], found["improvement"]) == (113.588725, 113.236731, "0.31%")
    assert found["repo_summary"]["repo_add_num"] == 3


def test_ops_from_an_op_statistic_gives_types(aoe, onnx_model, cli, data, tmp_path):
    status, _, err = cli("tune", onnx_model(), "--soc", "Ascend910B", "--job-type", "2", "--ops-from",
                         data / "msinsight_torchnpu_level1_rank0_op_statistic.csv", "--top", "2")
    assert status == 0, err
    assert json.loads((tmp_path / "net_aoe.tune_ops.json").read_text()) == {
        "tune_ops_type": ["ForeachAddList", "TransData"]
    }


def test_ops_from_a_file_that_is_not_a_profile(aoe, onnx_model, cli, data):
    status, _, err = cli("tune", onnx_model(), "--soc", "Ascend310", "--job-type", "2", "--ops-from",
                         data / "atc_success_ICNet_readme_excerpt.log")
    assert status == 2
    assert "not a profile" in err


def test_tuned_model_found_in_the_workspace(aoe, onnx_model, cli, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_AOE", "workspace")
    status, out, err = cli("tune", onnx_model(), "--soc", "Ascend310", "--job-type", "1")
    assert status == 0, err
    [tuned] = tmp_path.glob("aoe_workspace/net_*/tunespace/result/net_*_tune.om")
    assert out.splitlines()[0] == f"tuned model: {tuned}"


def test_aoe_failure(aoe, onnx_model, cli, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_AOE", "fail")
    status, _, err = cli("tune", onnx_model(), "--soc", "Ascend310", "--job-type", "2")
    assert status == 1
    assert err == f"aoe failed with exit status 1; full output in {tmp_path / 'net_aoe.aoe.log'}\n"


def test_aoe_timeout_leaves_no_orphan(aoe, onnx_model, cli, monkeypatch, tmp_path, gone):
    monkeypatch.setenv("FAKE_HANG", "aoe")
    status, _, err = cli("tune", onnx_model(), "--soc", "Ascend310", "--job-type", "2", "--timeout", "1")
    assert status == 1
    assert "aoe did not finish within 1 s and was stopped" in err
    assert gone(int((tmp_path / "child.pid").read_text()))


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tool", "aoe"], "--tool aoe needs --job-type: 1 subgraph tuning, 2 operator tuning (run 1, then 2)"),
        (["--job-type", "2", "--mode", "RL"], "--mode is auto_tune's (RL, GA): AOE takes --job-type 1 or 2"),
        (["--tool", "auto_tune", "--job-type", "2"], "--job-type and --ops-from are AOE's: use --tool aoe"),
    ],
)
def test_option_mistakes(aoe, onnx_model, cli, calls, args, message):
    status, _, err = cli("tune", onnx_model(), "--soc", "Ascend310", *args)
    assert (status, err) == (2, f"onnx-opt: error: {message}\n")
    assert calls() == []


def test_missing_aoe(toolkit, onnx_model, cli):
    home = toolkit("7.0.0")
    status, _, err = cli("tune", onnx_model(), "--soc", "Ascend310", "--job-type", "2")
    assert status == 2
    assert err.startswith(f"onnx-opt: error: aoe not found on PATH or in the toolkit at {home}: install the CANN")


@pytest.mark.parametrize("version", ["6.0.1", "7.0.0", "8.0.RC1"])
def test_auto_tune_refused_from_cann_601(fake_tools, toolkit, onnx_model, cli, calls, version):
    home = toolkit(version)
    fake_tools("atc")
    model = onnx_model()
    status, _, err = cli("tune", model, "--soc", "Ascend310", "--tool", "auto_tune")
    assert status == 2
    source = home / f"{platform.machine()}-linux" / "ascend_toolkit_install.info"
    assert err == f"onnx-opt: error: CANN {version} (from {source}): {AOE_NOTE.format(model=model)}\n"
    assert calls() == []


def test_auto_tune_refused_by_cann_version_option(fake_tools, toolkit, onnx_model, cli, calls):
    toolkit(None)
    fake_tools("atc")
    status, _, err = cli("tune", onnx_model(), "--soc", "Ascend310", "--tool", "auto_tune", "--cann-version", "6.3.RC1")
    assert status == 2
    assert "CANN 6.3.RC1 (from --cann-version): Auto Tune is not part of CANN 6.0.1 and later" in err
    assert calls() == []


def test_auto_tune_before_cann_601(fake_tools, toolkit, onnx_model, cli, calls, tmp_path):
    toolkit("5.1.RC1")
    fake_tools("atc")
    model = onnx_model()
    bank = tmp_path / "autotune"
    status, _, err = cli("tune", model, "--soc", "Ascend310", "--tool", "auto_tune", "--tune-bank", bank,
                         "--out-nodes", "Relu_1:0")
    assert status == 0, err
    [call] = calls()
    assert call["argv"] == [
        "--framework=5",
        f"--model={model}",
        f"--output={tmp_path / 'net_auto_tune'}",
        "--soc_version=Ascend310",
        "--input_shape=image:1,3,8,8",
        "--out_nodes=Relu_1:0",
        "--auto_tune_mode=RL,GA",
    ]
    assert call["env"]["TUNE_BANK_PATH"] == str(bank)
    assert f"wrote {tmp_path / 'net_auto_tune.om'} tuned by auto_tune (RL,GA;" in err


def test_auto_tune_mode_option(fake_tools, toolkit, onnx_model, cli, calls):
    toolkit("5.0.2")
    fake_tools("atc")
    status, _, err = cli("tune", onnx_model(), "--soc", "Ascend310", "--tool", "auto_tune", "--mode", "ga")
    assert status == 0, err
    assert calls()[0]["argv"][-1] == "--auto_tune_mode=GA"
    status, _, err = cli("tune", onnx_model(), "--soc", "Ascend310", "--tool", "auto_tune", "--mode", "XX")
    assert status == 2


def test_atc_deprecation_error_is_explained(fake_tools, toolkit, onnx_model, cli, monkeypatch, tmp_path):
    toolkit(None)  # the version cannot be read, so auto_tune runs and ATC itself refuses
    monkeypatch.setenv("FAKE_CANN_VERSION", "8.0.0")
    fake_tools("atc")
    model = onnx_model()
    status, _, err = cli("tune", model, "--soc", "Ascend310", "--tool", "auto_tune")
    assert status == 1
    assert err.splitlines() == [
        "E10001: Value [RL,GA] for parameter [--auto_tune_mode] is invalid. Reason: The Auto Tune function has been "
        "deprecated. Please use the AOE tool for tuning.",
        f"    Note: {AOE_NOTE.format(model=model)}",
        f"atc failed with exit status 255; full output in {tmp_path / 'net_auto_tune.atc.log'}",
    ]


def test_aoe_result_file_of_cann_62(tmp_path):
    path = tmp_path / "aoe_result_opat_20230101120000000_pid42.json"
    path.write_text(json.dumps([
        {"basic": {"tuning_name": "t", "tuning_time(s)": 10}},
        {"OPAT": {
            "model_baseline_performance(ms)": 10.5,
            "model_performance_improvement": "4.76%",
            "model_result_performance(ms)": 10.0,
            "opat_tuning_result": "tuning successful",
            "repo_modified_operators": {"add_repo_operators": [
                {"op_name": "strided_slice_10", "op_type": "stridedsliced", "performance_after_tune(us)": 99,
                 "performance_before_tune(us)": 134, "performance_improvement": "35.35%"},
            ]},
        }},
    ]))
    found = read_report(path)
    assert (found.kind, found.baseline_ms, found.result_ms, found.improvement) == ("OPAT", 10.5, 10.0, "4.76%")
    [op] = found.modified
    assert (op.name, op.op_type, op.before_us, op.after_us, op.improvement) == (
        "strided_slice_10", "stridedsliced", 134.0, 99.0, "35.35%"
    )


def test_relative_paths_are_resolved_before_aoe_runs_in_its_folder(aoe, onnx_model, cli, calls, data, tmp_path,
                                                                    monkeypatch):
    onnx_model()
    (tmp_path / "out").mkdir()
    (tmp_path / "hot.csv").write_bytes((data / "msinsight_test_kernel_parse_op_summary_1.csv").read_bytes())
    monkeypatch.chdir(tmp_path)
    status, _, err = cli("tune", "net.onnx", "--soc", "Ascend910B", "--job-type", "2", "-o", "out/net_aoe",
                         "--ops-from", "hot.csv", "--top", "2", "--tune-bank", "bank")
    assert status == 0, err
    [call] = calls()
    assert call["cwd"] == str(tmp_path / "out")  # AOE's own folder: every path it is given is absolute
    ops_file = tmp_path / "out" / "net_aoe.tune_ops.json"
    assert call["argv"] == [
        "--framework=5",
        f"--model={tmp_path / 'net.onnx'}",
        "--job_type=2",
        f"--output={tmp_path / 'out' / 'net_aoe'}",
        "--input_shape=image:1,3,8,8",
        f"--tune_ops_file={ops_file}",
    ]
    assert call["env"]["TUNE_BANK_PATH"] == str(tmp_path / "bank")
    assert json.loads(ops_file.read_text()) == {"tune_ops_name": ["FlashAttentionScore", "ZerosLike"]}
    assert (tmp_path / "out" / "net_aoe.om").is_file()


def test_aoe_op_names_are_shown_literally(aoe, onnx_model, cli, tmp_path):
    profile = tmp_path / "op_summary_0_1.csv"
    profile.write_text("Op Name,OP Type,Task Type,Task Duration(us)\nsoft\x1b[2Jmax,SoftmaxV2,AI_CORE,10\n")
    status, out, err = cli("tune", onnx_model(), "--soc", "Ascend310", "--job-type", "2", "--ops-from", profile)
    assert status == 0, err
    assert "\x1b" not in out + err  # the name from the profile, echoed back by AOE, cannot clear the screen
    assert "AOE tunes soft\\x1b[2Jmax" in err
    assert "  soft\\x1b[2Jmax (SoftmaxV2): 134.0 us -> 99.0 us (35.35%)" in out.splitlines()
