"""Numerical verification with onnxruntime: same seeded inputs, every output compared."""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx_ir as ir

from optimizer.errors import UserError
from optimizer.modelio import EXTERNAL_DATA_THRESHOLD, VERIFY_PREFIX, external_tensors, save_model, weight_bytes
from optimizer.proto_stream import write_model
from optimizer.shape_inference import not_static
from optimizer.shapes import check_shape
from profiles.atomic import staging_folder

# Default (rtol, atol) by output dtype (numpy / ml_dtypes name). Complex values are compared by
# the modulus of the difference, like the float of their parts. 8- and 4-bit floats: one step of
# the format (its epsilon) relative, its smallest subnormal absolute. Every dtype not listed here
# (integers, booleans, strings, other exotic types) must match exactly.
TOLERANCES: dict[str, tuple[float, float]] = {
    "float16": (1e-2, 1e-3),
    "bfloat16": (1e-2, 1e-2),
    "float32": (1e-4, 1e-5),
    "float64": (1e-7, 1e-9),
    "complex64": (1e-4, 1e-5),
    "complex128": (1e-7, 1e-9),
    "float8_e4m3fn": (2**-3, 2**-9),
    "float8_e4m3fnuz": (2**-3, 2**-10),
    "float8_e5m2": (2**-2, 2**-16),
    "float8_e5m2fnuz": (2**-2, 2**-17),
    "float4_e2m1fn": (2**-1, 2**-1),
}
EXACT = "exact"
WITHIN_TOLERANCE = "|a - b| <= atol + rtol * |a|"
INTEGER_RANGE = (0, 3)  # small and non-negative: safe as indices, token ids and counts
INPUT_MEMORY_SHARE = 0.25  # random inputs may take this share of the memory available
FALLBACK_MEMORY = 8 * 1024**3  # assumed available when the system does not say
MISSING = "missing from the optimised model"
# onnxruntime's Python binding turns these tensor types into numpy arrays; any other tensor type
# (bfloat16, float8, int4, ...) is read from the raw buffer. float8e4m3fn would come back as uint8.
_NUMPY_TENSOR_TYPES = {
    f"tensor({name})"
    for name in ("float", "double", "float16", "bool", "string", "int8", "int16", "int32", "int64")
    + ("uint8", "uint16", "uint32", "uint64")
}


@dataclass
class InputSpec:
    """A graph input: name, numpy dtype and shape.

    From :func:`input_specs` the shape is concrete. From :func:`declared_inputs` it is as the
    model declares it: a dynamic dim is its symbol (str) or None, and the shape is None when the
    model gives none.
    """

    name: str
    dtype: np.dtype
    shape: list[int | str | None] | None


@dataclass
class OutputCheck:
    """How one output of the optimised model compares with the original's.

    ``rule`` is :data:`EXACT` (rtol and atol are then 0) or :data:`WITHIN_TOLERANCE`. A sequence
    or map output is one check over its elements: dtype ``sequence(float32)`` or ``map``, shape
    ``[length]``, the largest differences and the smallest cosine of its elements.
    """

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
    rule: str = WITHIN_TOLERANCE
    run: int = 0  # which input set, when a model is verified on several


def input_specs(model: ir.Model, input_shapes: dict[str, list[int]]) -> list[InputSpec]:
    """Inputs to feed, with shapes from ``input_shapes`` or the model's static shapes.

    A dynamic dimension not covered by ``input_shapes``, and a shape that contradicts the
    model's (rank, static sizes), is a :class:`UserError` naming it.
    """
    specs = []
    for spec, value in zip(declared_inputs(model), _fed_inputs(model), strict=True):
        if spec.name in input_shapes:
            dims = input_shapes[spec.name]
            check_shape(spec.name, spec.shape, dims, "--input-shape")
        elif reason := not_static(value):
            raise UserError(f"{reason}; give its shape with --input-shape {spec.name}:...")
        else:
            dims = list(spec.shape)
        specs.append(InputSpec(spec.name, spec.dtype, list(dims)))
    return specs


