"""How tight is each clock of the A/B timing engine? The same interleaved runs timed with both
clocks at once (the calling thread's CPU time and wall-clock time), so the intervals compare.

    .venv/bin/python benchmarks/bench_timing.py [--rounds 60] [--min-gain 2]

Cases: the PixelShuffle net at opset 9 against itself, and against its fused DepthToSpace form
(``onnx-opt optimize examples/srnet_opset9.onnx -o X --opset 11``); the SK unit against itself.
One intra-op thread, sequential execution, onnxruntime's default graph optimisations, warm-up in
both orders, rounds alternating A B / B A, fixed in number (no rounds added) so that both clocks
see the same runs. Prints a markdown table: ratio B/A, its 95 % bootstrap interval and width, and
the verdict per clock.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table  # noqa: E402

from optimizer.loop.timing import time_ab  # noqa: E402
from optimizer.modelio import load_model  # noqa: E402
from optimizer.optimize import OptimizeOptions, optimize  # noqa: E402
from optimizer.verify import input_specs, random_inputs  # noqa: E402
from profiles.statistics import estimate  # noqa: E402


class BothClocks:
    """Runner factory: one onnxruntime session per model (one thread, sequential); each run is timed
    with time.thread_time (returned to the engine) and time.perf_counter (kept in ``wall``)."""

    clock = "thread-cpu"

    def __init__(self, feeds: dict) -> None:
        self.feeds = feeds
        self.wall: list[list[float]] = []

    def __call__(self, model: Path):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        wall: list[float] = []
        self.wall.append(wall)

        def run() -> float:
            cpu, started = time.thread_time(), time.perf_counter()
            session.run(None, self.feeds)
            wall.append((time.perf_counter() - started) * 1000.0)
            return time.thread_time() - cpu

        return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--min-gain", type=float, default=2.0, help="percent")
    args = parser.parse_args()
    min_gain = args.min_gain / 100
    examples = ROOT / "examples"
    with tempfile.TemporaryDirectory() as tmp:
        fused = Path(tmp) / "srnet_fused.onnx"
        report = optimize(OptimizeOptions(input=examples / "srnet_opset9.onnx", output=fused, opset=11))
        assert report.verification.ok and report.written, report.notes
        cases = [
            ("PixelShuffle net (opset 9) vs itself", examples / "srnet_opset9.onnx", examples / "srnet_opset9.onnx"),
            ("PixelShuffle net (opset 9) vs fused DepthToSpace", examples / "srnet_opset9.onnx", fused),
            ("SK unit vs itself", examples / "skunit_opset11.onnx", examples / "skunit_opset11.onnx"),
        ]
        rows = []
        for title, a, b in cases:
            factory = BothClocks(random_inputs(input_specs(load_model(a), {}), 0))
            cpu = time_ab(a, b, None, runner_factory=factory, rounds=args.rounds, max_rounds=args.rounds,
                          min_gain=min_gain)
            warm = 2 * 2  # the engine's warm-up: A B B A, twice
            wall = estimate(factory.wall[0][warm:], factory.wall[1][warm:], min_gain=min_gain, paired=True)
            for clock, (ratio, lo, hi, a_ms, b_ms, verdict) in (
                ("thread-cpu", (cpu.ratio, *cpu.ci, cpu.a_median_ms, cpu.b_median_ms, cpu.verdict)),
                ("wall", (wall.ratio, wall.lo, wall.hi, wall.a_median, wall.b_median,
                          wall.verdict if wall.decided else "undecided")),
            ):
                rows.append([title, clock, f"{a_ms:.3f}", f"{b_ms:.3f}", f"{ratio:.3f}", f"{lo:.3f}-{hi:.3f}",
                             f"{hi - lo:.3f}", verdict])
            print(f"{title}: done", file=sys.stderr)
    print(f"{args.rounds} interleaved rounds per case, min gain {args.min_gain:g}%; both clocks time the same runs\n")
    print(markdown_table(["case", "clock", "A ms", "B ms", "ratio B/A", "95% CI", "CI width", "verdict"], rows))


if __name__ == "__main__":
    main()
