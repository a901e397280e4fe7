"""The onnx backend test models that ship with onnx (simple, pytorch-converted, pytorch-operator:
each a model.onnx with inputs and expected outputs) keep their expected outputs through every
target's pipeline, run without verification, so that no pass is dropped for breaking them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from onnx import numpy_helper

from optimizer.manager import PassManager
from optimizer.passapi import PassContext
from optimizer.targets import load_target, target_names
from optimizer.verify import run_onnxruntime

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
CASES = sorted(
    folder for kind in ("simple", "pytorch-converted", "pytorch-operator") for folder in (DATA / kind).iterdir()
    if (folder / "model.onnx").is_file() and (folder / "test_data_set_0").is_dir()
)


def tensors(folder: Path, prefix: str) -> list[np.ndarray]:
    files = sorted(folder.glob(f"{prefix}_*.pb"), key=lambda f: int(f.stem.split("_")[1]))
    return [numpy_helper.to_array(onnx.load_tensor(str(f))) for f in files]


def test_the_backend_models_are_found():
    assert len(CASES) >= 130


@pytest.mark.parametrize("case", CASES, ids=lambda folder: f"{folder.parent.name}/{folder.name}")
def test_every_target_pipeline_keeps_the_expected_outputs(case):
    proto = onnx.load(str(case / "model.onnx"))
    data = case / "test_data_set_0"
    names = [i.name for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    feeds = dict(zip(names, tensors(data, "input"), strict=False))
    expected = tensors(data, "output")
    try:
        reference = run_onnxruntime(ir.serde.deserialize_model(proto), feeds)
    except Exception as exc:  # training ops, sequences onnxruntime lacks: nothing to compare
        pytest.skip(f"onnxruntime cannot run the original: {str(exc)[:80]}")
    assert len(reference) == len(expected)
    for target in target_names():
        ctx = PassContext(load_target(target))
        run = PassManager(list(ctx.target.pipeline), ctx).run(ir.serde.deserialize_model(proto))
        failed = [(r.name, r.reason) for r in run.records if r.status == "failed"]
        actual = run_onnxruntime(run.model, feeds)
        for name, want in zip(actual, expected, strict=True):
            where = f"target {target}, output {name}; failed passes: {failed}"
            if np.issubdtype(want.dtype, np.number):
                np.testing.assert_allclose(actual[name], want, rtol=1e-3, atol=1e-5, err_msg=where)
            else:
                np.testing.assert_array_equal(actual[name], want, err_msg=where)
