"""What ``onnx-opt auto`` keeps on each bundled example, on onnxruntime, and the final ratio.

    .venv/bin/python benchmarks/bench_auto.py [--budget 60] [--examples srnet_opset9,...]

For every example: each candidate with its verdict, ratio and 95% interval against the model it
was tried on, what was kept, and the result against the input (ratio, interval, verdict). The
timing is the A/B engine's: one intra-op thread, the calling thread's CPU time, interleaved
rounds, paired bootstrap interval.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table  # noqa: E402

from optimizer.loop.auto import AutoOptions, run_auto  # noqa: E402

EXAMPLES = ("srnet_opset9", "srnet_opset11", "skunit_opset11", "ghost_opset11")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of A/B timing per example")
    parser.add_argument("--examples", default=",".join(EXAMPLES))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="onnx-opt-bench-auto-") as folder:
        for name in args.examples.split(","):
            source = ROOT / "examples" / f"{name}.onnx"
            result = run_auto(AutoOptions(input=source, output=Path(folder) / f"{name}.onnx", budget_s=args.budget))
            steps = "; ".join(
                f"{s.pass_name}{f' (--opset {s.opset})' if s.opset else ''}: {s.verdict or s.reason}"
                + (f" {s.ratio:.3f} [{s.ci[0]:.3f}, {s.ci[1]:.3f}]" if s.ratio is not None else "")
                for s in result.steps
            ) or "no candidate"
            final = result.final
            rows.append([
                name,
                steps,
                ", ".join(result.kept) or "nothing",
                "-" if final is None else f"{final.ratio:.3f} [{final.ci[0]:.3f}, {final.ci[1]:.3f}] {final.verdict}",
            ])
            print(f"{name}: kept {result.kept}", file=sys.stderr)
    print(markdown_table(["example", "candidates: verdict, ratio [95% CI]", "kept", "result / input"], rows))


if __name__ == "__main__":
    main()
