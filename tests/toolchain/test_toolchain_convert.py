"""``onnx-opt convert`` against the fake atc: arguments, success, every recorded failure, timeouts."""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

import pytest

PARSER = "No parser is registered for Op [Conv_52, optype [ai.onnx::11::Convx]]."
SOLUTION = (
    "Check the version of the installation package and reinstall the package. "
    "For details, see the operator specifications."
)


@pytest.fixture
def atc(fake_tools, toolkit):
    toolkit("7.0.0")
    return fake_tools("atc") / "atc"


@pytest.fixture
def replay(tmp_path, monkeypatch):
    """Make the fake atc print ``text`` (a recorded console output) instead of converting."""

    def use(text: str) -> None:
        path = tmp_path / "replayed.log"
        path.write_text(text)
        monkeypatch.setenv("FAKE_ATC_REPLAY", str(path))

    return use


def test_argument_list_and_om(atc, onnx_model, cli, calls, tmp_path):
    model = onnx_model()
    status, out, err = cli("convert", model, "--soc", "Ascend310P3")
    assert status == 0, err
    [call] = calls()
    assert call["argv"] == [
        "--framework=5",
        f"--model={model}",
        f"--output={tmp_path / 'net'}",
        "--soc_version=Ascend310P3",
        "--input_shape=image:1,3,8,8",
    ]
    assert call["cwd"] == str(tmp_path)
    assert call["env"]["ASCEND_OPP_PATH"] == f"{tmp_path}/Ascend/ascend-toolkit/latest/opp"
    assert (tmp_path / "net.om").read_bytes() == b"fake om\n"
    log = (tmp_path / "net.atc.log").read_text().splitlines()
    assert log[0] == "ATC start working now, please wait for a moment."
    assert log[-1] == "ATC run success, welcome to the next use."
    assert err == f"wrote {tmp_path / 'net.om'} (ATC output in {tmp_path / 'net.atc.log'})\n"


def test_options_and_extra_arguments(atc, onnx_model, cli, calls, tmp_path):
    model = onnx_model()
    (tmp_path / "out").mkdir()
    status, _, err = cli(
        "convert", model, "--soc", "Ascend310", "-o", tmp_path / "out" / "net_bs2.om", "--input-shape", "image:2,3,8,8",
        "--input-format", "NCHW", "--out-nodes", "Relu_1:0", "--precision-mode", "allow_mix_precision",
        "--", "--log=debug", "--input_format=ND",
    )
    assert status == 0, err
    assert calls()[0]["argv"] == [
        "--framework=5",
        f"--model={model}",
        f"--output={tmp_path / 'out' / 'net_bs2'}",
        "--soc_version=Ascend310",
        "--input_shape=image:2,3,8,8",
        "--out_nodes=Relu_1:0",
        "--precision_mode=allow_mix_precision",
        "--log=debug",
        "--input_format=ND",
    ]
    assert (tmp_path / "out" / "net_bs2.om").is_file()


def test_raw_input_shape_skips_reading_the_model(atc, onnx_model, cli, calls):
    model = onnx_model(batch="N")
    status, _, err = cli("convert", model, "--soc", "Ascend310", "--", "--input_shape=image:-1,3,8,8",
                         "--dynamic_batch_size=1,4")
    assert status == 0, err
    assert calls()[0]["argv"][-2:] == ["--input_shape=image:-1,3,8,8", "--dynamic_batch_size=1,4"]


def test_dynamic_model_needs_a_shape(atc, onnx_model, cli, calls):
    model = onnx_model(batch="N")
    status, _, err = cli("convert", model, "--soc", "Ascend310")
    assert status == 2
    assert err == (
        f"onnx-opt: error: {model}: input 'image' has a dynamic shape (N,3,8,8): "
        "give --input-shape 'image:...'\n"
    )
    assert calls() == []
    status, _, err = cli("convert", model, "--soc", "Ascend310", "--input-shape", "image:4,3,8,8")
    assert status == 0, err
    assert calls()[0]["argv"][-1] == "--input_shape=image:4,3,8,8"


def test_unknown_input_name(atc, onnx_model, cli):
    model = onnx_model()
    status, _, err = cli("convert", model, "--soc", "Ascend310", "--input-shape", "mask:1,1,8,8")
    assert status == 2
    assert "--input-shape names 'mask', which is not an input of" in err


def test_verbose_prints_the_exact_command(atc, onnx_model, cli, tmp_path):
    model = onnx_model()
    status, _, err = cli("-v", "convert", model, "--soc", "Ascend310")
    assert status == 0
    argv = [str(atc), "--framework=5", f"--model={model}", f"--output={tmp_path / 'net'}", "--soc_version=Ascend310",
            "--input_shape=image:1,3,8,8"]
    assert f"$ cd {shlex.quote(str(tmp_path))} && {shlex.join(argv)}\n" in err


