"""Numerical verification with onnxruntime: same seeded inputs, every output compared."""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir

from optimizer.errors import UserError
from optimizer.modelio import has_external_data, save_model
from optimizer.shape_inference import not_static

# Default (rtol, atol) by output dtype; integer and boolean outputs must match exactly.
TOLERANCES: dict[str, tuple[float, float]] = {
    "float16": (1e-2, 1e-3),
    "bfloat16": (1e-2, 1e-2),
    "float32": (1e-4, 1e-5),
    "float64": (1e-7, 1e-9),
}
INTEGER_RANGE = (0, 3)  # small and non-negative: safe as indices, token ids and counts
MISSING = "missing from the optimised model"


@dataclass
class InputSpec:
    """A graph input to feed: name, numpy dtype and concrete shape."""

    name: str
    dtype: np.dtype
    shape: list[int]


@dataclass
class OutputCheck:
    """How one output of the optimised model compares with the original's."""

    name: str
    dtype: str
    shape: list[int]
    max_abs_diff: float
    max_rel_diff: float
    cosine: float
    rtol: float
    atol: float
    ok: bool
    problem: str | None = None


@dataclass
class Verification:
    """The verdict over every output, with the inputs used."""

    ok: bool
    outputs: list[OutputCheck]
    inputs: dict[str, list[int]]
    source: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the report."""
        return {
            "ok": self.ok,
            "inputs": self.inputs,
            "source": self.source,
            "outputs": [asdict(check) for check in self.outputs],
        }

    def failures(self) -> list[OutputCheck]:
        """The outputs that did not match."""
        return [check for check in self.outputs if not check.ok]


def input_specs(model: ir.Model, input_shapes: dict[str, list[int]]) -> list[InputSpec]:
    """Inputs to feed, with shapes from ``input_shapes`` or the model's static shapes.

    A dynamic dimension not covered by ``input_shapes`` is a :class:`UserError` naming it.
    """
    specs = []
    for value in model.graph.inputs:
        if value.is_initializer():
            continue
        if value.dtype is None:
            raise UserError(f"input '{value.name}' has no element type")
        dtype = value.dtype.numpy()
        if value.name in input_shapes:
            dims = input_shapes[value.name]
            if value.shape is not None and len(value.shape) != len(dims):
                raise UserError(
                    f"--input-shape gives input '{value.name}' rank {len(dims)}; the model has rank {len(value.shape)}"
                )
        elif reason := not_static(value):
            raise UserError(f"{reason}; give its shape with --input-shape {value.name}:...")
        else:
            dims = [int(d) for d in value.shape]
        specs.append(InputSpec(value.name, dtype, dims))
    return specs


def random_inputs(specs: list[InputSpec], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random inputs of the right dtype: normal floats, small non-negative ints, fair bools."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        if spec.dtype == np.bool_:
            feeds[spec.name] = np.asarray(rng.random(spec.shape) < 0.5)
        elif np.issubdtype(spec.dtype, np.integer):
            feeds[spec.name] = np.asarray(rng.integers(*INTEGER_RANGE, size=spec.shape), dtype=spec.dtype)
        elif np.issubdtype(spec.dtype, np.floating):
            feeds[spec.name] = np.asarray(rng.standard_normal(spec.shape), dtype=spec.dtype)
        else:
            raise UserError(
                f"cannot make random data for input '{spec.name}' of type {spec.dtype}; give --inputs FILE.npz"
            )
    return feeds


def load_inputs(path: Path, specs: list[InputSpec]) -> dict[str, np.ndarray]:
    """Real inputs from an ``.npz`` file keyed by input name, checked against the model."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except Exception as exc:
        raise UserError(
            f"{path}: not a readable .npz file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})"
        ) from None
    feeds = {}
    for spec in specs:
        if spec.name not in arrays:
            raise UserError(f"{path}: no array for input '{spec.name}' (has: {', '.join(arrays) or 'nothing'})")
        array = arrays[spec.name]
        if array.dtype != spec.dtype:
            raise UserError(f"{path}: input '{spec.name}' is {array.dtype}; the model wants {spec.dtype}")
        feeds[spec.name] = array
    return feeds


