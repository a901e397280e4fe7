"""Shared fixtures: real models exported with plain torch (once per session), CLI runner."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings

# Nothing of hypothesis's in the checkout (example database, caches): the suite leaves the tree
# as it found it.
os.environ.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", os.path.join(tempfile.gettempdir(), "onnx-opt-hypothesis"))
# The suite draws the same examples on every run, so a red CI is reproducible; ONNX_OPT_HYPOTHESIS=explore
# draws fresh ones (with --hypothesis-seed=N to repeat a draw), to hunt for cases the fixed draw misses.
settings.register_profile("onnx-opt", database=None, derandomize=True)
settings.register_profile("explore", database=None, derandomize=False)
settings.load_profile(os.environ.get("ONNX_OPT_HYPOTHESIS", "onnx-opt"))

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def torch_model(tmp_path_factory):
    """Factory: ``torch_model("srnet", 9, scale=3)`` exports once per session and returns the path."""
    from torch_models import build

    folder = tmp_path_factory.mktemp("torch-models")
    cache: dict[tuple, Path] = {}

    def make(name: str, opset: int, *, dynamic_batch: bool = False, scale: int = 2) -> Path:
        key = (name, opset, dynamic_batch, scale)
        if key not in cache:
            stem = f"{name}_x{scale}_opset{opset}{'_dyn' if dynamic_batch else ''}"
            cache[key] = build(name, opset, folder / f"{stem}.onnx", dynamic_batch=dynamic_batch, scale=scale)
        return cache[key]

    return make


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: ``code, out, err = cli("optimize", ...)``."""
    from optimizer.cli import run

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke


@pytest.fixture
def examples() -> Path:
    """The bundled example models."""
    return ROOT / "examples"
