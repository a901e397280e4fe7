"""Shared by the fake Ascend tools (tests only): argument parsing, call records, hanging on request.

Environment read by every fake:
  FAKE_CALLS         append one JSON line per call: {"tool", "argv", "cwd", "env"}
  FAKE_CANN_VERSION  the CANN version the fakes imitate (default 7.0.0)
  FAKE_HANG          name of a tool that hangs: it starts `sleep 300`, writes that child's pid to
                     FAKE_PIDFILE, and sleeps; with FAKE_IGNORE_TERM=1 both ignore SIGTERM
  FAKE_ATC_COSTS     a JSON object (`{}` for the defaults): the fake atc and aoe write into each .om
                     a latency and per-op rows computed from the ONNX graph (see `om_text`), which
                     the fake ais_bench times and the fake msprof / msprof.py export as op_summary rows
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time


def options(argv: list[str]) -> dict[str, str]:
    """`--key=value` and `--key value` arguments (gflags style) as a dict; `-k=v` too."""
    found: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-"):
            key, sep, value = arg.lstrip("-").partition("=")
            if not sep and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
                value = argv[i + 1]
                i += 1
            found[key] = value
        i += 1
    return found


def record(tool: str) -> None:
    """Append this call to FAKE_CALLS."""
    path = os.environ.get("FAKE_CALLS")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"tool": tool, "argv": sys.argv[1:], "cwd": os.getcwd(), "env": dict(os.environ)}))
            handle.write("\n")


def hang_if_asked(tool: str) -> None:
    """Hang (with a child process) when FAKE_HANG names this tool."""
    if os.environ.get("FAKE_HANG") != tool:
        return
    if os.environ.get("FAKE_IGNORE_TERM") == "1":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by the child through exec
    child = subprocess.Popen(["sleep", "300"])
    with open(os.environ["FAKE_PIDFILE"], "w") as handle:
        handle.write(str(child.pid))
    print(f"{tool}: working...", flush=True)
    while True:
        time.sleep(1)


def cann_version() -> tuple[int, ...]:
    """FAKE_CANN_VERSION as numbers, RC releases counted as .0 of their line (6.3.RC1 -> 6.3.0)."""
    text = os.environ.get("FAKE_CANN_VERSION", "7.0.0")
    return tuple(int(part) if part.isdigit() else 0 for part in text.split(".")[:3])


def timestamp() -> str:
    """msprof's file-name timestamp."""
    return time.strftime("%Y%m%d%H%M%S")


def _columns(header: str) -> list[str]:
    return header.split(",")


# The profile every fake msprof writes: (op name, op type, duration us, input shape), RDN-like.
OPS = [
    ("Transpose_12", "TransposeD", 934.2878, "1,64,2,2,114,114"),
    ("Conv_0", "Conv2D", 78.2812, "1,3,114,114"),
    ("Conv_3", "Conv2D", 84.1, "1,64,114,114"),
    ("trans_TransData_1", "TransData", 63.8021, "1,3,114,114"),
]
LEGACY_OP_SUMMARY = _columns(
    "Model Name,Model ID,Task ID,Stream ID,Infer ID,Op Name,OP Type,Task Type,Task Start Time,Task Duration(us),"
    "Task Wait Time(us),Block Dim,Input Shapes,Input Data Types,Input Formats,Output Shapes,Output Data Types,"
    "Output Formats"
)
_STATISTIC = "OP Type,Core Type,Count,Total Time(us),Min Time(us),Avg Time(us),Max Time(us),Ratio(%)"
LEGACY_OP_STATISTIC = _columns("Model Name," + _STATISTIC)
MERGED_OP_SUMMARY = _columns(
    "Device_id,Model ID,Task ID,Stream ID,Op Name,OP Type,OP State,Task Type,Task Start Time(us),Task Duration(us),"
    "Task Wait Time(us),Block Dim,Mix Block Dim,HF32 Eligible,Input Shapes,Input Data Types,Input Formats,"
    "Output Shapes,Output Data Types,Output Formats,Context ID,aicore_time(us),aic_total_cycles"
)
MERGED_OP_STATISTIC = _columns("Device_id," + _STATISTIC)


