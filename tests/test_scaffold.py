"""``onnx-opt new-pass``: what it writes works as written (its test passes, ruff is clean), its test
fails once the rewrite is broken, the plugin installs and runs, and bad input writes nothing."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from optimizer.testing import pattern_model

ROOT = Path(__file__).resolve().parent.parent
# The composition line of the written rewrite, and a wrong one (right only when the perms commute).
RIGHT = {"node": "perm = [first[axis] for axis in second]", "rule": "perm = [first[axis] for axis in second]"}
WRONG = {"node": "perm = [second[axis] for axis in first]", "rule": "perm = [second[axis] for axis in first]"}


def run(args: list[str], cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(pythonpath) if pythonpath else "")
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def pytest_in(folder: Path, tests: Path, pythonpath: Path) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)], folder, pythonpath)


@pytest.mark.parametrize("style", ["node", "rule"])
def test_the_plugin_it_writes_passes_its_own_test_and_fails_it_once_broken(cli, tmp_path, style):
    plugin = tmp_path / "fold"
    code, out, err = cli("new-pass", "fold-double-transpose", "--plugin", plugin, "--style", style)
    assert code == 0, err
    module = plugin / "onnx_opt_fold_double_transpose" / "fold_double_transpose.py"
    test = plugin / "tests" / "test_fold_double_transpose.py"
    assert {p.relative_to(plugin).as_posix() for p in plugin.rglob("*") if p.is_file()} == {
        "pyproject.toml", "README.md", "onnx_opt_fold_double_transpose/__init__.py",
        "onnx_opt_fold_double_transpose/fold_double_transpose.py", "tests/test_fold_double_transpose.py",
    }
    assert f"-m pip install --no-build-isolation -e {plugin}" in out
    lint = run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], plugin)  # the plugin's own settings
    assert lint.returncode == 0, lint.stdout
    passed = pytest_in(tmp_path, test, plugin)
    assert passed.returncode == 0, passed.stdout[-3000:]
    assert "6 passed" in passed.stdout
    source = module.read_text()
    assert source.count(RIGHT[style]) == 1
    module.write_text(source.replace(RIGHT[style], WRONG[style]))
    broken = pytest_in(tmp_path, test, plugin)
    assert broken.returncode == 1, broken.stdout[-3000:]
    assert "test_two_transposes_become_one FAILED" in broken.stdout or "1 failed" in broken.stdout
    assert "the onnx checker refuses" in broken.stdout or "changed the outputs" in broken.stdout


def test_in_a_checkout_it_writes_the_pass_its_test_and_docs_and_the_entry_point(cli, tmp_path, monkeypatch):
    checkout = tmp_path / "onnx-opt"
    (checkout / "passes").mkdir(parents=True)
    (checkout / "passes" / "__init__.py").write_text("")
    for name in ("setup.cfg", "ruff.toml"):
        shutil.copy(ROOT / name, checkout / name)
    for package in ("optimizer", "profiles"):  # the rest of the checkout, as it is
        (checkout / package).symlink_to(ROOT / package)
    (checkout / "tests").mkdir()
    monkeypatch.chdir(checkout / "tests")  # anywhere inside the checkout
    code, out, err = cli("new-pass", "fold-double-transpose")
    assert code == 0, err
    for written in ("passes/fold_double_transpose.py", "tests/passes/test_fold_double_transpose.py",
                    "docs/passes/fold-double-transpose.md"):
        assert (checkout / written).is_file(), written
    config = (checkout / "setup.cfg").read_text()
    assert config.replace("    fold-double-transpose = passes.fold_double_transpose\n", "") == (
        ROOT / "setup.cfg"
    ).read_text()
    parsed = configparser.ConfigParser()
    parsed.read_string(config)
    points = parsed["options.entry_points"]["onnx_opt.passes"].split("\n")
    assert points[-1] == "fold-double-transpose = passes.fold_double_transpose"  # in the list, at its end
    lint = run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], checkout)  # the project's settings
    assert lint.returncode == 0, lint.stdout
    passed = pytest_in(checkout, checkout / "tests" / "passes" / "test_fold_double_transpose.py", checkout)
    assert passed.returncode == 0, passed.stdout[-3000:]
    code, _, err = cli("new-pass", "fold-double-transpose")
    assert code == 2 and "exists already; nothing written" in err


def test_the_installed_plugin_is_listed_and_runs_in_a_targets_pipeline(cli, tmp_path):
    """The issue's 'done means': new-pass, install, see it in `passes`, add it to ascend310's
    pipeline with --passes +NAME, and optimize applies and verifies it."""
    plugin, site = tmp_path / "fold", tmp_path / "site"
    assert cli("new-pass", "fold-double-transpose", "--plugin", plugin)[0] == 0
    install = run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                   "--target", str(site), str(plugin)], tmp_path)
    assert install.returncode == 0, install.stderr
    onnx_opt = [sys.executable, "-m", "optimizer"]
    listed = run([*onnx_opt, "passes", "--json"], tmp_path, site)
    assert listed.returncode == 0, listed.stderr
    passes = {p["name"]: p for p in json.loads(listed.stdout)["passes"]}
    assert passes["fold-double-transpose"]["module"] == "onnx_opt_fold_double_transpose.fold_double_transpose"

    def transposes(op, x):
        return op.Relu(op.Transpose(op.Transpose(x, perm=[0, 2, 3, 1]), perm=[0, 2, 3, 1]))

    model = tmp_path / "model.onnx"
    model.write_bytes(pattern_model(transposes, {"x": [1, 3, 8, 8]}, opset=11).SerializeToString())
    result = run([*onnx_opt, "optimize", str(model), "-o", str(tmp_path / "out.onnx"), "--target", "ascend310",
                  # simplify (onnxscript's optimizer) folds Transpose pairs itself: leave it out to see ours
                  "--passes", "+fold-double-transpose,-simplify", "--report", str(tmp_path / "report.json")],
                 tmp_path, site)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    # the white list is an analysis of the saved model: it runs after the added pass
    assert report["pipeline"][-2:] == ["fold-double-transpose", "transpose-whitelist"]
    assert "simplify" not in report["pipeline"]
    records = {r["name"]: r for r in report["passes"]}
    assert records["fold-double-transpose"]["status"] == "changed"
    assert records["fold-double-transpose"]["changes"] == 1
    assert records["transpose-whitelist"]["findings"]["transpose_shapes"] == [[1, 3, 8, 8]]
    assert report["verification"]["ok"] is True


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Fold_Transposes", "--plugin", "p"], "is not a kebab-case pass name"),
        (["softmax-transpose", "--plugin", "p"], "pass 'softmax-transpose' already exists (passes.softmax_transpose)"),
        (["fold-x", "--plugin", "busy"], "exists and is not an empty folder"),
        (["fold-x"], "not inside a checkout of onnx-opt: give --plugin DIR"),
        (["fold-x", "--plugin", "p", "--style", "graph"], "Invalid value for '--style'"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    code, out, err = cli("new-pass", *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["busy", "keep.txt"]
