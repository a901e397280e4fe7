"""What onnx-opt costs over reading and writing the model: time and peak memory of whole commands,
each in a fresh process, as ratios to the I/O floor (``onnx.load`` + ``onnx.save``) measured in
the same run, interleaved: each round runs every tool once; the median of ``--repeats`` rounds,
and the ratios round by round (median and range), with onnx-opt's default pipeline against onnxsim.

    .venv/bin/python benchmarks/bench_overhead.py [--repeats 3] [--models sk,sr9,sr11,g1k,g10k,g100k] [--big]

Tools: the floor; onnx-ir's load + save; onnx-opt with its own passes and an opset upgrade
(``--passes softmax-transpose,fuse-depth-to-space --opset 13 --no-verify``); onnx-opt's default
pipeline with verification; onnxsim (which also verifies); onnxslim and onnxoptimizer when
installed (``pip install onnxslim onnxoptimizer``; they are no dependency). ``--big`` adds a model
with > 2 GB of external-data weights (slow) for the floor, onnx-ir and onnx-opt.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "examples"))
from common import markdown_table  # noqa: E402

PY = sys.executable
OPT = [PY, "-m", "optimizer"]
SCRIPTS = {
    "floor": "import onnx, sys; onnx.save(onnx.load(sys.argv[1]), sys.argv[2])",
    "floor-external": ("import onnx, sys; m = onnx.load(sys.argv[1]); "
                       "onnx.save(m, sys.argv[2], save_as_external_data=True, location=sys.argv[2].rsplit('/', 1)[-1] "
                       "+ '.data')"),
    "onnx-ir": "import onnx_ir as ir, sys; ir.save(ir.load(sys.argv[1]), sys.argv[2])",
    "onnx-ir-external": ("import onnx_ir as ir, sys; ir.save(ir.load(sys.argv[1]), sys.argv[2], "
                         "external_data=sys.argv[2].rsplit('/', 1)[-1] + '.data')"),
    "onnxsim": "import onnx, onnxsim, sys; m, ok = onnxsim.simplify(onnx.load(sys.argv[1])); onnx.save(m, sys.argv[2])",
    "onnxslim": "import onnxslim, sys; onnxslim.slim(sys.argv[1], sys.argv[2])",
    "onnxoptimizer": ("import onnx, onnxoptimizer, sys; "
                      "onnx.save(onnxoptimizer.optimize(onnx.load(sys.argv[1])), sys.argv[2])"),
}


def commands(source: Path, out: Path, external: bool) -> dict[str, list[str]]:
    """Every tool's command line on ``source`` writing ``out``."""
    suffix = "-external" if external else ""
    tools = {
        "floor": [PY, "-c", SCRIPTS["floor" + suffix], str(source), str(out)],
        "onnx-ir load + save": [PY, "-c", SCRIPTS["onnx-ir" + suffix], str(source), str(out)],
        "onnx-opt own passes": [*OPT, "optimize", str(source), "-o", str(out), "--passes",
                                "softmax-transpose,fuse-depth-to-space", "--opset", "13", "--no-verify", "-q"],
        "onnx-opt default": [*OPT, "optimize", str(source), "-o", str(out), "-q"],
    }
    if external:
        tools["onnx-opt default --no-verify"] = [*tools["onnx-opt default"], "--no-verify"]
        return tools
    for name in ("onnxsim", "onnxslim", "onnxoptimizer"):
        if importlib.util.find_spec(name) is not None:
            tools[name] = [PY, "-c", SCRIPTS[name], str(source), str(out)]
    return tools