def _csv(path: str, header: list[str], rows: list[list]) -> None:
    import csv

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _statistics(ops: list[tuple]) -> list[tuple[str, int, float, float, float, float]]:
    by_type: dict[str, list[float]] = {}
    for _, op_type, duration, _ in ops:
        by_type.setdefault(op_type, []).append(duration)
    total = sum(d for _, _, d, _ in ops)
    rows = [(t, len(d), sum(d), min(d), sum(d) / len(d), max(d)) for t, d in by_type.items()]
    return [(t, n, s, lo, avg, hi, round(100 * s / total, 4)) for t, n, s, lo, avg, hi in rows]


def write_legacy_summary(folder: str, device: int, ops: list[tuple] | None = None) -> None:
    """CANN 5.x device summary: op_summary_<device>_1.csv, op_statistic_<device>_1.csv (DT_ types, `AI Core`)."""
    ops = ops or OPS
    rows = [
        ["rdn_x2_bs1", 1, task, 5, 1, name, op_type, "AI_CORE", 1623650000000.0 + 1000 * task, duration, 0, 2,
         f'"{shape}"', "DT_FLOAT16", "NC1HWC0", f'"{shape}"', "DT_FLOAT16", "NC1HWC0"]
        for task, (name, op_type, duration, shape) in enumerate(ops, 1)
    ]
    _csv(f"{folder}/op_summary_{device}_1.csv", LEGACY_OP_SUMMARY, rows)
    stats = [["rdn_x2_bs1", t, "AI Core", n, s, lo, avg, hi, ratio]
             for t, n, s, lo, avg, hi, ratio in _statistics(ops)]
    _csv(f"{folder}/op_statistic_{device}_1.csv", LEGACY_OP_STATISTIC, stats)


def write_merged_summary(folder: str, device: int, ops: list[tuple] | None = None) -> None:
    """CANN 6.3+ mindstudio_profiler_output: op_summary_<ts>.csv, op_statistic_<ts>.csv, Device_id first."""
    ops = ops or OPS
    stamp = timestamp()
    rows = [
        [device, 1, task, 5, name, op_type, "static", "AI_CORE", f"{1695115378713661.0 + 1000 * task}\t", duration,
         0, 2, 0, "NO", f'"{shape}"', "FLOAT16", "NC1HWC0", f'"{shape}"', "FLOAT16", "NC1HWC0", "N/A", duration, 0]
        for task, (name, op_type, duration, shape) in enumerate(ops, 1)
    ]
    _csv(f"{folder}/op_summary_{stamp}.csv", MERGED_OP_SUMMARY, rows)
    stats = [[device, t, "AI_CORE", n, s, lo, avg, hi, ratio] for t, n, s, lo, avg, hi, ratio in _statistics(ops)]
    _csv(f"{folder}/op_statistic_{stamp}.csv", MERGED_OP_STATISTIC, stats)


# The cost model of the fake atc and aoe (used when FAKE_ATC_COSTS is set), in ms per ONNX node of
# the main graph. Deterministic: the same graph, SoC and OPP white list give the same bytes.
COSTS = {
    "node": 0.01,  # any node without its own entry (Constant nodes are folded by ATC: free)
    "Conv": 0.2,
    "TransposeD": 5.0,  # a 6-D Transpose whose input shape is not in the OPP's white_list_shape
    "TransposeD_listed": 0.05,  # the same, its shape white-listed
    "Transpose": 0.02,  # a Transpose of another rank
    "DepthToSpace": 0.1,  # where the SoC has it; Ascend310 (CANN 5.0.x) has no parser for it
}
KERNEL_TYPES = {"Conv": "Conv2D", "Transpose": "TransposeD", "Softmax": "SoftmaxV2", "MatMul": "MatMulV2"}
NO_DEPTH_TO_SPACE = ("Ascend310",)  # SoCs whose ATC (CANN 5.0.x) cannot convert DepthToSpace
TRANSPOSE_FILE = "op_impl/built-in/ai_core/tbe/impl/dynamic/transpose.py"