def run_onnxruntime(model: ir.Model | Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``model`` (in memory, or a file path) in onnxruntime on the CPU; outputs by name."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    with tempfile.TemporaryDirectory(prefix="onnx-opt-verify-") as tmp:
        if isinstance(model, Path):
            source: str | bytes = str(model)
        elif has_external_data(model):
            source = str(save_model(model, Path(tmp) / "model.onnx")[0])
        else:
            source = ir.serde.serialize_model(model).SerializeToString()
        session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        names = [output.name for output in session.get_outputs()]
        return dict(zip(names, session.run(names, feeds), strict=True))


def compare_outputs(
    reference: dict[str, np.ndarray],
    candidate: dict[str, np.ndarray],
    rtol: float | None = None,
    atol: float | None = None,
) -> list[OutputCheck]:
    """Compare every reference output with the candidate's (shapes, dtypes, values)."""
    checks = []
    for name, expected in reference.items():
        dtype = str(expected.dtype)
        default_rtol, default_atol = TOLERANCES.get(dtype, (0.0, 0.0))
        check = OutputCheck(
            name,
            dtype,
            list(expected.shape),
            0.0,
            0.0,
            1.0,
            default_rtol if rtol is None else rtol,
            default_atol if atol is None else atol,
            True,
        )
        actual = candidate.get(name)
        if actual is None:
            check.ok, check.problem = False, MISSING
        elif actual.shape != expected.shape or actual.dtype != expected.dtype:
            check.ok = False
            check.problem = f"{actual.dtype}{list(actual.shape)} instead of {dtype}{list(expected.shape)}"
        else:
            _measure(check, expected, actual)
        checks.append(check)
    return checks


def _measure(check: OutputCheck, expected: np.ndarray, actual: np.ndarray) -> None:
    if expected.size == 0:
        return
    if expected.dtype.kind not in "fc":
        equal = np.array_equal(expected, actual)
        diff = np.abs(expected.astype(np.float64) - actual.astype(np.float64)) if expected.dtype.kind in "iub" else None
        check.max_abs_diff = float(diff.max()) if diff is not None else float(not equal)
        check.ok = bool(equal)
        return
    ref = expected.astype(np.float64)
    out = actual.astype(np.float64)
    nan_ref, nan_out = np.isnan(ref), np.isnan(out)
    if not np.array_equal(nan_ref, nan_out):
        check.ok, check.problem = False, "NaN in different places"
    finite = ~(nan_ref | nan_out)
    ref, out = ref[finite], out[finite]
    if ref.size == 0:
        return
    same = ref == out  # also covers equal infinities
    with np.errstate(invalid="ignore"):
        diff = np.nan_to_num(np.where(same, 0.0, np.abs(ref - out)), nan=np.inf)
    check.max_abs_diff = float(diff.max())
    nonzero = ref != 0  # relative difference where the reference is not 0 (inf if all are 0 and differ)
    if nonzero.any():
        check.max_rel_diff = float((diff[nonzero] / np.abs(ref[nonzero])).max())
    else:
        check.max_rel_diff = 0.0 if check.max_abs_diff == 0 else float("inf")
    finite = np.isfinite(ref) & np.isfinite(out)
    norms = np.linalg.norm(ref[finite]) * np.linalg.norm(out[finite])
    check.cosine = float(np.dot(ref[finite], out[finite]) / norms) if norms > 0 else float(np.array_equal(ref, out))
    check.ok = check.ok and bool(np.all(diff <= check.atol + check.rtol * np.abs(ref)))


def verification(checks: list[OutputCheck], feeds: dict[str, np.ndarray], source: str) -> Verification:
    """Bundle output checks with the inputs that produced them."""
    return Verification(
        ok=all(check.ok for check in checks),
        outputs=checks,
        inputs={name: list(array.shape) for name, array in feeds.items()},
        source=source,
    )