def test_success_with_warnings(atc, onnx_model, cli, replay, data, tmp_path):
    replay((data / "atc_success_ICNet_readme_excerpt.log").read_text())
    status, _, err = cli("-v", "convert", onnx_model(), "--soc", "Ascend310P3")
    assert status == 0, err
    assert "ATC warned 2 time(s) (W11001): they do not stop the model from running" in err
    assert "  W11001: High-priority service of op[PartitionedCall_AvgPool_52_6] is invalid" in err


def test_success_line_without_om_is_a_failure(atc, onnx_model, cli, replay, data, monkeypatch, tmp_path):
    replay((data / "atc_success_ICNet_readme_excerpt.log").read_text())
    monkeypatch.setenv("FAKE_ATC_NO_OM", "1")
    status, _, err = cli("convert", onnx_model(), "--soc", "Ascend310P3")
    assert status == 1
    assert err == f"atc printed 'ATC run success' but wrote no net.om; full output in {tmp_path / 'net.atc.log'}\n"


def test_a_stale_om_is_not_taken_for_a_new_one(atc, onnx_model, cli, replay, data, monkeypatch, tmp_path):
    (tmp_path / "net.om").write_bytes(b"old")
    replay((data / "atc_success_ICNet_readme_excerpt.log").read_text())
    monkeypatch.setenv("FAKE_ATC_NO_OM", "1")
    status, _, _ = cli("convert", onnx_model(), "--soc", "Ascend310P3")
    assert status == 1


def sections(path: Path) -> list[str]:
    return [part for part in path.read_text().split("\n\n") if part.strip()]


@pytest.mark.parametrize(
    "name, section, first, solution",
    [
        ("msit_ut_atc_err_e19010.log", 0, f"E19010: {PARSER}", SOLUTION),
        ("msit_ut_atc_err_ez0501.log", 0, "EZ0501: IR for Op [Conv_52, optype [Conv]], is not registered.", SOLUTION),
        ("msit_ut_atc_err_ez3002.log", 0, "EZ3002: Optype [Convx] of Ops kernel [AICORE] is unsupported.", SOLUTION),
        ("msit_ut_atc_err_ez3003.log", 0,
         "EZ3003: No supported Ops kernel and engine are found for [Conv_52], optype [Conv].", SOLUTION),
        ("msit_ut_atc_err_ez9010.log", 0, f"EZ9010: {PARSER}", SOLUTION),
        ("msit_ut_atc_err_unknown.log", 0, "E19025: Input tensor is invalid. Reason:", None),
        ("atc_fail_E10007_E10054_E10001_misc_third_party.log", 0,
         "E10007: [--framework] is required. The value must be [0(Caffe) or 1(MindSpore) or 3(TensorFlow) or 5(Onnx)].",
         "Set a valid parameter value."),
        ("atc_fail_E10007_E10054_E10001_misc_third_party.log", 1,
         "E10054: The requied parameter [--model] for ATC is empty. Another possible reason is that the value of "
         'some parameter is not enclosed by quotation marks ("").',
         "Check whether the command line parameter format is correct."),
        ("atc_fail_E10007_E10054_E10001_misc_third_party.log", 2,
         "E10001: Value [-1] for parameter [input_2] is invalid. Reason: maybe you should set input_shape to specify "
         "its shape.", None),
        ("atc_fail_E10007_E10054_E10001_misc_third_party.log", 3, "E40000: Failed to import te.platform.log_util.",
         None),
        ("atc_fail_cann800_E10007_EC0010_channyHuang_blog.log", 0,
         "E10007: [--framework] is required. The value must be [0(Caffe) or 1(MindSpore) or 3(TensorFlow) or 5(Onnx)].",
         "Set a valid parameter value."),
        ("atc_fail_cann800_E10007_EC0010_channyHuang_blog.log", 1,
         "EC0010: Failed to import Python module [ModuleNotFoundError: No module named 'decorator'.].",
         "Check that all required components are properly installed and the specified Python path matches the Python "
         "installation directory. (If the path does not match the directory, run set_env.sh in the installation "
         "package.)"),
    ],
)
def test_recorded_failures(atc, onnx_model, cli, replay, data, tmp_path, name, section, first, solution):
    text = sections(data / name)[section]
    replay(text)
    status, out, err = cli("convert", onnx_model(), "--soc", "Ascend310")
    assert status == 1
    lines = err.splitlines()
    assert lines[0] == first
    assert (f"    Solution: {solution}" in lines) is (solution is not None)
    assert lines[-1] == f"atc failed with exit status 255; full output in {tmp_path / 'net.atc.log'}"
    assert (tmp_path / "net.atc.log").read_text() == "ATC start working now, please wait for a moment.\n" + text + "\n"
    assert not (tmp_path / "net.om").exists()


