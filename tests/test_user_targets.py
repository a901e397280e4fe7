"""Pipelines a user edits (``--passes +a,-b``) and targets a user writes: a file, ONNX_OPT_TARGETS folders,
the user config folder, plugin packages; every built-in validates, every bad file exits 2 with its JSON path."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from helpers import make_model, save
from onnx import helper

from optimizer.targets import (
    BUILT_IN,
    _validator,
    load_target,
    read_target,
    target_files,
    target_names,
    target_warnings,
)

PIPELINE = ["simplify", "softmax-transpose", "fuse-depth-to-space"]  # the pipeline of the target small()


@pytest.fixture(autouse=True)
def no_user_targets(tmp_path, monkeypatch):
    """No target of the real user: an empty config folder, no ONNX_OPT_TARGETS."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("ONNX_OPT_TARGETS", raising=False)


@pytest.fixture
def model(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    return save(make_model(nodes, [("x", [1, 4])], [("y", [1, 4])]), tmp_path / "m.onnx")


def target(name="my310", **changes) -> dict:
    data = {
        "name": name,
        "description": "an Ascend 310 with my CANN",
        "backend": "ascend",
        "soc_version": "Ascend310",
        "cann": "5.0.4",
        "opsets": [9, 13],
        "unsupported_ops": ["DepthToSpace"],
        "capabilities": ["transpose-whitelist"],
        "pipeline": ["softmax-transpose", "transpose-whitelist"],
    }
    data.update(changes)
    return data


def small(tmp_path) -> Path:
    """A target of its own for the edit tests, so they do not follow the built-in pipelines."""
    return write(tmp_path / "targets", target("small", backend="onnxruntime", soc_version=None, cann=None,
                                              opsets=[7, 22], unsupported_ops=[], capabilities=[],
                                              pipeline=PIPELINE))


def write(folder, data, name=None):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name or data['name']}.json"
    path.write_text(json.dumps(data) if isinstance(data, dict) else data)
    return path


def optimize(cli, model, tmp_path, *args):
    """Run optimize with a report; (status, report data or None, stderr)."""
    report = tmp_path / "r.json"
    code, _, err = cli("optimize", model, "-o", tmp_path / "o.onnx", "--report", report, "--no-verify", *args)
    return code, json.loads(report.read_text()) if report.exists() else None, err


@pytest.mark.parametrize(
    "passes, pipeline",
    [
        ("-simplify", ["softmax-transpose", "fuse-depth-to-space"]),
        ("+transpose-whitelist", [*PIPELINE, "transpose-whitelist"]),
        ("-simplify,+simplify", ["softmax-transpose", "fuse-depth-to-space", "simplify"]),
        ("-simplify,-softmax-transpose,-fuse-depth-to-space", []),
        ("softmax-transpose", ["softmax-transpose"]),
    ],
)
def test_passes_edit_the_targets_pipeline(cli, model, tmp_path, passes, pipeline):
    code, report, err = optimize(cli, model, tmp_path, "--target", small(tmp_path), "--passes", passes)
    assert code == 0, err
    assert report["pipeline"] == pipeline


def test_an_added_pass_keeps_its_declared_order(cli, model, tmp_path):
    ascend = write(tmp_path / "targets", target(pipeline=["simplify", "softmax-transpose", "decompose-depth-to-space",
                                                          "transpose-whitelist"]))
    code, report, err = optimize(cli, model, tmp_path, "--target", ascend, "--passes", "-simplify,+simplify")
    assert code == 0, err
    assert report["pipeline"] == ["softmax-transpose", "decompose-depth-to-space", "simplify", "transpose-whitelist"]


def test_adding_a_pass_already_there_changes_nothing_and_says_so(cli, model, tmp_path):
    code, report, err = optimize(cli, model, tmp_path, "--target", small(tmp_path), "--passes", "+simplify")
    assert code == 0 and report["pipeline"] == PIPELINE
    assert "--passes +simplify: simplify is already in the pipeline of target small" in report["notes"]
    assert "already in the pipeline" in err


