import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_model, op_types, save
from onnx import helper

from optimizer.errors import UserError
from optimizer.passapi import Pass, PassResult
from optimizer.registry import all_passes, get_pass, register_pass

BUILT_INS = {"simplify", "softmax-transpose", "decompose-depth-to-space", "fuse-depth-to-space", "transpose-whitelist"}
ROOT = Path(__file__).resolve().parent.parent


def test_built_ins_are_found_through_the_entry_point_group():
    passes = all_passes()
    assert set(passes) >= BUILT_INS
    for name in BUILT_INS:
        cls = passes[name]
        assert cls.name == name and cls.summary and "\n" not in cls.summary
        assert isinstance(cls.addresses, tuple) and cls.addresses


@pytest.mark.parametrize("name", ["Fuse_Gelu", "fuse gelu", "-fuse", "fuse--gelu", "", None, 3])
def test_names_must_be_kebab_case(name):
    with pytest.raises(TypeError, match="kebab-case"):
        register_pass(type("Bad", (Pass,), {"name": name, "summary": "x"}))


def test_summary_and_addresses_are_checked():
    with pytest.raises(TypeError, match="one non-empty line"):
        register_pass(type("Bad", (Pass,), {"name": "bad-summary", "summary": "two\nlines"}))
    with pytest.raises(TypeError, match="tuple of op type"):
        register_pass(type("Bad", (Pass,), {"name": "bad-addresses", "summary": "x", "addresses": "Conv"}))


def test_unknown_pass_names_close_matches():
    with pytest.raises(UserError, match="unknown pass 'softmax-transpos'; did you mean softmax-transpose"):
        get_pass("softmax-transpos")
    with pytest.raises(UserError, match="onnx-opt passes' lists them"):
        get_pass("zzzzzz")


def test_unknown_pass_on_the_command_line_exits_2(cli, examples, tmp_path):
    code, out, err = cli("optimize", examples / "srnet_opset9.onnx", "-o", tmp_path / "o.onnx", "--passes", "simplfy")
    assert code == 2
    assert err.strip() == "onnx-opt: error: unknown pass 'simplfy'; did you mean simplify?"
    assert not (tmp_path / "o.onnx").exists()


def test_a_clashing_name_keeps_the_first_and_warns():
    class First(Pass):
        name = "test-clash"
        summary = "first"

        def run(self, model, ctx):
            return PassResult(model)

    class Second(First):
        summary = "second"

    from optimizer.registry import load_warnings, registered

    with registered(First, Second):
        assert get_pass("test-clash") is First
        assert any("test-clash" in w and "keeping" in w for w in load_warnings())
    assert "test-clash" not in all_passes()
    assert not any("test-clash" in w for w in load_warnings())


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """Install the example plugin package (examples/plugin) into a folder of its own, from a
    copy, so that the build leaves nothing (build/, egg-info) in the checkout."""
    site = tmp_path_factory.mktemp("site")
    source = shutil.copytree(ROOT / "examples" / "plugin", tmp_path_factory.mktemp("plugin") / "plugin")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    return site


def _onnx_opt(args, site, tmp_path):
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    return subprocess.run(
        [sys.executable, "-m", "optimizer", *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )


def test_an_installed_plugin_is_listed_and_applied(plugin_site, tmp_path):
    listing = _onnx_opt(["passes", "--json"], plugin_site, tmp_path)
    assert listing.returncode == 0, listing.stderr
    passes = {p["name"]: p for p in json.loads(listing.stdout)["passes"]}
    assert passes["drop-identity"]["module"] == "onnx_opt_drop_identity"
    assert set(passes) >= BUILT_INS

    model = make_model(
        [
            helper.make_node("Identity", ["x"], ["a"], name="id1"),
            helper.make_node("Relu", ["a"], ["b"], name="relu"),
            helper.make_node("Identity", ["b"], ["y"], name="id2"),
        ],
        [("x", [2, 3])],
        [("y", [2, 3])],
    )
    source = save(model, tmp_path / "m.onnx")
    result = _onnx_opt(
        ["optimize", source, "-o", tmp_path / "o.onnx", "--passes", "drop-identity", "--report", tmp_path / "r.json"],
        plugin_site,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert op_types(tmp_path / "o.onnx") == ["Relu"]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["passes"][0]["changed_nodes"] == ["id1", "id2"]
    assert report["verification"]["ok"] is True


def test_the_installed_example_plugins_own_tests_pass_with_the_kit(plugin_site, tmp_path):
    """examples/plugin/tests use optimizer.testing only (no onnx-opt test helpers); they run
    against the installed package, not the source folder."""
    tests = shutil.copytree(ROOT / "examples" / "plugin" / "tests", tmp_path / "tests")
    env = dict(os.environ, PYTHONPATH=str(plugin_site))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "3 passed" in done.stdout
