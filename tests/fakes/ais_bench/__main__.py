"""Fake `python3 -m ais_bench` (tests only), after ASCEND_FACTS 3.6: pure inference of --model,
--loop times on --device; writes <--output>/<YYYY_mm_dd-HH_MM_SS>_summary.json and prints the
Performance Summary lines.

The NPU times are TIMES_MS in turn, unless the model names its own latency: FAKE_LATENCY_<stem>
(ms, for <stem>.om) in the environment, else a line `latency_ms=<ms>` in the .om file. Then the
times are that latency scaled by TIMES_MS's pattern and by a jitter of at most ±0.5 % per call,
so two calls on one model differ a little and a faster model is always faster."""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
from _fakelib import hang_if_asked, record  # noqa: E402

TIMES_MS = [0.9319999814033508, 0.9710000157356262, 1.0433000326156616, 0.9820722253774902]


def summary(values: list[float]) -> dict:
    ordered = sorted(values)
    return {
        "min": ordered[0],
        "max": ordered[-1],
        "mean": statistics.fmean(values),
        "median": statistics.median(values),
        "percentile(99%)": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "count": len(values),
    }


def model_latency_ms(model: str) -> float | None:
    """The latency the model asks for: FAKE_LATENCY_<stem>, else `latency_ms=<ms>` in the file."""
    stem = os.path.splitext(os.path.basename(model))[0]
    if (value := os.environ.get(f"FAKE_LATENCY_{stem}")) is not None:
        return float(value)
    with open(model, "rb") as handle:
        found = re.search(rb"latency_ms=([0-9.]+)", handle.read(4096))
    return float(found.group(1)) if found else None


def npu_times(model: str, loop: int) -> list[float]:
    """One NPU compute time per loop: TIMES_MS, or the model's latency with TIMES_MS's pattern."""
    times = [TIMES_MS[i % len(TIMES_MS)] for i in range(loop)]
    latency = model_latency_ms(model)
    if latency is None:
        return times
    jitter = 1 + random.Random().uniform(-0.005, 0.005)
    return [latency * jitter * t / statistics.fmean(TIMES_MS) for t in times]


def main() -> int:
    record("ais_bench")
    hang_if_asked("ais_bench")
    parser = argparse.ArgumentParser(prog="ais_bench")
    parser.add_argument("--model", "-m", required=True)
    parser.add_argument("--device", "-d", type=int, default=0)
    parser.add_argument("--loop", "-l", type=int, default=1)
    parser.add_argument("--output", "-o")
    args, _ = parser.parse_known_args()
    if not os.path.isfile(args.model):
        print(f"[ERROR] model path {args.model} is not a file")
        return 1
    times = npu_times(args.model, args.loop)
    npu = summary(times)
    data = {
        "filesinfo": {},
        "args": vars(args),
        "NPU_compute_time": npu,
        "H2D_latency": summary([0.7194576245690456]),
        "D2H_latency": summary([0.9609072827731167]),
        "throughput": 1000 * 1 / npu["mean"],
        "npu_compute_time_list": times,
        "pid": os.getpid(),
    }
    if args.output:
        stamp = time.strftime("%Y_%m_%d-%H_%M_%S")
        os.makedirs(os.path.join(args.output, stamp), exist_ok=True)
        with open(os.path.join(args.output, f"{stamp}_summary.json"), "w") as handle:
            json.dump(data, handle)
    print("[INFO] -----------------Performance Summary------------------")
    print(f"[INFO] NPU_compute_time (ms): min = {npu['min']}, max = {npu['max']}, mean = {npu['mean']}, "
          f"median = {npu['median']}, percentile(99%) = {npu['percentile(99%)']}")
    print(f"[INFO] throughput 1000*batchsize.mean(1)/NPU_compute_time.mean({npu['mean']}): {data['throughput']}")
    print("[INFO] ------------------------------------------------------")
    return 0


sys.exit(main())
