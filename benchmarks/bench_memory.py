"""How much memory does optimize need for a model with external weights? Peak RSS of child
processes, against the size of the weights and against a plain ``onnx.load`` of the same model,
measured in the same run.

    .venv/bin/python benchmarks/bench_memory.py [--megabytes 256]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table  # noqa: E402


def build(folder: Path, megabytes: int) -> Path:
    """A chain of MatMul + Relu whose weights (float32) total about ``megabytes`` MB, stored externally."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    width, layers = 1024, max(1, megabytes * 2**20 // (1024 * 1024 * 4))
    nodes, inits, source = [], [], "x"
    rng = np.random.default_rng(0)
    for i in range(layers):
        weight = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        inits.append(numpy_helper.from_array(weight, f"w{i}"))
        nodes += [helper.make_node("MatMul", [source, f"w{i}"], [f"m{i}"], name=f"matmul{i}"),
                  helper.make_node("Relu", [f"m{i}"], [f"r{i}"], name=f"relu{i}")]
        source = f"r{i}"
    nodes.append(helper.make_node("Identity", [source], ["y"], name="out"))
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, width])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    path = folder / "big.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="big.onnx.data", size_threshold=0)
    return path


def peak_rss_mb(command: list[str]) -> float:
    """Peak resident memory (MB) of a child process."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    if status != 0:
        raise SystemExit(f"{command} failed: {process.stderr.read().decode()}")
    return usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--build-into", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build_into:
        build(Path(args.build_into), args.megabytes)
        return
    cli = [sys.executable, "-m", "optimizer"]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # Built in a child: a child's peak RSS counts from its parent's size at fork, so this one stays small.
        subprocess.run([sys.executable, __file__, "--build-into", tmp, "--megabytes", str(args.megabytes)], check=True)
        path = folder / "big.onnx"
        weights = (folder / "big.onnx.data").stat().st_size / 2**20
        cases = [
            ("python: import onnx_ir (baseline of the interpreter)", [sys.executable, "-c", "import onnx_ir"]),
            ("onnx.load with its external data", [sys.executable, "-c", f"import onnx; onnx.load({str(path)!r})"]),
            ("optimize --passes none --no-verify", [*cli, "-q", "optimize", str(path), "-o", str(folder / "a.onnx"),
                                                    "--passes", "none", "--no-verify"]),
            ("optimize --passes softmax-transpose,fuse-depth-to-space --no-verify",
             [*cli, "-q", "optimize", str(path), "-o", str(folder / "b.onnx"), "--passes",
              "softmax-transpose,fuse-depth-to-space", "--no-verify"]),
            ("optimize --passes none (verification only)",
             [*cli, "-q", "optimize", str(path), "-o", str(folder / "v.onnx"), "--passes", "none"]),
            ("optimize --passes simplify --no-verify",
             [*cli, "-q", "optimize", str(path), "-o", str(folder / "s.onnx"), "--passes", "simplify", "--no-verify"]),
            ("optimize (default pipeline incl. simplify, with verification)",
             [*cli, "-q", "optimize", str(path), "-o", str(folder / "c.onnx")]),
        ]
        rows = []
        baseline = None
        for title, command in cases:
            peak = peak_rss_mb(command)
            if "onnx.load" in title:
                baseline = peak
            ratio = f"{peak / baseline:.2f}" if baseline else "-"
            rows.append([title, f"{peak:.0f}", f"{peak / weights:.2f}", ratio])
            print(f"{title}: {peak:.0f} MB", file=sys.stderr)
    print(f"weights: {weights:.0f} MB in external data\n")
    print(markdown_table(["process", "peak RSS MB", "x weights", "x onnx.load"], rows))


if __name__ == "__main__":
    main()
