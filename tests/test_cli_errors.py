"""How the CLI ends: --debug shows the traceback and keeps the exit status; 'onnx-opt:' once per line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from optimizer.errors import UserError


def test_debug_keeps_exit_2_for_bad_input(cli, tmp_path):
    missing = tmp_path / "absent.onnx"
    code, _, err = cli("--debug", "convert", missing, "--soc", "Ascend310")
    assert code == 2
    assert err.startswith("Traceback (most recent call last):")
    assert err.splitlines()[-1] == f"onnx-opt: error: {missing}: no such file"


def test_debug_keeps_exit_1_for_an_internal_error(cli, monkeypatch):
    from optimizer.toolchain import jobs

    def explode(job, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(jobs, "convert", explode)
    code, _, err = cli("convert", "m.onnx", "--soc", "Ascend310", "--debug")
    assert code == 1
    assert "Traceback (most recent call last):" in err and 'raise RuntimeError("disk on fire")' in err
    assert err.splitlines()[-1] == "onnx-opt: internal error: RuntimeError: disk on fire"
    code, _, err = cli("convert", "m.onnx", "--soc", "Ascend310")
    assert (code, err) == (1, "onnx-opt: internal error: RuntimeError: disk on fire "
                              "(rerun with --debug for the traceback)\n")


def test_debug_after_double_dash_is_the_tool_s(cli, tmp_path):
    code, _, err = cli("convert", tmp_path / "absent.onnx", "--soc", "Ascend310", "--", "--debug")
    assert (code, err) == (2, f"onnx-opt: error: {tmp_path / 'absent.onnx'}: no such file\n")


def test_debug_exit_status_in_a_real_process(tmp_path):
    result = subprocess.run([sys.executable, "-m", "optimizer", "--debug", "tune", str(tmp_path / "x.onnx"), "--soc",
                             "Ascend310", "--job-type", "2"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert result.stderr.splitlines()[-1] == f"onnx-opt: error: {tmp_path / 'x.onnx'}: no such file"


@pytest.mark.parametrize(
    "args, start",
    [
        (["convert", "m.onnx", "--soc", "X", "--bogus"], "onnx-opt: convert: No such option '--bogus'"),
        (["bogus"], "onnx-opt: No such command 'bogus'."),
        (["tune", "m.onnx", "--soc", "X", "--tool", "zz"], "onnx-opt: tune: Invalid value for '--tool'"),
        (["hotspots"], "onnx-opt: hotspots: Missing argument 'PROFILE'."),
    ],
)
def test_usage_errors_say_onnx_opt_once(cli, args, start):
    code, _, err = cli(*args)
    assert code == 2
    assert err.startswith(start) and err.count("onnx-opt:") == 1 and err.count("\n") == 1
    assert err.rstrip().endswith("--help')")


def test_a_message_that_already_names_onnx_opt_is_not_prefixed_again(cli, monkeypatch):
    from optimizer.toolchain import jobs

    def refuse(job, **kwargs):
        raise UserError("onnx-opt: cannot do that")

    monkeypatch.setattr(jobs, "tune", refuse)
    code, _, err = cli("tune", "m.onnx", "--soc", "X", "--job-type", "1")
    assert (code, err) == (2, "onnx-opt: error: cannot do that\n")
