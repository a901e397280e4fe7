"""The onnxruntime profiling backend: per-node times in msprof's CSV layout, plus latency samples.

Node times come from onnxruntime's own profiler (warm-up runs excluded). End-to-end latency is
measured in separate runs of a session without the profiler, because profiled runs are slower.
Both land in one folder, ``op_summary_<ts>.csv``, ``op_statistic_<ts>.csv`` (msprof's
mindstudio_profiler_output columns) and ``latency_<ts>.json``, so every later step reads an
onnxruntime profile exactly as it reads an NPU one.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx_ir as ir

from optimizer.errors import UserError
from optimizer.modelio import load_model
from optimizer.verify import input_specs, random_inputs


@dataclass
class OrtProfile:
    """What a profiling run wrote and found."""

    files: list[Path]
    profile: object  # profiles.model.Profile
    attribution: dict[str, int]
    runs: int
    warmup: int


def profile_onnx(
    model_path: Path,
    out_dir: Path,
    *,
    input_shapes: dict[str, list[int]] | None = None,
    runs: int = 20,
    warmup: int = 5,
    threads: int | None = None,
    seed: int = 0,
    feeds: dict | None = None,
    progress: Callable[[str], None] | None = None,
) -> OrtProfile:
    """Profile ``model_path`` on onnxruntime (CPU) and write msprof-style files into ``out_dir``.

    The inputs are ``feeds`` when given, else seeded random data at the model's (or
    ``input_shapes``') static shapes."""
    from optimizer.ort_session import cpu_session, native_reason, session_options
    from profiles.attribution import attribute
    from profiles.latency_json import write_latency_json
    from profiles.model import Latency, Profile
    from profiles.msprof_writer import write_msprof_csvs
    from profiles.readers.ort_trace import read as read_trace

    say = progress or (lambda message: None)
    if runs < 1 or warmup < 0:
        raise UserError("--runs must be at least 1 and --warmup at least 0")
    if not out_dir.parent.is_dir():
        raise UserError(f"-o {out_dir}: folder {out_dir.parent} does not exist")
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"-o {out_dir} is a file; give a folder")
    model = load_model(model_path)
    if feeds is None:
        feeds = random_inputs(input_specs(model, input_shapes or {}), seed)

    def session(profile_prefix: str | None):
        options = session_options(**({"intra_op_num_threads": threads} if threads else {}))
        if profile_prefix:
            options.enable_profiling = True
            options.profile_file_prefix = profile_prefix
        try:
            return cpu_session(str(model_path), options)
        except Exception as exc:
            raise UserError(f"{model_path}: onnxruntime cannot run it: {native_reason(exc)}") from None

    say("measuring latency")
    plain = session(None)
    try:
        plain.run(None, feeds)
    except Exception as exc:  # these inputs do not run: bad input, not an internal error
        raise UserError(f"{model_path}: onnxruntime cannot run it: {native_reason(exc)}") from None
    for _ in range(warmup):
        plain.run(None, feeds)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        plain.run(None, feeds)
        samples.append((time.perf_counter() - started) * 1000.0)

    say("profiling")
    with tempfile.TemporaryDirectory(prefix="onnx-opt-profile-") as tmp:
        profiled = session(os.path.join(tmp, "ort"))
        for _ in range(warmup + runs):
            profiled.run(None, feeds)
        trace_path = Path(profiled.end_profiling())
        events = json.loads(trace_path.read_text())
    trace = read_trace(trace_path, events)
    cut = _first_measured_start(events, warmup)
    ops = [op for op in trace.ops if op.start_us is None or op.start_us >= cut]
    name = model.graph.name or model_path.stem
    profile = Profile(
        source=str(model_path), kind="onnxruntime", ops=ops, model_name=name, latency=Latency.from_samples(samples)
    )
    say("writing")
    out_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d%H%M%S")
    files = write_msprof_csvs(profile, out_dir, stamp)
    files.append(write_latency_json(profile.latency, out_dir / f"latency_{stamp}.json", model_name=name))
    nodes = [(node.name or "", node.op_type) for node in ir.traversal.RecursiveGraphIterator(model.graph)]
    return OrtProfile(files, profile, attribute(profile, nodes).counts, runs, warmup)


def _first_measured_start(events: list, warmup: int) -> float:
    """Start (us) of the first run after the warm-up, from the trace's model_run events."""
    starts = sorted(float(e["ts"]) for e in events if e.get("cat") == "Session" and e.get("name") == "model_run")
    return starts[warmup] if len(starts) > warmup else float("-inf")
