"""What do the passes buy on onnxruntime? Latency of each rewritten model against its original,
measured in the same run (median of many runs, one intra-op thread, ORT's default optimisations).

    .venv/bin/python benchmarks/bench_backend.py [--runs 200]

Cases: the PixelShuffle net at opset 9 (Reshape -> 6-D Transpose -> Reshape) against its fused
DepthToSpace form; a channel softmax (softmax over dim 1 of [1, 64, 96, 96]) exported at opset 11
(Transpose -> Softmax -> Transpose) against the softmax-transpose rewrite, and the same at opset
13 where onnxruntime drops the transposes itself; the SK unit, where the softmax is tiny.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table  # noqa: E402
from torch_models import build, export  # noqa: E402

from optimizer.optimize import OptimizeOptions, optimize  # noqa: E402


class ChannelSoftmax(torch.nn.Module):
    """Softmax over channels, as attention maps and SK units do, on a large map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=1) * x


def session_and_feeds(path: Path):
    """A one-thread onnxruntime session of ``path`` and seeded inputs for it."""
    import onnxruntime as ort

    from optimizer.modelio import load_model
    from optimizer.verify import input_specs, random_inputs

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session, random_inputs(input_specs(load_model(path), {}), 0)


def paired_latency_ms(baseline: Path, candidate: Path, runs: int) -> list[tuple[float, float]]:
    """(median, MAD-based spread) in ms of each model, timed alternately so drift hits both alike."""
    pairs = [session_and_feeds(baseline), session_and_feeds(candidate)]
    samples: list[list[float]] = [[], []]
    for step in range(10 + runs):
        for index, (session, feeds) in enumerate(pairs):
            started = time.perf_counter()
            session.run(None, feeds)
            if step >= 10:
                samples[index].append((time.perf_counter() - started) * 1000)
    summary = []
    for values in samples:
        median = statistics.median(values)
        summary.append((median, 1.4826 * statistics.median(abs(v - median) for v in values)))
    return summary


def rewrite(source: Path, out: Path, **options) -> Path:
    report = optimize(OptimizeOptions(input=source, output=out, **options))
    assert report.verification.ok and report.written, report.notes
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        srnet9 = build("srnet", 9, work / "srnet9.onnx")
        soft11 = export(ChannelSoftmax(), work / "softmax11.onnx", (1, 64, 96, 96), 11)
        soft13 = export(ChannelSoftmax(), work / "softmax13_torch.onnx", (1, 64, 96, 96), 13)
        sk11 = build("skunit", 11, work / "sk11.onnx")
        cases = [
            ("PixelShuffle net, opset 9 -> fused DepthToSpace (opset 11)", srnet9,
             rewrite(srnet9, work / "srnet_fused.onnx", opset=11)),
            ("channel softmax, opset 11 TST -> Softmax(axis=1) (--opset 13)", soft11,
             rewrite(soft11, work / "soft_rewritten.onnx", opset=13, passes=["softmax-transpose"])),
            ("channel softmax, opset 11 TST -> same TST converted to opset 13", soft11,
             rewrite(soft11, work / "soft13_tst.onnx", opset=13, passes=[])),
            ("channel softmax, opset 11 TST -> torch's own opset 13 export (no TST)", soft11, soft13),
            ("SK unit, opset 11 -> softmax-transpose at opset 13", sk11,
             rewrite(sk11, work / "sk13.onnx", opset=13, passes=["softmax-transpose"])),
        ]
        rows = []
        for title, baseline, candidate in cases:
            (base, base_spread), (new, new_spread) = paired_latency_ms(baseline, candidate, args.runs)
            rows.append([title, f"{base:.3f} ± {base_spread:.3f}", f"{new:.3f} ± {new_spread:.3f}",
                         f"{new / base:.3f}"])
            print(f"{title}: {base:.3f} -> {new:.3f} ms", file=sys.stderr)
    print(markdown_table(["case", "baseline ms", "rewritten ms", "ratio"], rows))


if __name__ == "__main__":
    np.random.seed(0)
    main()