@pytest.mark.parametrize(
    "passes, message",
    [
        ("-transpose-whitelist", "--passes -transpose-whitelist: transpose-whitelist is not in the pipeline of target "
         "small (simplify, softmax-transpose, fuse-depth-to-space)"),
        ("simplify,-softmax-transpose", "give pass names (the pipeline) or +name/-name edits of the target's"),
        ("+", "+ and - need a pass name"),
        ("+simplfy", "unknown pass 'simplfy'; did you mean simplify?"),
        ("-simplfy", "unknown pass 'simplfy'; did you mean simplify?"),
    ],
)
def test_a_bad_edit_exits_2_and_writes_nothing(cli, model, tmp_path, passes, message):
    code, report, err = optimize(cli, model, tmp_path, "--target", small(tmp_path), "--passes", passes)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert report is None and not (tmp_path / "o.onnx").exists()


def test_passes_help_tells_of_edits(cli):
    code, out, _ = cli("optimize", "--help")
    assert code == 0 and "+name,-name" in out and "FILE.json" in out and "--set" in out


def test_every_built_in_target_validates():
    folder = resources.files("optimizer") / "data" / "targets"
    built_ins = sorted(entry.name.removesuffix(".json") for entry in folder.iterdir() if entry.name.endswith(".json"))
    assert built_ins == ["ascend310", "ascend310p", "ascend910b", "onnxruntime"]
    for name in built_ins:
        text = (folder / f"{name}.json").read_text()
        assert list(_validator().iter_errors(json.loads(text))) == []  # loading a built-in skips the schema
        loaded = read_target(text, name, source=BUILT_IN, name=name)
        assert loaded == load_target(name) and loaded.source == BUILT_IN
        assert list(loaded.why) == list(loaded.pipeline)  # a reason for every pass, in pipeline order


def test_a_why_for_a_pass_outside_the_pipeline_names_its_json_path(cli, model, tmp_path):
    path = write(tmp_path / "mine", target(pipeline=["simplify"], why={"softmax-transpose": "fast"}))
    code, _, err = optimize(cli, model, tmp_path, "--target", path)
    assert code == 2 and "$.why.softmax-transpose: 'softmax-transpose' is not in the pipeline" in err


def test_a_target_file(cli, model, tmp_path):
    path = write(tmp_path / "mine", target(pipeline=["softmax-transpose"], opsets=[9, 11]))
    code, report, err = optimize(cli, model, tmp_path, "--target", path)
    assert code == 0, err
    assert report["target"] == "my310" and report["pipeline"] == ["softmax-transpose"]
    assert load_target(str(path)).source == f"file: {path}"


def test_a_relative_target_file_and_its_edit(cli, model, tmp_path, monkeypatch):
    write(tmp_path, target())
    monkeypatch.chdir(tmp_path)
    code, report, err = optimize(cli, model, tmp_path, "--target", "my310.json", "--passes", "-transpose-whitelist")
    assert code == 0, err
    assert report["pipeline"] == ["softmax-transpose"]


def test_targets_from_onnx_opt_targets_folders_and_the_user_config(cli, model, tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    write(first, target("team", description="the first"))
    write(second, target("team", description="the second"))
    write(second, target("lab"))
    write(tmp_path / "config" / "onnx-opt" / "targets", target("home", pipeline=["simplify"]))
    write(tmp_path / "config" / "onnx-opt" / "targets", target("lab", description="mine"))
    monkeypatch.setenv("ONNX_OPT_TARGETS", f"{first}:{second}:{tmp_path / 'missing'}")
    assert {"team", "lab", "home", "onnxruntime"} <= set(target_names())
    assert load_target("team").description == "the first" and load_target("lab").description != "mine"
    assert load_target("home").source == f"user config: {tmp_path / 'config' / 'onnx-opt' / 'targets' / 'home.json'}"
    warnings = target_warnings()
    assert f"target 'team' of ONNX_OPT_TARGETS: {second / 'team.json'} is ignored: the ONNX_OPT_TARGETS: " \
        f"{first / 'team.json'} one comes first" in warnings
    assert f"ONNX_OPT_TARGETS folder {tmp_path / 'missing'} does not exist" in warnings
    code, report, err = optimize(cli, model, tmp_path, "--target", "home")
    assert code == 0 and report["target"] == "home" and report["pipeline"] == ["simplify"], err
    assert "target 'lab' of user config" in err  # every verb that runs passes warns
    code, out, _ = cli("passes", "--json")
    targets = json.loads(out)["targets"]
    assert targets["team"]["source"] == f"ONNX_OPT_TARGETS: {first / 'team.json'}"
    assert targets["ascend310"]["source"] == BUILT_IN
    code, out, _ = cli("passes")
    assert code == 0 and f"target home: simplify  (user config: {tmp_path / 'config'}" in out.replace("\n", "")


def test_a_built_in_cannot_be_shadowed(cli, tmp_path, monkeypatch):
    write(tmp_path / "t", target("ascend310", pipeline=["simplify"]))
    monkeypatch.setenv("ONNX_OPT_TARGETS", str(tmp_path / "t"))
    assert load_target("ascend310").source == BUILT_IN and "transpose-whitelist" in load_target("ascend310").pipeline
    code, _, err = cli("passes")
    assert code == 0 and "target 'ascend310' of ONNX_OPT_TARGETS" in err and "the built-in one comes first" in err


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """An installed distribution (a dist-info on sys.path) whose entry point ships plug910.json."""
    site = tmp_path / "site"
    package = site / "onnx_opt_test_targets"
    write(package, target("plug910", soc_version="Ascend910B1", pipeline=["simplify"]))
    (package / "__init__.py").write_text("")
    info = site / "onnx_opt_test_targets-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: onnx-opt-test-targets\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[onnx_opt.targets]\nshipped = onnx_opt_test_targets\nbroken = onnx_opt_no_such_package\n"
    )
    monkeypatch.syspath_prepend(str(site))
    return package