class UnsupportedOpError(Exception):
    """An op the SoC's ATC has no parser for: (node name, optype as ATC spells it)."""


def costs() -> dict[str, float] | None:
    """COSTS updated by FAKE_ATC_COSTS; None when it is unset (the fakes then write fixed bytes)."""
    text = os.environ.get("FAKE_ATC_COSTS")
    return None if text is None else {**COSTS, **json.loads(text or "{}")}


def white_list(opp: str | None) -> list[list[int]]:
    """`white_list_shape` inside `_by_dynamic_static_union_version` of the OPP's transpose.py ([] if absent)."""
    import ast

    path = os.path.join(opp or "", TRANSPOSE_FILE)
    if not opp or not os.path.isfile(path):
        return []
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef) and function.name == "_by_dynamic_static_union_version":
            for node in ast.walk(function):
                if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "white_list_shape"
                                                        for t in node.targets):
                    return ast.literal_eval(node.value)
    return []


def graph_ops(model: str, soc: str | None, opp: str | None, table: dict[str, float]) -> list[tuple]:
    """(name, kernel type, duration us, input shape) per node of the model's main graph, by the cost model.

    Raises UnsupportedOpError for DepthToSpace on a SoC of NO_DEPTH_TO_SPACE. Needs the onnx package.
    """
    import onnx

    proto = onnx.shape_inference.infer_shapes(onnx.load(model))
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    shapes = {}
    for value in [*proto.graph.input, *proto.graph.value_info, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        shapes[value.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
    for tensor in proto.graph.initializer:
        shapes[tensor.name] = list(tensor.dims)
    listed = white_list(opp)
    ops = []
    for node in proto.graph.node:
        if node.op_type == "Constant":
            continue
        shape = shapes.get(node.input[0], []) if node.input else []
        if node.op_type == "DepthToSpace" and soc in NO_DEPTH_TO_SPACE:
            raise UnsupportedOpError(node.name, f"ai.onnx::{opset}::{node.op_type}")
        if node.op_type == "Transpose" and len(shape) == 6:
            ms = table["TransposeD_listed"] if shape in listed else table["TransposeD"]
        else:
            ms = table.get(node.op_type, table["node"])
        kernel = KERNEL_TYPES.get(node.op_type, node.op_type)
        ops.append((node.name, kernel, round(ms * 1000, 3), ",".join(str(d) for d in shape)))
    return ops


def om_text(ops: list[tuple]) -> str:
    """The fake .om: `latency_ms=<sum of the ops>` (what the fake ais_bench times), then one `op=` line per op."""
    latency = sum(op[2] for op in ops) / 1000
    lines = ["fake om", f"latency_ms={latency:.6f}"] + ["op=" + "|".join(str(part) for part in op) for op in ops]
    return "\n".join(lines) + "\n"


def om_ops(om: str) -> list[tuple] | None:
    """The `op=` lines of a fake .om as (name, type, duration us, shape); None when it has none."""
    try:
        with open(om, encoding="utf-8", errors="replace") as handle:
            lines = [line[3:].rstrip("\n").split("|") for line in handle if line.startswith("op=")]
    except OSError:
        return None
    return [(name, kind, float(us), shape) for name, kind, us, shape in lines] or None


def save_ops(folder: str, ops: list[tuple] | None) -> None:
    """Keep the profiled model's ops in a collect folder (`data/fake_ops.json`) for the export."""
    if ops:
        os.makedirs(f"{folder}/data", exist_ok=True)
        with open(f"{folder}/data/fake_ops.json", "w", encoding="utf-8") as handle:
            json.dump(ops, handle)


def saved_ops(folder: str) -> list[tuple] | None:
    """The ops `save_ops` kept in `folder`, None when none (the export then writes OPS)."""
    path = f"{folder}/data/fake_ops.json"
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return [tuple(op) for op in json.load(handle)]
