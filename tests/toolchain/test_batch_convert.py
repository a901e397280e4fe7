"""``onnx-opt batch --soc``: each optimised model converted with the fake atc, in the workers."""

from __future__ import annotations

import json

from optimizer.loop.batch import task_resources
from optimizer.loop.batch_manifest import read_items


def test_each_optimised_model_is_converted_beside_its_output(fake_tools, toolkit, onnx_model, cli, calls, tmp_path):
    toolkit("7.0.0")
    fake_tools("atc")
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    for name in ("a.onnx", "b.onnx"):
        onnx_model(name).rename(zoo / name)
    status, _, err = cli("batch", zoo, "-o", tmp_path / "out", "--soc", "Ascend310P3", "--workers", "2")
    assert status == 0, err
    for name in ("a", "b"):
        assert (tmp_path / "out" / f"{name}.om").read_bytes() == b"fake om\n"
    models = {c["argv"][1] for c in calls()}
    assert models == {f"--model={tmp_path / 'out' / n}" for n in ("a.onnx", "b.onnx")}  # the optimised ones
    rows = json.loads((tmp_path / "out" / "batch.json").read_text())["models"]
    assert {row["om"] for row in rows} == {str(tmp_path / "out" / f"{n}.om") for n in ("a", "b")}


def test_an_atc_failure_fails_the_model_with_atcs_error(fake_tools, toolkit, onnx_model, cli, data, tmp_path,
                                                         monkeypatch):
    toolkit("7.0.0")
    fake_tools("atc")
    monkeypatch.setenv("FAKE_ATC_REPLAY", str(data / "msit_ut_atc_err_e19010.log"))
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    onnx_model("a.onnx").rename(zoo / "a.onnx")
    status, _, err = cli("batch", zoo, "-o", tmp_path / "out", "--soc", "Ascend310P3", "--workers", "1")
    assert status == 1
    [row] = json.loads((tmp_path / "out" / "batch.json").read_text())["models"]
    assert row["status"] == "failed" and row["reason"].startswith("conversion: E19010")


def test_on_ray_conversion_asks_for_an_npu(onnx_model, tmp_path):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    onnx_model("a.onnx").rename(zoo / "a.onnx")
    [plain] = read_items(zoo, tmp_path / "out", {})
    [converting] = read_items(zoo, tmp_path / "out", {"soc": "Ascend310P3"})
    assert task_resources(plain) == {} and task_resources(converting) == {"NPU": 1}
