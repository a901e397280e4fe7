"""docs/pass-authoring.md says what the code does: its commands run as written, its code is the
code ``new-pass`` writes, and its signatures are those of the code."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "pass-authoring.md"


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", GUIDE.read_text(), re.S)


def resolve(qualified: str):
    parts = qualified.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            obj = getattr(obj, part)
        return obj
    raise ImportError(qualified)


def test_the_reference_signatures_are_those_of_the_code():
    [reference] = blocks("text")
    lines = reference.strip().splitlines()
    assert len(lines) >= 15
    for line in lines:
        name = line.split("(", 1)[0]
        actual = name + str(inspect.signature(resolve(name))).replace("'", "")
        assert line == actual


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A stand-in for a checkout of onnx-opt after ``bin/setup``, whose venv installs into itself:
    a new venv that sees the project venv's packages, the checkout's bin/ and examples/."""
    sandbox = tmp_path / "onnx-opt"
    (sandbox / "bin").mkdir(parents=True)
    shutil.copy(ROOT / "bin" / "onnx-opt", sandbox / "bin" / "onnx-opt")
    (sandbox / "examples").symlink_to(ROOT / "examples")
    venv = sandbox / ".venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    Path(purelib, "onnx_opt_project.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_path('purelib')!r})\n"
    )
    script = venv / "bin" / "onnx-opt"
    script.write_text(f"#!{python}\nimport sys\nfrom optimizer.cli import main\nsys.exit(main())\n")
    script.chmod(0o755)
    return sandbox


def test_every_command_runs_as_written(checkout):
    commands = [shlex.split(line) for block in blocks("sh") for line in block.strip().splitlines()]
    assert [c[0] for c in commands] == ["bin/onnx-opt", ".venv/bin/python", "bin/onnx-opt", ".venv/bin/python",
                                        "bin/onnx-opt"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    outputs = []
    for command in commands:
        done = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{shlex.join(command)}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        outputs.append(done.stdout)
    assert '"module": "onnx_opt_fold_double_transpose.fold_double_transpose"' in outputs[2]
    assert "6 passed" in outputs[3]
    assert "explain fold-double-transpose:" in outputs[4]
    assert "dry run: nothing written" in outputs[4]
    assert sorted(p.name for p in checkout.iterdir()) == [".venv", "bin", "examples"]  # the plugin went to ../fold


@pytest.mark.parametrize(("style", "index"), [("node", 1), ("rule", 2)])
def test_the_code_shown_is_the_code_new_pass_writes(cli, tmp_path, style, index):
    assert cli("new-pass", "fold-double-transpose", "--plugin", tmp_path / "p", "--style", style)[0] == 0
    written = (tmp_path / "p" / "onnx_opt_fold_double_transpose" / "fold_double_transpose.py").read_text()
    shown = blocks("python")[index]
    assert shown in written
