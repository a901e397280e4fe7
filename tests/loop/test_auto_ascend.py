"""``auto --backend ascend`` against the fakes, whose timings follow the graph (the fake atc's cost
model: a 6-D TransposeD costs 5 ms unless its shape is white-listed in the OPP, then 0.05 ms;
DepthToSpace 0.1 ms where the SoC has it). The OPP white list is kept only when faster and
otherwise restored byte for byte, also on an interrupt; AOE runs last; no toolkit is exit 2."""

from __future__ import annotations

import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import onnx
import pytest

from optimizer import whitelist
from optimizer.loop.auto import AutoOptions
from optimizer.loop.auto_ascend import OppEdits, run_auto_ascend
from optimizer.loop.timing import AisBenchRunners

TESTS = Path(__file__).resolve().parent.parent
FAKES = TESTS / "fakes"
SHAPE = [1, 64, 2, 2, 114, 114]  # the input of srnet's PixelShuffle Transpose


@pytest.fixture
def npu(tmp_path, monkeypatch):
    """A fake toolkit (CANN 7.0.0, set_env.sh setting ASCEND_OPP_PATH, an OPP with the 2022 transpose.py),
    the fake atc / aoe / msprof first on PATH, the fake ais_bench for python3 (this venv's, which has onnx
    for the fake atc's cost model); returns the OPP's transpose.py."""
    from optimizer.toolchain import environment

    for name in list(os.environ):
        if name.startswith(("ASCEND_", "FAKE_")) or name in ("TUNE_BANK_PATH", "PYTHONPATH"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(environment, "DEFAULT_HOME", tmp_path / "no-default-toolkit")
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("atc", "aoe", "msprof"):
        (tools / name).symlink_to(FAKES / name)
    monkeypatch.setenv("PATH", os.pathsep.join([str(tools), str(Path(sys.executable).parent), os.environ["PATH"]]))
    monkeypatch.setenv("PYTHONPATH", str(FAKES))
    home = tmp_path / "Ascend" / "ascend-toolkit" / "latest"
    info = home / f"{platform.machine()}-linux" / "ascend_toolkit_install.info"
    info.parent.mkdir(parents=True)
    info.write_text("package_name=Ascend-cann-toolkit\nversion=7.0.0\n")
    (home.parent / "set_env.sh").write_text(f"export ASCEND_TOOLKIT_HOME={home}\n"
                                            "export ASCEND_OPP_PATH=${ASCEND_TOOLKIT_HOME}/opp\n")
    transpose = home / "opp" / whitelist.TRANSPOSE_FILE
    transpose.parent.mkdir(parents=True)
    transpose.write_bytes((TESTS / "data" / "opp" / "transpose_2022.py").read_bytes())
    monkeypatch.setenv("ASCEND_TOOLKIT_HOME", str(home))
    monkeypatch.setenv("FAKE_CANN_VERSION", "7.0.0")
    monkeypatch.setenv("FAKE_ATC_COSTS", "{}")
    monkeypatch.setenv("FAKE_CALLS", str(tmp_path / "calls.jsonl"))
    return transpose


def tools_called(tmp_path) -> list[str]:
    path = tmp_path / "calls.jsonl"
    return [json.loads(line)["tool"] for line in path.read_text().splitlines()] if path.exists() else []


def auto(examples, tmp_path, target, **options) -> object:
    settings = AutoOptions(input=examples / "srnet_opset9.onnx", output=tmp_path / "out.onnx", target=target,
                           rounds=4, profile_runs=2, loop=2, budget_s=30.0, **options)
    return run_auto_ascend(settings)


def backup(transpose: Path) -> Path:
    return transpose.with_name(transpose.name + whitelist.BACKUP_SUFFIX)


def test_the_white_list_is_kept_when_faster_then_aoe_tunes(cli, examples, npu, tmp_path):
    original = npu.read_bytes()
    out, report = tmp_path / "out.onnx", tmp_path / "report"
    code, stdout, err = cli("auto", examples / "srnet_opset9.onnx", "-o", out, "--backend", "ascend",
                            "--target", "ascend310", "--runs", "4", "--loop", "2", "--tune", "aoe",
                            "--tune-bank", tmp_path / "bank", "--report", report)
    assert code == 0, err
    assert SHAPE in whitelist.listed_shapes(npu) and backup(npu).read_bytes() == original
    data = json.loads((report / "auto.json").read_text())
    assert data["backend"] == "ascend" and data["kept"] == ["transpose-whitelist"]
    [edit] = data["opp_edits"]
    assert edit["added"] == [SHAPE] and edit["path"] == str(npu)
    assert data["final"]["verdict"] == "faster" and data["final"]["ratio"] < 0.2  # 5.42 ms -> 0.47 ms
    assert data["aoe"]["kept"] and data["aoe"]["ratio"] == pytest.approx(0.8, abs=0.02)  # FAKE_AOE_FACTOR
    assert "/shuffle/Transpose" in data["aoe"]["tune_ops"]
    assert data["om"] == str(tmp_path / "out.om") and data["written"] == [str(out), str(tmp_path / "out.om")]
    assert "latency_ms=0.376" in (tmp_path / "out.om").read_text()  # AOE's: 0.8 x the white-listed 0.47 ms
    assert json.loads((report / "plan.json").read_text())["whitelist_shapes"] == [SHAPE]
    assert "OPP: kept [1, 64, 2, 2, 114, 114]" in stdout and "aoe (operator tuning)" in stdout
    assert tools_called(tmp_path).count("aoe") == 1
    assert (report / "profile_after").is_dir() and (report / "auto.html").is_file()


def test_a_white_list_that_does_not_pay_is_reverted_byte_for_byte(examples, npu, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_ATC_COSTS", json.dumps({"TransposeD_listed": 5.0}))  # listing changes nothing
    original = npu.read_bytes()
    result = auto(examples, tmp_path, "ascend310")
    [step] = [s for s in result.steps if s.pass_name == "transpose-whitelist"]
    assert not step.kept and step.verdict == "same" and "restored byte for byte" in step.reason
    assert npu.read_bytes() == original and not backup(npu).exists()
    assert result.kept == [] and result.opp_edits == []
    assert "latency_ms=5.42" in (tmp_path / "out.om").read_text()  # the input's .om
    assert tools_called(tmp_path).count("atc") == 2  # the base, then the base again with the edited OPP


def test_fuse_depth_to_space_at_opset_11_is_kept_on_ascend910b(examples, npu, tmp_path):
    original = npu.read_bytes()
    result = auto(examples, tmp_path, "ascend910b")
    [step] = [s for s in result.steps if s.pass_name == "fuse-depth-to-space"]
    assert step.kept and step.opset == 11 and step.verdict == "faster"
    assert result.kept == ["fuse-depth-to-space"] and result.final.verdict == "faster"
    assert "transpose-whitelist" not in [s.pass_name for s in result.steps]  # the fusion removes its Transpose
    assert "DepthToSpace" in [n.op_type for n in onnx.load(str(tmp_path / "out.onnx")).graph.node]
    assert "latency_ms=0.5" in (tmp_path / "out.om").read_text() and npu.read_bytes() == original


def test_an_interrupt_reverts_the_opp_and_writes_nothing(examples, npu, tmp_path, monkeypatch):
    original = npu.read_bytes()
    seen = []
    plain = AisBenchRunners.__call__

    def interrupting(self, model):
        if "whitelist" in Path(model).name:
            seen.append(backup(npu).read_bytes())  # the backup was taken before the edit
            raise KeyboardInterrupt
        return plain(self, model)

    monkeypatch.setattr(AisBenchRunners, "__call__", interrupting)
    folders = set(Path(tempfile.gettempdir()).glob("onnx-opt-auto-*"))
    with pytest.raises(KeyboardInterrupt):
        auto(examples, tmp_path, "ascend310", report=tmp_path / "report")
    assert seen == [original]
    assert npu.read_bytes() == original and not backup(npu).exists()
    assert not (tmp_path / "out.onnx").exists() and not (tmp_path / "out.om").exists()
    assert not (tmp_path / "report").exists()
    assert set(Path(tempfile.gettempdir()).glob("onnx-opt-auto-*")) == folders


def test_an_earlier_backup_is_left_alone_and_the_edit_undone(tmp_path, npu):
    opp = npu.parents[len(whitelist.TRANSPOSE_FILE.parts) - 1]
    whitelist.add_shapes(opp, [[7, 7]])  # the user's own edit, backed up by the editor
    edited, kept_backup = npu.read_bytes(), backup(npu).read_bytes()
    with pytest.raises(RuntimeError, match="boom"), OppEdits(opp) as edits:
        edit, before = edits.add([SHAPE])
        assert edit.added == [SHAPE] and before == edited
        raise RuntimeError("boom")
    assert npu.read_bytes() == edited and backup(npu).read_bytes() == kept_backup
    edits = OppEdits(opp)
    edit, before = edits.add([SHAPE])
    edits.undo(before)
    assert npu.read_bytes() == edited and backup(npu).read_bytes() == kept_backup


def test_no_toolkit_is_exit_2_in_one_line(cli, examples, npu, tmp_path, monkeypatch):
    monkeypatch.delenv("ASCEND_TOOLKIT_HOME")
    monkeypatch.setenv("PATH", str(Path(sys.executable).parent))
    code, _, err = cli("auto", examples / "srnet_opset9.onnx", "-o", tmp_path / "out.onnx", "--backend", "ascend",
                       "--target", "ascend310")
    assert code == 2 and err.count("\n") == 1, err
    assert "atc not found" in err and "ASCEND_TOOLKIT_HOME" in err
    assert not (tmp_path / "out.onnx").exists()


def test_ascend_options_need_the_ascend_backend(cli, examples, tmp_path):
    code, _, err = cli("auto", examples / "srnet_opset9.onnx", "-o", tmp_path / "out.onnx", "--tune", "aoe")
    assert code == 2 and "--tune applies to --backend ascend" in err and err.count("\n") == 1


def test_an_input_atc_cannot_convert_is_exit_1_with_atcs_error(cli, examples, npu, tmp_path):
    # CANN 5.0.x (Ascend310) has no DepthToSpace parser; the opset-11 export has one.
    code, _, err = cli("auto", examples / "srnet_opset11.onnx", "-o", tmp_path / "out.onnx", "--backend", "ascend",
                       "--target", "ascend310")
    assert code == 1, err
    assert "E19010: No parser is registered for Op" in err and "DepthToSpace" in err
    assert "cannot be converted for Ascend310" in err
    assert not (tmp_path / "out.onnx").exists() and not (tmp_path / "out.om").exists()