def measure(command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one run of ``command``."""
    import time

    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status != 0:
        raise SystemExit(f"{' '.join(command)} failed: {process.stderr.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def sandwiches(path: Path, count: int) -> Path:
    """A weightless graph of ``count`` Transpose-Softmax-Transpose sandwiches and an Add each (4 nodes)."""
    import onnx
    from onnx import TensorProto, helper

    nodes, value = [], "x"
    for i in range(count):
        nodes += [helper.make_node("Transpose", [value], [f"t{i}"], perm=[0, 2, 3, 1], name=f"t{i}"),
                  helper.make_node("Softmax", [f"t{i}"], [f"s{i}"], axis=3, name=f"s{i}"),
                  helper.make_node("Transpose", [f"s{i}"], [f"u{i}"], perm=[0, 3, 1, 2], name=f"u{i}"),
                  helper.make_node("Add", [f"u{i}", value], [f"a{i}"], name=f"a{i}")]
        value = f"a{i}"
    shape = [1, 4, 2, 2]
    graph = helper.make_graph(nodes, "sandwiches", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info(value, TensorProto.FLOAT, shape)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)], ir_version=8), str(path))
    return path


def big_model(path: Path, gigabytes: float) -> Path:
    """A MatMul chain with ``gigabytes`` of float32 weights in one external-data file."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    width = 4096
    layers = int(gigabytes * 2**30 // (width * width * 4)) + 1
    nodes, inits, value = [], [], "x"
    for i in range(layers):
        weight = np.full((width, width), 1.0 / width, np.float32)
        inits.append(numpy_helper.from_array(weight, f"w{i}"))
        nodes += [helper.make_node("MatMul", [value, f"w{i}"], [f"m{i}"], name=f"m{i}"),
                  helper.make_node("Relu", [f"m{i}"], [f"r{i}"], name=f"r{i}")]
        value = f"r{i}"
    graph = helper.make_graph(nodes, "big", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
                              [helper.make_tensor_value_info(value, TensorProto.FLOAT, [1, width])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.save(model, str(path), save_as_external_data=True, location=path.name + ".data", size_threshold=0)
    return path


def build(name: str, folder: Path) -> Path:
    """The model ``name`` in ``folder``."""
    from torch_models import build as build_torch

    path = folder / f"{name}.onnx"
    if name == "sk":
        return build_torch("sk-resnext", 11, path)
    if name in ("sr9", "sr11"):
        return build_torch("srnet", int(name[2:]), path)
    if name.startswith("g"):
        return sandwiches(path, int(name[1:].replace("k", "000")) // 4)
    if name == "big":
        return big_model(path, 2.1)
    raise SystemExit(f"unknown model {name}")


def compile_sources() -> None:
    """Compile onnx-opt's modules to bytecode, as installing it does (pip compiles what it installs;
    the other tools' modules are compiled so). A checkout installed editable is otherwise compiled
    again at every start where the environment sets PYTHONDONTWRITEBYTECODE, as this machine's
    does: 0.2 s of every onnx-opt command."""
    import compileall

    for package in ("optimizer", "passes", "profiles"):
        compileall.compile_dir(str(ROOT / package), quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="sk,sr9,sr11,g1k,g10k,g100k")
    parser.add_argument("--tools", help="only these tools (comma-separated names as in the table)")
    parser.add_argument("--big", action="store_true", help="add the > 2 GB external-data model (slow)")
    parser.add_argument("--build", nargs=2, metavar=("MODEL", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        build(args.build[0], Path(args.build[1]))
        return
    names = args.models.split(",") + (["big"] if args.big else [])
    compile_sources()
    rows, pairs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in names:
            # built in a child: a child's peak RSS counts its parent's memory at fork time
            subprocess.run([PY, __file__, "--build", name, str(folder)], check=True)
            source = folder / f"{name}.onnx"
            tools = commands(source, folder / f"{name}.out.onnx", external=name == "big")
            if args.tools:
                tools = {k: v for k, v in tools.items() if k in args.tools.split(",") or k == "floor"}
            runs: dict[str, list[tuple[float, float]]] = {tool: [] for tool in tools}
            for _ in range(args.repeats):  # interleaved: every tool once per round
                for tool, command in tools.items():
                    runs[tool].append(measure(command))
                    for leftover in folder.glob(f"{name}.out.onnx*"):
                        leftover.unlink()
            floor_mb = statistics.median(m for _, m in runs["floor"])
            for tool, samples in runs.items():
                seconds = statistics.median(s for s, _ in samples)
                megabytes = statistics.median(m for _, m in samples)
                ratio = paired_ratio(samples, runs["floor"])
                rows.append([name, tool, f"{seconds:.2f}", ratio, f"{megabytes:.0f}", f"{megabytes / floor_mb:.2f}"])
                print(f"{name} {tool}: {seconds:.2f} s ({ratio}), {megabytes:.0f} MB "
                      f"({megabytes / floor_mb:.2f}x)", file=sys.stderr)
            if "onnx-opt default" in runs and "onnxsim" in runs:
                pairs.append(f"{name}: {paired_ratio(runs['onnx-opt default'], runs['onnxsim'])}")
    print(markdown_table(["model", "tool", "s", "time / floor (range)", "peak MB", "memory / floor"], rows))
    if pairs:
        print(f"\nonnx-opt default / onnxsim, round by round: {'; '.join(pairs)}")


def paired_ratio(samples: list[tuple[float, float]], baseline: list[tuple[float, float]]) -> str:
    """The median, and the range, of the time ratios of two tools' runs round by round (each round
    runs every tool once, so a drift of the machine's speed moves both sides)."""
    ratios = [seconds / base for (seconds, _), (base, _) in zip(samples, baseline, strict=True)]
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"


if __name__ == "__main__":
    main()