def declared_inputs(model: ir.Model) -> list[InputSpec]:
    """The inputs to feed with their shapes as declared (dynamic dims as str or None)."""
    specs = []
    for value in _fed_inputs(model):
        if value.dtype is None:
            raise UserError(f"input '{value.name}' has no element type")
        shape = None if value.shape is None else [d if isinstance(d, int) else d.value for d in value.shape]
        specs.append(InputSpec(value.name, value.dtype.numpy(), shape))
    return specs


def _fed_inputs(model: ir.Model) -> list[ir.Value]:
    return [value for value in model.graph.inputs if not value.is_initializer()]


def random_inputs(specs: list[InputSpec], seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded random inputs of the right dtype: normal floats, small non-negative ints, fair bools.

    Each is drawn in its own dtype (float16, bfloat16 and the 8-bit floats from float32), after
    :func:`check_input_memory` has refused inputs too large to allocate.
    """
    rng = np.random.default_rng(seed)
    for spec in specs:
        if spec.shape is None or not all(isinstance(dim, int) for dim in spec.shape):
            raise UserError(f"input '{spec.name}' has no concrete shape {_dims(spec.shape)}")
    check_input_memory(specs)
    feeds = {}
    for spec in specs:
        if spec.dtype == np.bool_:
            feeds[spec.name] = rng.integers(0, 2, size=spec.shape, dtype=np.bool_)
        elif np.issubdtype(spec.dtype, np.integer):
            feeds[spec.name] = rng.integers(*INTEGER_RANGE, size=spec.shape, dtype=spec.dtype)
        elif spec.dtype in (np.float32, np.float64):
            feeds[spec.name] = rng.standard_normal(spec.shape, dtype=spec.dtype)
        elif np.issubdtype(spec.dtype, np.floating) or str(spec.dtype) in TOLERANCES:
            drawn = np.float64 if spec.dtype == np.complex128 else np.float32
            feeds[spec.name] = rng.standard_normal(spec.shape, dtype=drawn).astype(spec.dtype)
        else:
            raise UserError(
                f"cannot make random data for input '{spec.name}' of type {spec.dtype}; give --inputs FILE.npz"
            )
    return feeds


def check_input_memory(specs: list[InputSpec]) -> None:
    """Refuse, before allocating anything, concrete inputs that together need more than
    :data:`INPUT_MEMORY_SHARE` of the memory available (one line naming the largest)."""
    sizes = {spec.name: math.prod(spec.shape) * max(spec.dtype.itemsize, 4) for spec in specs}  # with the draw
    total, limit = sum(sizes.values()), available_memory() * INPUT_MEMORY_SHARE
    if total <= limit:
        return
    name = max(sizes, key=sizes.__getitem__)
    spec = next(spec for spec in specs if spec.name == name)
    what = f"input '{name}' at shape {_dims(spec.shape)} ({spec.dtype}) needs {_size(sizes[name])}"
    if len(sizes) > 1:
        what = f"the random inputs need {_size(total)} ({what})"
    raise UserError(
        f"{what}, more than the {_size(limit)} they may take ({INPUT_MEMORY_SHARE:.0%} of the memory available): "
        "give smaller dims (--input-shape, --verify-shape)"
    )


def available_memory() -> int:
    """Bytes of memory available: MemAvailable (Linux), within the cgroup's limit when there is one."""
    available = FALLBACK_MEMORY
    with contextlib.suppress(OSError, ValueError, StopIteration):
        meminfo = Path("/proc/meminfo").read_text().splitlines()
        available = int(next(line for line in meminfo if line.startswith("MemAvailable:")).split()[1]) * 1024
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            available = min(available, int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    return available


def _size(nbytes: float) -> str:
    return f"{nbytes / 1024**3:.1f} GiB" if nbytes >= 1024**3 else f"{nbytes / 1024**2:.1f} MiB"


def load_inputs(path: Path, specs: list[InputSpec]) -> dict[str, np.ndarray]:
    """Real inputs from an ``.npz`` file keyed by input name, checked against the model.

    ``specs`` may be concrete (:func:`input_specs`) or declared (:func:`declared_inputs`): each
    array must have the input's dtype and rank, and its size on every static dim.
    """
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
        if spec.shape is not None and (
            array.ndim != len(spec.shape)
            or any(isinstance(want, int) and want != got for want, got in zip(spec.shape, array.shape, strict=True))
        ):
            raise UserError(
                f"{path}: input '{spec.name}' has shape {list(array.shape)}; the model wants {_dims(spec.shape)}"
            )
        feeds[spec.name] = array
    return feeds


def _dims(shape: list[int | str | None] | None) -> str:
    if shape is None:
        return "(the model gives no shape)"
    return "[" + ", ".join("?" if dim is None else str(dim) for dim in shape) + "]"


def run_onnxruntime(model: ir.Model | Path, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    """Run ``model`` (in memory, or a file path) in onnxruntime on the CPU; outputs by name.

    A tensor output is a numpy array (bfloat16, float8 and 4-bit types as ml_dtypes arrays), a
    sequence a list, a map a dict, an empty optional None. Inputs may be ml_dtypes arrays.
    """
    with onnxruntime_runner(model) as run:
        return run(feeds)


@contextlib.contextmanager
def onnxruntime_runner(
    model: ir.Model | Path, threads: int | None = None
) -> Iterator[Callable[[dict[str, Any]], dict[str, Any]]]:
    """One onnxruntime CPU session on ``model``, as a function from feeds to outputs by name
    (as :func:`run_onnxruntime` returns them), to run it on several inputs; ``threads``: its
    intra-op threads (default: onnxruntime's, one per core)."""
    from optimizer.ort_session import cpu_session, onnxruntime, session_options

    options = session_options(graph_optimization_level=onnxruntime().GraphOptimizationLevel.ORT_DISABLE_ALL)
    if threads is not None:
        options.intra_op_num_threads = threads
    with session_source(model, options) as source:
        session = cpu_session(source, options)
        yield lambda feeds: _run(session, feeds)


@contextlib.contextmanager
def session_source(model: ir.Model | Path, options: Any) -> Iterator[str | bytes]:
    """What to give ``onnxruntime.InferenceSession`` for ``model``: a file's path; for an in-memory
    model with external weights its bytes, the weights read where they lie (``options`` is told
    the folder), or when that cannot be (weights in several folders, or too large to serialise) a
    copy; an in-memory model with inline weights is streamed to a file (:mod:`optimizer.proto_stream`).
    Copies go to a staging folder of the temporary folder, removed on every exit path."""
    if isinstance(model, Path):
        yield str(model)
    elif folder := _data_folder(model):
        options.add_session_config_entry("session.model_external_initializers_file_folder_path", folder)
        yield ir.serde.serialize_model(model).SerializeToString()
    elif any(True for _ in external_tensors(model)):
        with staging_folder(tempfile.gettempdir(), VERIFY_PREFIX) as tmp:
            yield str(save_model(model, tmp / "model.onnx")[0])
    else:  # streamed to a file: no copy of the weights in memory (onnxruntime reads its own)
        with staging_folder(tempfile.gettempdir(), VERIFY_PREFIX) as tmp:
            with open(tmp / "model.onnx", "wb") as file:
                write_model(model, file)
            yield str(tmp / "model.onnx")


def _data_folder(model: ir.Model) -> str | None:
    """The one folder the model's external tensors live in, when it has some and the rest of its
    weights fit in one serialised message; else None."""
    external = list(external_tensors(model))
    folders = {os.path.abspath(tensor.base_dir) for tensor in external}
    if len(folders) != 1 or weight_bytes(model) - sum(t.nbytes for t in external) > EXTERNAL_DATA_THRESHOLD:
        return None
    return folders.pop()


def _run(session: Any, feeds: dict[str, Any]) -> dict[str, Any]:
    """Outputs of types numpy lacks are fetched as OrtValues, in a second run when others need the first."""
    names = [output.name for output in session.get_outputs()]
    raw = [output.name for output in session.get_outputs() if _needs_raw_read(output.type)]
    plain = [name for name in names if name not in raw]
    inputs = {name: _ort_input(array) for name, array in feeds.items()}
    results = dict(zip(plain, session.run(plain, inputs), strict=True)) if plain else {}
    if raw:
        values = {name: _ort_value(array) for name, array in inputs.items()}
        results.update(zip(raw, map(_array_of, session.run_with_ort_values(raw, values)), strict=True))
    return {name: results[name] for name in names}


def _needs_raw_read(ort_type: str) -> bool:
    return ort_type.startswith("tensor(") and ort_type not in _NUMPY_TENSOR_TYPES


def _ort_input(array: Any) -> Any:
    """bfloat16 and float8 arrays as OrtValues: onnxruntime cannot take them as numpy arrays."""
    import onnxruntime as ort

    if isinstance(array, np.ndarray) and array.dtype.kind == "V":
        data_type = ir.DataType.from_numpy(array.dtype)
        if data_type.bitwidth >= 8:  # 4-bit types would need packing: left to onnxruntime to refuse
            bits = np.ascontiguousarray(array).view(f"uint{data_type.bitwidth}")
            return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(bits, data_type.value)
    return array


def _ort_value(array: Any) -> Any:
    import onnxruntime as ort

    return array if isinstance(array, ort.OrtValue) else ort.OrtValue.ortvalue_from_numpy(array)


def _array_of(value: Any) -> np.ndarray:
    """A tensor OrtValue of a type numpy lacks, copied out of its buffer as an ml_dtypes array."""
    data_type = ir.DataType(value.element_type())
    raw = ctypes.string_at(value.data_ptr(), value.tensor_size_in_bytes())
    if data_type.bitwidth < 8:
        return ir.PackedTensor(np.frombuffer(raw, np.uint8), data_type, shape=value.shape()).numpy()
    return np.frombuffer(raw, data_type.numpy()).reshape(value.shape()).copy()


def compare_outputs(
    reference: dict[str, Any],
    candidate: dict[str, Any],
    rtol: float | None = None,
    atol: float | None = None,
) -> list[OutputCheck]:
    """Compare every reference output with the candidate's (kind, shape, dtype, values).

    Tensors of a dtype in :data:`TOLERANCES` must be within its tolerance (or ``rtol`` / ``atol``
    when given), any other dtype equal; sequences, maps and optionals are compared element by element.
    """
    checks = []
    for name, expected in reference.items():
        if name in candidate:
            checks.append(_compare(name, expected, candidate[name], rtol, atol))
        else:
            check = _compare(name, expected, None, rtol, atol)
            check.ok, check.problem = False, MISSING
            checks.append(check)
    return checks


def _compare(name: str, expected: Any, actual: Any, rtol: float | None, atol: float | None) -> OutputCheck:
    if isinstance(expected, (list, dict)):
        return _compare_elements(name, expected, actual, rtol, atol)
    if expected is None:
        check = OutputCheck(name, "optional", [], 0.0, 0.0, 1.0, 0.0, 0.0, actual is None, rule=EXACT)
        if actual is not None:
            check.problem = f"{_describe(actual)} instead of {_describe(expected)}"
        return check
    dtype = str(expected.dtype)
    check = OutputCheck(name, dtype, list(expected.shape), 0.0, 0.0, 1.0, 0.0, 0.0, True, rule=EXACT)
    tolerance = TOLERANCES.get(dtype)
    if tolerance is not None:
        check.rule = WITHIN_TOLERANCE
        check.rtol = tolerance[0] if rtol is None else rtol
        check.atol = tolerance[1] if atol is None else atol
    if not isinstance(actual, np.ndarray) or actual.shape != expected.shape or actual.dtype != expected.dtype:
        check.ok, check.problem = False, f"{_describe(actual)} instead of {_describe(expected)}"
    elif expected.size and tolerance is None:
        _measure_exact(check, expected, actual)
    elif expected.size:
        _measure_close(check, expected, actual)
    return check


def _compare_elements(name: str, expected: Any, actual: Any, rtol: float | None, atol: float | None) -> OutputCheck:
    """One check over a sequence (list) or map (dict): same length or keys, then element by element."""
    kind = "sequence" if isinstance(expected, list) else "map"
    check = OutputCheck(name, kind, [len(expected)], 0.0, 0.0, 1.0, 0.0, 0.0, True, rule=EXACT)
    if kind == "sequence" and isinstance(actual, list) and len(actual) == len(expected):
        pairs = [(f"{name}[{i}]", e, a) for i, (e, a) in enumerate(zip(expected, actual, strict=True))]
    elif kind == "map" and isinstance(actual, dict) and actual.keys() == expected.keys():
        pairs = [(f"{name}[{k!r}]", _map_value(v), _map_value(actual[k])) for k, v in expected.items()]
    else:
        check.ok, check.problem = False, f"{_describe(actual)} instead of {_describe(expected)}"
        return check
    parts = [_compare(part, e, a, rtol, atol) for part, e, a in pairs]
    if parts:
        first = parts[0]
        check.dtype = f"{kind}({first.dtype})"
        check.rtol, check.atol, check.rule = first.rtol, first.atol, first.rule
        check.max_abs_diff = max(part.max_abs_diff for part in parts)
        check.max_rel_diff = max(part.max_rel_diff for part in parts)
        check.cosine = min(part.cosine for part in parts)
        check.ok = all(part.ok for part in parts)
        check.problem = next((f"{part.name}: {part.problem}" for part in parts if part.problem), None)
    return check


def _map_value(value: Any) -> np.ndarray:
    """A map value as an array: onnxruntime gives Python floats for float32 map values (ZipMap)."""
    if isinstance(value, float):
        return np.asarray(value, np.float32)
    return np.asarray(value, object if isinstance(value, str) else None)


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype}{list(value.shape)}"
    if isinstance(value, list):
        return f"a sequence of {len(value)}"
    if isinstance(value, dict):
        return f"a map with keys {list(value)}"
    return "an empty optional" if value is None else type(value).__name__


def _measure_exact(check: OutputCheck, expected: np.ndarray, actual: np.ndarray) -> None:
    check.ok = bool(np.array_equal(expected, actual))
    if expected.dtype.kind in "OSU":  # strings: no numeric difference
        check.max_abs_diff = float(not check.ok)
    else:
        check.max_abs_diff = float(np.abs(expected.astype(np.float64) - actual.astype(np.float64)).max())


def _measure_close(check: OutputCheck, expected: np.ndarray, actual: np.ndarray) -> None:
    """Differences as moduli: complex values stay complex (|a - b|, relative to |a|).

    The cosine is Re<a, b> / (|a| |b|), the cosine of the vectors of real and imaginary parts,
    so a phase error lowers it (|<a, b>| would not see a common rotation).
    """
    wide = np.complex128 if expected.dtype.kind == "c" else np.float64
    ref = expected.astype(wide).ravel()
    out = actual.astype(wide).ravel()
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
    check.cosine = (
        float(np.vdot(ref[finite], out[finite]).real / norms) if norms > 0 else float(np.array_equal(ref, out))
    )
    check.ok = check.ok and bool(np.all(diff <= check.atol + check.rtol * np.abs(ref)))