def test_a_plugin_ships_targets(cli, model, tmp_path, plugin):
    assert target_files()["plug910"].kind == "plugin shipped"
    assert "target plugin 'broken' (onnx_opt_no_such_package) failed to load" in " ".join(target_warnings())
    code, report, err = optimize(cli, model, tmp_path, "--target", "plug910")
    assert code == 0 and report["target"] == "plug910" and report["pipeline"] == ["simplify"], err
    code, out, _ = cli("passes", "--json")
    assert json.loads(out)["targets"]["plug910"]["source"] == f"plugin shipped: {plugin / 'plug910.json'}"


@pytest.mark.parametrize(
    "text, fault",
    [
        ('{"name": "my310",\n  "opsets": [9, 13],}', "invalid JSON at 2:21: Expecting property name enclosed in "
         "double quotes"),
        (json.dumps({k: v for k, v in target().items() if k != "backend"}), "$: 'backend' is a required property"),
        (json.dumps(target(colour="red")), "$: Additional properties are not allowed ('colour' was unexpected)"),
        (json.dumps(target(opsets=[13, 9])), "$.opsets: [13, 9]: low above high"),
        (json.dumps(target(opsets=[9])), "$.opsets: [9] is too short"),
        (json.dumps(target(opsets=[9, "13"])), "$.opsets[1]: '13' is not of type 'integer'"),
        (json.dumps(target(pipeline=["simplify", "softmax-transpose", "fold-x"])),
         "$.pipeline[2]: 'fold-x' is not a registered pass"),
        (json.dumps(target(pipeline=["simplify", 3])), "$.pipeline[1]: 3 is not of type 'string'"),
        (json.dumps(target(backend="tpu")), "$.backend: 'tpu' is not one of ['ascend', 'onnxruntime']"),
        (json.dumps(target(soc_version=310)), "$.soc_version: 310 is not of type 'string', 'null'"),
        (json.dumps(target("other")), "$.name: 'other' differs from the file name my310.json"),
    ],
)
def test_a_bad_target_file_exits_2_with_the_json_path(cli, model, tmp_path, monkeypatch, text, fault):
    folder = tmp_path / "targets"
    path = write(folder, text, name="my310")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ONNX_OPT_TARGETS", str(folder))
    for given, label in (("targets/my310.json", "targets/my310.json"), ("my310", str(path))):
        if given == "targets/my310.json" and "differs from the file name" in fault:
            continue  # a file given by path may hold any name
        code, report, err = optimize(cli, model, tmp_path, "--target", given)
        assert code == 2 and err.strip() == f"onnx-opt: error: {label}: {fault}", err
        assert report is None and not (tmp_path / "o.onnx").exists()


def test_a_missing_target_file(cli, model, tmp_path):
    code, report, err = optimize(cli, model, tmp_path, "--target", tmp_path / "nope.json")
    assert code == 2 and f"--target {tmp_path / 'nope.json'}: cannot read it: No such file" in err
    assert report is None


def test_an_unknown_target_name_names_the_user_ones_too(cli, model, tmp_path, monkeypatch):
    write(tmp_path / "t", target("team"))
    monkeypatch.setenv("ONNX_OPT_TARGETS", str(tmp_path / "t"))
    code, _, err = optimize(cli, model, tmp_path, "--target", "teem")
    assert code == 2 and "unknown target 'teem'; did you mean team?" in err
