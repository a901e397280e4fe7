"""Fixtures: fake Ascend tools first on PATH, a fake toolkit folder, small ONNX models, the CLI."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
FAKES = Path(__file__).parent.parent / "fakes"
MSPROF_PY = "tools/profiler/profiler_tool/analysis/msprof/msprof.py"


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No real toolkit can leak in: no Ascend variables, no default toolkit path, no fake settings."""
    from optimizer.toolchain import environment

    for name in list(os.environ):
        if name.startswith(("ASCEND_", "FAKE_")) or name in ("TUNE_BANK_PATH", "PYTHONPATH"):
            monkeypatch.delenv(name)
    monkeypatch.setattr(environment, "DEFAULT_HOME", tmp_path / "no-default-toolkit")
    monkeypatch.setenv("FAKE_CALLS", str(tmp_path / "calls.jsonl"))
    monkeypatch.setenv("FAKE_PIDFILE", str(tmp_path / "child.pid"))


@pytest.fixture
def data() -> Path:
    """The copied sample logs and profiles."""
    return DATA


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    """Put fakes first on PATH: ``fake_tools("atc", "msprof")``; ``"benchmark"`` is linked as benchmark.<arch>."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")

    def install(*names: str) -> Path:
        for name in names:
            link = f"benchmark.{platform.machine()}" if name == "benchmark" else name
            (folder / link).symlink_to(FAKES / name)
        return folder

    return install


@pytest.fixture
def ais_bench(monkeypatch):
    """Make ``python3 -m ais_bench`` the fake."""
    monkeypatch.setenv("PYTHONPATH", str(FAKES))


@pytest.fixture
def calls(tmp_path):
    """The calls the fakes recorded, in order: ``calls()`` -> [{"tool", "argv", "cwd", "env"}]."""

    def read() -> list[dict]:
        path = tmp_path / "calls.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    return read


@pytest.fixture
def toolkit(tmp_path, monkeypatch):
    """A toolkit folder like /usr/local/Ascend/ascend-toolkit/latest with an install info and set_env.sh.

    ``toolkit("5.0.2", legacy_msprof=True)`` also links the fake msprof.py where CANN 5 keeps it.
    The fakes imitate the same version (FAKE_CANN_VERSION).
    """

    def make(version: str | None = "7.0.0", *, legacy_msprof: bool = False) -> Path:
        root = tmp_path / "Ascend" / "ascend-toolkit"
        home = root / "latest"
        info = home / f"{platform.machine()}-linux" / "ascend_toolkit_install.info"
        info.parent.mkdir(parents=True)
        if version is not None:
            info.write_text(f"package_name=Ascend-cann-toolkit\nversion={version}\narch={platform.machine()}\n")
            monkeypatch.setenv("FAKE_CANN_VERSION", version)
        (root / "set_env.sh").write_text(
            f"export ASCEND_TOOLKIT_HOME={home}\n"
            "export LD_LIBRARY_PATH=${ASCEND_TOOLKIT_HOME}/lib64:$LD_LIBRARY_PATH\n"
            "export ASCEND_OPP_PATH=${ASCEND_TOOLKIT_HOME}/opp\n"
            'export TOOLCHAIN_HOME="${ASCEND_TOOLKIT_HOME}/toolkit"\n'
        )
        if legacy_msprof:
            script = home / MSPROF_PY
            script.parent.mkdir(parents=True)
            script.symlink_to(FAKES / "msprof.py")
        monkeypatch.setenv("ASCEND_TOOLKIT_HOME", str(home))
        return home

    return make


@pytest.fixture
def onnx_model(tmp_path):
    """A small ONNX file: ``onnx_model()`` image:1,3,8,8 -> Transpose(0,1,3,2) -> Relu; ``batch="N"`` is dynamic."""
    from onnx import TensorProto, helper, save_model

    def make(name: str = "net.onnx", batch: int | str = 1, size: tuple[int, int] = (8, 8)) -> Path:
        height, width = size
        graph = helper.make_graph(
            [
                helper.make_node("Transpose", ["image"], ["t"], name="Transpose_0", perm=[0, 1, 3, 2]),
                helper.make_node("Relu", ["t"], ["out"], name="Relu_1"),
            ],
            "net",
            [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, height, width])],
            [helper.make_tensor_value_info("out", TensorProto.FLOAT, [batch, 3, width, height])],
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=10)
        path = tmp_path / name
        save_model(model, path)
        return path

    return make


@pytest.fixture
def cli(capsys):
    """Run ``onnx-opt ARGS``; returns (exit status, stdout, stderr)."""
    from optimizer.cli import run

    def invoke(*args: str) -> tuple[int, str, str]:
        status = run([str(arg) for arg in args])
        out, err = capsys.readouterr()
        return status, out, err

    return invoke


@pytest.fixture
def gone():
    """``gone(pid)``: whether process ``pid`` has ended (a zombie awaiting its reaper counts).

    The 60 s bound only guards against a hang; nothing is asserted about how fast it ends."""

    def check(pid: int, seconds: float = 60.0) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except FileNotFoundError:
                return True
            if state == "Z":
                return True
            time.sleep(0.05)
        return False

    return check
