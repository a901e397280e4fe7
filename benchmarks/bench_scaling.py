"""Do the passes scale linearly with graph size? Time each pass on synthetic chains of N patterns.

    .venv/bin/python benchmarks/bench_scaling.py [--sizes 250,500,1000,2000]

For each pass: median seconds of ``Pass.run`` alone and of the whole manager step (clone, pass,
topological sort, onnx checker, cleanup), and the ratio to the smallest size divided by the size
ratio ("per-node ratio": 1.0 is exactly linear, 2.0 would mean the time per node doubled).
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

import onnx_ir as ir
from onnx import TensorProto, helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table, median_seconds  # noqa: E402
from patterns import CASES as PATTERNS  # noqa: E402
from patterns import fan  # noqa: E402

from optimizer.manager import PassManager  # noqa: E402
from optimizer.passapi import PassContext  # noqa: E402
from optimizer.registry import get_pass  # noqa: E402
from optimizer.targets import load_target  # noqa: E402


def chain(count: int, block) -> ir.Model:
    """``count`` copies of ``block(i, source) -> (nodes, output)`` in a row, on a [1, 8, 4, 4] tensor."""
    nodes, source = [], "x"
    for i in range(count):
        block_nodes, source = block(i, source)
        nodes += block_nodes
    nodes.append(helper.make_node("Identity", [source], ["y"], name="out"))
    info = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 8, 4, 4]) for n in ("x", "y")]
    graph = helper.make_graph(nodes, "chain", [info[0]], [info[1]])
    return ir.serde.deserialize_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                                        ir_version=8))


def sandwich(i, source):
    perm = [0, 3, 2, 1]
    return [helper.make_node("Transpose", [source], [f"t{i}"], perm=perm, name=f"t{i}"),
            helper.make_node("Softmax", [f"t{i}"], [f"s{i}"], axis=-1, name=f"s{i}"),
            helper.make_node("Transpose", [f"s{i}"], [f"u{i}"], perm=perm, name=f"u{i}")], f"u{i}"


def shuffle_pair(i, source):
    return [helper.make_node("DepthToSpace", [source], [f"d{i}"], blocksize=2, mode="CRD", name=f"d{i}"),
            helper.make_node("SpaceToDepth", [f"d{i}"], [f"e{i}"], blocksize=2, name=f"e{i}")], f"e{i}"


def transposes(i, source):
    return [helper.make_node("Transpose", [source], [f"t{i}"], perm=[0, 1, 3, 2], name=f"t{i}")], f"t{i}"


def decomposed(count: int) -> ir.Model:
    model = chain(count, shuffle_pair)
    return PassManager(["decompose-depth-to-space"], context("onnxruntime")).run(model).model


def context(target: str) -> PassContext:
    return PassContext(load_target(target))


CASES = {
    "softmax-transpose": (lambda n: chain(n, sandwich), "onnxruntime"),
    "decompose-depth-to-space": (lambda n: chain(n, shuffle_pair), "onnxruntime"),
    "fuse-depth-to-space": (decomposed, "onnxruntime"),
    "transpose-whitelist": (lambda n: chain(n, transposes), "ascend310"),
    # the pass library: N copies of each pattern side by side (benchmarks/patterns.py), N / 4 of them
    **{name: (lambda n, name=name: fan(name, max(n // 4, 1)), "ascend310p") for name in PATTERNS},
}


def time_pass(name: str, model: ir.Model, ctx: PassContext, repeats: int) -> tuple[float, float]:
    """Median seconds of the pass's ``run`` alone (on a fresh clone) and of the whole manager step."""
    pass_ = get_pass(name)()
    copies = []

    def fresh_copy() -> None:
        copies.clear()
        gc.collect()  # no garbage from the last repeat is left to collect in this one
        copies.append(model.clone())
        ctx.forget()

    gc.disable()  # as the manager does while passes run
    try:
        run_only = median_seconds(lambda: pass_.run(copies[-1], ctx), repeats, setup=fresh_copy)
    finally:
        gc.enable()
    step = median_seconds(lambda: PassManager([name], ctx).run(model), repeats, setup=gc.collect)
    return run_only, step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="250,500,1000,2000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--passes", default=",".join(CASES), help="the passes to time (default: all)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    for name in args.passes.split(","):
        build, target = CASES[name]
        base = None
        for size in sizes:
            model = build(size)
            nodes = sum(1 for _ in model.graph)
            run_only, step = time_pass(name, model, context(target), args.repeats)
            base = base or (nodes, run_only, step)
            per_node = (run_only / base[1]) / (nodes / base[0])
            per_node_step = (step / base[2]) / (nodes / base[0])
            rows.append([name, str(nodes), f"{run_only * 1000:.1f}", f"{per_node:.2f}", f"{step * 1000:.1f}",
                         f"{per_node_step:.2f}"])
            print(f"{name} {nodes} nodes: run {run_only * 1000:.1f} ms, step {step * 1000:.1f} ms", file=sys.stderr)
    print(markdown_table(["pass", "nodes", "run ms", "per-node ratio", "step ms", "step per-node ratio"], rows))


if __name__ == "__main__":
    main()
