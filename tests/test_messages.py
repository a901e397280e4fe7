"""Failures say what happened: --strict names the pass, a broken plugin is reported by every verb
that runs passes, and nothing of onnxruntime's native log reaches the terminal."""

import subprocess
import sys
from pathlib import Path

import numpy as np
from helpers import make_model, save
from onnx import helper

from optimizer.passapi import NodePass
from optimizer.testing import registered

ROOT = Path(__file__).resolve().parent.parent


class Explodes(NodePass):
    name = "test-explodes"
    summary = "Test: raises on every Relu"

    def rewrite(self, node, model, ctx):
        if node.op_type == "Relu":
            raise RuntimeError("boom\nsecond line")
        return None


def relu_model(tmp_path):
    model = make_model([helper.make_node("Relu", ["x"], ["y"], name="r")], [("x", [2])], [("y", [2])])
    return save(model, tmp_path / "m.onnx")


def test_strict_names_the_failed_pass_in_one_line(cli, tmp_path):
    source = relu_model(tmp_path)
    with registered(Explodes):
        code, _, err = cli("-q", "optimize", source, "-o", tmp_path / "o.onnx", "--passes", "test-explodes", "--strict")
    assert code == 1
    assert err == "onnx-opt: --strict: pass test-explodes failed: RuntimeError: boom\n"


def broken_plugin_site(tmp_path) -> Path:
    """A distribution whose onnx_opt.passes entry point names a module that does not exist."""
    site = tmp_path / "site"
    info = site / "broken_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[onnx_opt.passes]\nbroken-pass = no_such_module_anywhere\n")
    return site


def test_a_plugin_that_fails_to_load_is_reported_by_every_verb_that_runs_passes(tmp_path):
    source = relu_model(tmp_path)
    env = {"PYTHONPATH": str(broken_plugin_site(tmp_path)), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for args in (
        ["optimize", source, "-o", tmp_path / "o.onnx", "--passes", "none", "--no-verify"],
        ["passes"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "optimizer", *map(str, args)], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == 0, done.stderr
        warnings = [line for line in done.stderr.splitlines() if "warning" in line]
        assert len(warnings) == 1 and "broken-pass" in warnings[0] and warnings[0].startswith("onnx-opt: warning: ")


def test_a_model_onnxruntime_cannot_run_is_one_clean_line_and_exit_2(tmp_path):
    """Its Reshape cannot run: each verb says so in one line, without onnxruntime's native log line
    or the source file and condition of its C++ check."""
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")]
    model = make_model(nodes, [("x", [2, 3])], [("y", [5, 7])], initializers=[("shape", np.array([5, 7], np.int64))])
    source = save(model, tmp_path / "m.onnx")
    for args in (
        ["optimize", source, "-o", tmp_path / "o.onnx"],
        ["bench", source, source],
        ["profile", source, "-o", tmp_path / "profile"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "optimizer", *map(str, args)], capture_output=True, text=True, timeout=120, cwd=ROOT
        )
        assert done.returncode == 2, (args[0], done.stderr)
        assert done.stderr.count("\n") == 1 and "[E:onnxruntime" not in done.stderr, done.stderr
        assert "cannot be reshaped" in done.stderr and "reshape_helper.h" not in done.stderr, done.stderr


class RenameNothing(NodePass):
    """Test pass: 'changes' every Relu (turns it into Relu again) so its node name is printed."""

    name = "test-touch-relu"
    summary = "Test: touch every Relu"

    def rewrite(self, node, model, ctx):
        if node.op_type != "Relu":
            return None
        from optimizer.passapi import Change

        node.op_type = "Relu"
        return Change("touched", (node.name,))


def test_hostile_node_names_are_printed_literally(cli, tmp_path):
    """A node named like rich markup or holding a terminal escape: -v prints it as it is."""
    names = ["[/x]", "\x1b[31mred", "[bold]b"]
    nodes = [helper.make_node("Relu", [f"v{i}"], [f"v{i + 1}"], name=name) for i, name in enumerate(names)]
    model = make_model(nodes, [("v0", [2])], [("v3", [2])])
    source = save(model, tmp_path / "m.onnx")
    with registered(RenameNothing):
        code, out, err = cli("-v", "optimize", source, "-o", tmp_path / "o.onnx", "--passes", "test-touch-relu")
    assert code == 0, err
    assert "[/x], \\x1b[31mred, [bold]b" in out and "\x1b" not in out
