"""Which exact passes do not slow onnxruntime down? Each on a model holding its pattern 8 times.

    .venv/bin/python benchmarks/bench_ort_passes.py [--budget 20] [--passes merge-concats,...]

For each pass: the model before and after (numbers checked with the Verifier first), timed head to
head by the A/B engine (one intra-op thread, thread CPU time, interleaved rounds, paired bootstrap
95% interval of the median ratio after / before). The onnxruntime target's pipeline takes only the
passes whose verdict is ``faster`` or ``same``. Not here: static-reshape and int64-to-int32 (their
patterns leave graph outputs of unknown rank, which a model cannot declare; on onnxruntime, with
static shapes, simplify folds what they would rewrite), and the opt-in passes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx_ir as ir

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table  # noqa: E402

from optimizer.loop.timing import time_ab  # noqa: E402
from optimizer.manager import PassManager, count_nodes  # noqa: E402
from optimizer.passapi import PassContext  # noqa: E402
from optimizer.targets import load_target  # noqa: E402
from optimizer.testing import pattern_model  # noqa: E402
from optimizer.verifier import Verifier, choose_feeds  # noqa: E402

COPIES = 8
I64 = np.int64


def copies(block):
    """A pattern function applying ``block(op, x, i)`` ``COPIES`` times to the input."""
    return lambda op, x: tuple(block(op, x, i) for i in range(COPIES))


def ints(*values):
    return np.array(values, I64)


def qkv(op, x):
    """A fused QKV projection split into q, k and v by three Gathers (then added)."""
    heads = op.Transpose(op.Reshape(op.MatMul(x, np.full((64, 192), 0.01, np.float32)), ints(1, 128, 3, 4, 16)),
                         perm=[2, 0, 3, 1, 4])
    q, k, v = (op.Gather(heads, np.array(index, I64), axis=0) for index in range(3))
    return op.Add(op.Add(q, k), v)


def gathers(op, y):
    """Two Gathers covering the 16 channels of ``y``, added."""
    return op.Add(op.Gather(y, ints(*range(8)), axis=1), op.Gather(y, ints(*range(8, 16)), axis=1))


CASES = {
    "merge-concats": (lambda op, x, i: op.Concat(op.Concat(x, x, axis=1), op.Relu(x), axis=1), [1, 16, 32, 32]),
    "merge-slices": (lambda op, x, i: op.Slice(op.Slice(x, ints(1), ints(31), ints(2)), ints(2), ints(30), ints(3)),
                     [1, 16, 32, 32]),
    "merge-casts": (lambda op, x, i: op.Cast(op.Cast(x, to=11), to=1), [1, 16, 32, 32]),
    "gather-to-split": (lambda op, x, i: gathers(op, op.Neg(x)), [1, 16, 32, 32]),
    "drop-empty-slices": (lambda op, x, i: op.Concat(op.Slice(x, ints(3), ints(3), ints(1)), op.Relu(x), axis=1),
                          [1, 16, 32, 32]),
    "fold-transpose-batchnorm": (
        lambda op, x, i: op.Transpose(
            op.BatchNormalization(op.Transpose(x, perm=[0, 2, 3, 1]), *(np.full(32, v, np.float32) for v in (
                1.5, 0.1, 0.2, 2.0))), perm=[0, 3, 1, 2]), [1, 16, 32, 32]),
    "conv1d-to-conv2d": (lambda op, x, i: op.Relu(op.Conv(op.Relu(op.Conv(x, np.full((16, 16, 3), 0.05, np.float32),
                                                                             pads=[1, 1])),
                                                           np.full((16, 16, 3), 0.05, np.float32), pads=[1, 1])),
                         [1, 16, 1024]),
    "split-avgpool": (lambda op, x, i: op.AveragePool(x, kernel_shape=[1, 512], strides=[1, 512]), [1, 16, 4, 4096]),
    "reflect-pad-to-slices": (lambda op, x, i: op.Pad(x, ints(0, 0, 2, 2, 0, 0, 2, 2), mode="reflect"),
                              [1, 16, 32, 32]),
    "split-qkv-matmul": (lambda op, x, i: qkv(op, x), [1, 128, 64]),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of A/B timing per pass")
    parser.add_argument("--passes", default=",".join(CASES))
    args = parser.parse_args()
    ctx = PassContext(load_target("onnxruntime"))
    rows = []
    for name in args.passes.split(","):
        block, shape = CASES[name]
        before = ir.serde.deserialize_model(pattern_model(copies(block), {"x": shape}, opset=13))
        run = PassManager([name], ctx).run(before.clone())
        after, record = run.model, run.records[0]
        feeds = choose_feeds(before, seed=0)
        if not record.changes or not Verifier(before, feeds).check(after).ok:
            rows.append([name, f"{count_nodes(before)}", "-", "-", "-", f"did not apply: {record.status}"])
            continue
        result = time_ab(before, after, feeds.sets[0], budget_s=args.budget, labels=("before", name))
        print(f"{name}: {result.reason}", file=sys.stderr)
        rows.append([name, f"{count_nodes(before)} -> {count_nodes(after)}", f"{result.ratio:.3f}",
                     f"{result.ci[0]:.3f}-{result.ci[1]:.3f}", result.verdict, f"{result.rounds} rounds"])
    print(markdown_table(["pass", "nodes", "ratio after/before", "95% CI", "verdict", "rounds"], rows))


if __name__ == "__main__":
    main()
