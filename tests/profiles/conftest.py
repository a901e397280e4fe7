"""Shared fixtures: the copied sample files and a real onnxruntime profile."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data"
ORT_RUNS = 5


@pytest.fixture
def data() -> Path:
    """The folder of sample files copied unchanged from shared/formats."""
    return DATA


@pytest.fixture
def place(tmp_path):
    """Copy a sample file to tmp_path/<relative path> (creating folders) and return the new path."""

    def _place(sample: str, relative: str) -> Path:
        target = tmp_path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DATA / sample, target)
        return target

    return _place


@pytest.fixture
def ort_runs() -> int:
    """How many times `ort_profile` ran the model."""
    return ORT_RUNS


@pytest.fixture(scope="session")
def ort_profile(tmp_path_factory) -> Path:
    """A profile written by onnxruntime for a 3-node model (MatMul, Transpose, Relu) run 5 times."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.full((8, 6), 0.5, dtype=np.float32), "w")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["m"], name="MatMul_0"),
            helper.make_node("Transpose", ["m"], ["t"], name="Transpose_1", perm=[1, 0]),
            helper.make_node("Relu", ["t"], ["y"], name="Relu_2"),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [6, 4])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    folder = tmp_path_factory.mktemp("ort")
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(folder / "ort")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    for _ in range(ORT_RUNS):
        session.run(None, {"x": np.ones((4, 8), dtype=np.float32)})
    return Path(session.end_profiling())
