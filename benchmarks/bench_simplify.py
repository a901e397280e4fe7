"""How far does ``simplify`` fold, against onnxscript's optimizer and onnxslim, and how long does it take?

    .venv/bin/python benchmarks/bench_simplify.py [--repeats 5] [--models vad,skunit,...]

For each model: nodes before and after each simplifier, every If / Loop body and function counted,
and its wall time as a ratio to onnxscript's (median of ``--repeats`` runs, the simplifiers
interleaved in every repeat so drift hits all alike). onnx-opt is the ``simplify`` pass alone
(``Pass.run``: onnxsim, onnxscript's optimizer and onnx-opt's folds, in rounds, every result
checked); onnxscript is ``onnxscript.optimizer.optimize`` with its defaults (functions inlined);
onnxslim is ``onnxslim.slim`` when installed (it is not a dependency: ``pip install onnxslim``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import onnx
import onnx_ir as ir

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "examples"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import markdown_table  # noqa: E402

from optimizer.passapi import PassContext  # noqa: E402
from optimizer.registry import get_pass  # noqa: E402
from optimizer.targets import load_target  # noqa: E402

# name -> how to get it: a bundled example file, or (torch model name, opset) built with torch.
MODELS: dict[str, str | tuple[str, int]] = {
    "vad": ("vad", 17),
    "manual-shuffle": ("manual-shuffle", 11),
    "skunit": "skunit_opset11.onnx",
    "ghost": "ghost_opset11.onnx",
    "srnet": "srnet_opset11.onnx",
}


def count_nodes(proto: onnx.ModelProto) -> int:
    """Nodes of the model, every subgraph and function counted (on the proto, so every tool is
    counted by the same code)."""

    def in_graph(nodes) -> int:
        total = 0
        for node in nodes:
            total += 1
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    total += in_graph(attr.g.node)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    total += sum(in_graph(graph.node) for graph in attr.graphs)
        return total

    return in_graph(proto.graph.node) + sum(in_graph(function.node) for function in proto.functions)


def load(name: str, folder: Path) -> onnx.ModelProto:
    source = MODELS[name]
    if isinstance(source, str):
        return onnx.load(str(ROOT / "examples" / source))
    from torch_models import build

    model, opset = source
    return onnx.load(str(build(model, opset, folder / f"{model}_opset{opset}.onnx")))


def onnx_opt(proto: onnx.ModelProto) -> onnx.ModelProto:
    model = ir.serde.deserialize_model(proto)
    result = get_pass("simplify")().run(model, PassContext(load_target("onnxruntime")))
    return ir.serde.serialize_model(result.model)


def onnxscript_optimizer(proto: onnx.ModelProto) -> onnx.ModelProto:
    import onnxscript.optimizer

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    return onnxscript.optimizer.optimize(model)


def onnxslim_slim(proto: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    with contextlib.redirect_stdout(sys.stderr):
        return onnxslim.slim(model)


def onnxslim_installed() -> bool:
    try:
        import onnxslim  # noqa: F401
    except ImportError:
        return False
    return True


def measure(proto: onnx.ModelProto, tools: dict[str, Callable], repeats: int) -> dict[str, tuple[int | str, float]]:
    """Each tool's node count (or why it failed) and median seconds, the tools interleaved."""
    times: dict[str, list[float]] = {name: [] for name in tools}
    counts: dict[str, int | str] = {}
    for _ in range(repeats):
        for name, tool in tools.items():
            if isinstance(counts.get(name), str):
                continue
            started = time.perf_counter()
            try:
                result = tool(proto)
            except Exception as exc:  # a tool that fails on a model is a result, not a crash
                counts[name] = f"failed: {type(exc).__name__}"
                continue
            times[name].append(time.perf_counter() - started)
            counts[name] = count_nodes(result)
    return {name: (counts[name], statistics.median(times[name]) if times[name] else float("nan")) for name in tools}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # onnxscript's notes on what it skipped
    tools: dict[str, Callable] = {"onnx-opt simplify": onnx_opt, "onnxscript optimizer": onnxscript_optimizer}
    slim = onnxslim_installed()
    if slim:
        tools["onnxslim"] = onnxslim_slim
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-simplify-") as tmp:
        for name in args.models.split(","):
            proto = load(name, Path(tmp))
            results = measure(proto, tools, args.repeats)
            baseline = results["onnxscript optimizer"][1]
            cells = []
            for tool in tools:
                count, seconds = results[tool]
                ratio = f"{seconds / baseline:.2f}x" if isinstance(count, int) else "-"
                cells.append(f"{count} ({ratio})" if isinstance(count, int) else count)
            if not slim:
                cells.append("not installed")
            rows.append([name, str(count_nodes(proto)), *cells])
            print(f"{name}: {results}", file=sys.stderr)
    header = ["model", "nodes before", "onnx-opt simplify", "onnxscript optimizer", "onnxslim"]
    print(markdown_table(header, rows))
    print(f"\nnodes after (wall time / onnxscript's, median of {args.repeats} interleaved runs); "
          "every If / Loop body and function counted")


if __name__ == "__main__":
    main()