def test_traceback_is_short_unless_verbose(atc, onnx_model, cli, replay, data):
    replay(sections(data / "atc_fail_cann800_E10007_EC0010_channyHuang_blog.log")[1])
    _, _, err = cli("convert", onnx_model(), "--soc", "Ascend310")
    first = "AOE Failed to call InitCannKB[FUNC:Initialize][FILE:python_adapter_manager.cc][LINE:47]"
    assert f"    TraceBack: {first}" in err
    assert "    (9 more traceback lines in the log; -v shows them)" in err
    _, _, err = cli("-v", "convert", onnx_model(), "--soc", "Ascend310")
    assert "    TraceBack: GELib::InnerInitialize failed.[FUNC:Initialize][FILE:gelib.cc][LINE:177]" in err
    assert "more traceback lines" not in err


def test_every_block_of_a_log_is_reported(atc, onnx_model, cli, replay, data):
    replay((data / "atc_fail_cann800_E10007_EC0010_channyHuang_blog.log").read_text())
    _, _, err = cli("convert", onnx_model(), "--soc", "Ascend310")
    assert [line.split(":")[0] for line in err.splitlines() if not line.startswith((" ", "atc failed"))] == [
        "E10007", "EC0010", "EC0010", "EC0010"
    ]


def test_fake_atc_checks_its_required_arguments(atc, onnx_model, cli, monkeypatch):
    monkeypatch.setenv("FAKE_CANN_VERSION", "8.0.0")
    status, _, err = cli("convert", onnx_model(), "--soc", "Ascend310", "--", "--framework=")
    assert status == 1
    assert err.splitlines()[0] == (
        "E10007: [--framework] is required. The value must be [0(Caffe) or 1(MindSpore) or 3(TensorFlow) or 5(Onnx)]."
    )


def test_timeout_stops_atc_and_its_children(atc, onnx_model, cli, monkeypatch, tmp_path, gone):
    monkeypatch.setenv("FAKE_HANG", "atc")
    status, _, err = cli("convert", onnx_model(), "--soc", "Ascend310", "--timeout", "1")
    assert status == 1
    assert err == (
        f"onnx-opt: atc did not finish within 1 s and was stopped; output in {tmp_path / 'net.atc.log'} "
        "(raise --timeout if it needs longer)\n"
    )
    assert gone(int((tmp_path / "child.pid").read_text()))


def test_missing_atc(toolkit, onnx_model, cli, tmp_path):
    home = toolkit("7.0.0")
    status, _, err = cli("convert", onnx_model(), "--soc", "Ascend310")
    assert status == 2
    assert err == (
        f"onnx-opt: error: atc not found on PATH or in the toolkit at {home}: install the CANN toolkit "
        "(Ascend-cann-toolkit) and set ASCEND_TOOLKIT_HOME, or put atc on PATH\n"
    )


def test_missing_model(atc, cli, tmp_path):
    status, _, err = cli("convert", tmp_path / "none.onnx", "--soc", "Ascend310")
    assert (status, err) == (2, f"onnx-opt: error: {tmp_path / 'none.onnx'}: no such file\n")


def test_optimise_first_then_convert_the_result(atc, onnx_model, cli, calls, tmp_path):
    status, out, err = cli("convert", onnx_model(), "--soc", "Ascend310", "--target", "ascend310")
    assert status == 0, err
    optimised = tmp_path / "net.opt.onnx"
    assert optimised.is_file()
    assert calls()[0]["argv"][1] == f"--model={optimised}"
    assert "verification with onnxruntime" in out


def test_whitelist_before_converting(atc, onnx_model, cli, tmp_path):
    opp = tmp_path / "opp"
    target = opp / "op_impl/built-in/ai_core/tbe/impl/dynamic/transpose.py"
    target.parent.mkdir(parents=True)
    shutil.copyfile(Path(__file__).parent.parent / "data" / "opp" / "transpose_2021.py", target)
    status, _, err = cli("convert", onnx_model(size=(6, 10)), "--soc", "Ascend310", "--whitelist", "--opp", opp)
    assert status == 0, err
    assert f"added [1, 3, 6, 10] to {target}" in err
    assert "[1, 3, 6, 10]" in target.read_text()


def test_names_in_atc_messages_are_shown_literally(atc, onnx_model, cli, replay):
    replay("ATC run failed, Please check the detail log, Try 'atc --help' for more information\n"
           "E19010: No parser is registered for Op [Conv\x1b]0;pwned\x07_52, optype [ai.onnx::11::Convx]].\n")
    status, _, err = cli("convert", onnx_model(), "--soc", "Ascend310")
    assert status == 1
    assert "\x1b" not in err and "\x07" not in err
    assert err.splitlines()[0] == (
        "E19010: No parser is registered for Op [Conv\\x1b]0;pwned\\x07_52, optype [ai.onnx::11::Convx]]."
    )
