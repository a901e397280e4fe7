"""Shared by the fake Ascend tools (tests only): argument parsing, call records, hanging on request.

Environment read by every fake:
  FAKE_CALLS         append one JSON line per call: {"tool", "argv", "cwd", "env"}
  FAKE_CANN_VERSION  the CANN version the fakes imitate (default 7.0.0)
  FAKE_HANG          name of a tool that hangs: it starts `sleep 300`, writes that child's pid to
                     FAKE_PIDFILE, and sleeps; with FAKE_IGNORE_TERM=1 both ignore SIGTERM
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


def _statistics() -> list[tuple[str, int, float, float, float, float]]:
    by_type: dict[str, list[float]] = {}
    for _, op_type, duration, _ in OPS:
        by_type.setdefault(op_type, []).append(duration)
    total = sum(d for _, _, d, _ in OPS)
    rows = [(t, len(d), sum(d), min(d), sum(d) / len(d), max(d)) for t, d in by_type.items()]
    return [(t, n, s, lo, avg, hi, round(100 * s / total, 4)) for t, n, s, lo, avg, hi in rows]


def write_legacy_summary(folder: str, device: int) -> None:
    """CANN 5.x device summary: op_summary_<device>_1.csv, op_statistic_<device>_1.csv (DT_ types, `AI Core`)."""
    rows = [
        ["rdn_x2_bs1", 1, task, 5, 1, name, op_type, "AI_CORE", 1623650000000.0 + 1000 * task, duration, 0, 2,
         f'"{shape}"', "DT_FLOAT16", "NC1HWC0", f'"{shape}"', "DT_FLOAT16", "NC1HWC0"]
        for task, (name, op_type, duration, shape) in enumerate(OPS, 1)
    ]
    _csv(f"{folder}/op_summary_{device}_1.csv", LEGACY_OP_SUMMARY, rows)
    stats = [["rdn_x2_bs1", t, "AI Core", n, s, lo, avg, hi, ratio] for t, n, s, lo, avg, hi, ratio in _statistics()]
    _csv(f"{folder}/op_statistic_{device}_1.csv", LEGACY_OP_STATISTIC, stats)


def write_merged_summary(folder: str, device: int) -> None:
    """CANN 6.3+ mindstudio_profiler_output: op_summary_<ts>.csv, op_statistic_<ts>.csv, Device_id first."""
    stamp = timestamp()
    rows = [
        [device, 1, task, 5, name, op_type, "static", "AI_CORE", f"{1695115378713661.0 + 1000 * task}\t", duration,
         0, 2, 0, "NO", f'"{shape}"', "FLOAT16", "NC1HWC0", f'"{shape}"', "FLOAT16", "NC1HWC0", "N/A", duration, 0]
        for task, (name, op_type, duration, shape) in enumerate(OPS, 1)
    ]
    _csv(f"{folder}/op_summary_{stamp}.csv", MERGED_OP_SUMMARY, rows)
    stats = [[device, t, "AI_CORE", n, s, lo, avg, hi, ratio] for t, n, s, lo, avg, hi, ratio in _statistics()]
    _csv(f"{folder}/op_statistic_{stamp}.csv", MERGED_OP_STATISTIC, stats)
