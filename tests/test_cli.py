import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import digest, make_model, op_types, save
from onnx import helper

from optimizer import __version__
from optimizer.targets import load_target


def test_version_and_help(cli):
    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"onnx-opt {__version__}"
    code, out, _ = cli("--help")
    assert code == 0 and "optimize" in out and "passes" in out and "whitelist" in out


def test_help_does_not_load_heavy_modules():
    probe = (
        "import sys\nfrom optimizer.cli import run\nrun(['--help'])\nrun(['optimize', '--help'])\n"
        "print(sorted(m for m in ('onnx', 'onnxruntime', 'onnx_ir', 'numpy', 'rich', 'torch', 'onnxsim')"
        " if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_sympy_and_onnxs_reference_operators_load_only_when_used():
    probe = (
        "import sys\nfrom optimizer.cli import run\nrun(['passes'])\n"
        "import onnxscript.optimizer\n"
        "print('onnx_ir' in sys.modules, 'sympy.core' in sys.modules, 'onnx.reference.ops._op_list' in sys.modules)\n"
        "import onnx_ir\nprint(onnx_ir.SymbolicDim('N') * 2 + 1, 'sympy.core' in sys.modules)\n"
        "from onnx_ir import _symbolic_shapes\nprint(_symbolic_shapes.parse_symbolic_expression('max(N, 2)'))\n"
        "import onnx.reference.ops\nprint(onnx.reference.ops.load_op('', 'Celu', 13).__name__)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-4:] == ["True False False", "2*N + 1 True", "Max(2, N)", "Celu"]


def test_console_script_runs(examples, tmp_path):
    script = Path(sys.executable).parent / "onnx-opt"  # the console script installed beside this python
    result = subprocess.run([str(script), "passes", "--json"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "softmax-transpose" in result.stdout


def test_optimize_prints_the_table_and_writes_a_report(cli, examples, tmp_path):
    out, report = tmp_path / "sk.onnx", tmp_path / "report.json"
    code, stdout, err = cli(
        "optimize", examples / "skunit_opset11.onnx", "-o", out, "--opset", "13", "--report", report
    )
    assert code == 0, err
    assert "softmax-transpose" in stdout and "changed" in stdout and "passed" in stdout
    data = json.loads(report.read_text())
    assert data["input"] == str(examples / "skunit_opset11.onnx") and data["output"] == str(out)
    assert data["target"] == "onnxruntime" and data["pipeline"] == list(load_target("onnxruntime").pipeline)
    assert data["opset"] == {"before": 11, "after": 13}
    softmax = next(p for p in data["passes"] if p["name"] == "softmax-transpose")
    assert softmax["changes"] == 1 and len(softmax["changed_nodes"]) == 3
    assert {"matches", "changes", "seconds", "nodes_before", "nodes_after", "status"} <= set(softmax)
    assert data["verification"]["ok"] and data["verification"]["outputs"][0]["name"] == "output"
    assert {"max_abs_diff", "max_rel_diff", "cosine"} <= set(data["verification"]["outputs"][0])
    assert {"load", "passes", "verify", "save"} <= set(data["timings"])
    assert data["written"] == [str(out)]
    assert "Transpose" not in op_types(out)


def test_output_is_deterministic_and_the_input_untouched(cli, examples, tmp_path):
    source = tmp_path / "in.onnx"
    source.write_bytes((examples / "srnet_opset9.onnx").read_bytes())
    before = digest(source)
    for name in ("a.onnx", "b.onnx"):
        assert cli("optimize", source, "-o", tmp_path / name, "--target", "ascend310")[0] == 0
    assert digest(tmp_path / "a.onnx") == digest(tmp_path / "b.onnx")
    assert digest(source) == before


def test_external_data_is_kept(cli, tmp_path):
    weight = np.arange(4096, dtype=np.float32)
    model = make_model(
        [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
        [("x", [4096])],
        [("y", [4096])],
        initializers=[("w", weight)],
    )
    onnx.save(model, str(tmp_path / "m.onnx"), save_as_external_data=True, location="m.weights", size_threshold=0)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = cli("optimize", tmp_path / "m.onnx", "-o", out_dir / "o.onnx")
    assert code == 0, err
    assert sorted(p.name for p in out_dir.iterdir()) == ["o.onnx", "o.onnx.data"]
    saved = onnx.load(str(out_dir / "o.onnx"), load_external_data=False)
    assert saved.graph.initializer[0].data_location == onnx.TensorProto.EXTERNAL


def test_in_place_overwrites_the_input_only_when_asked(cli, examples, tmp_path):
    source = tmp_path / "m.onnx"
    source.write_bytes((examples / "srnet_opset9.onnx").read_bytes())
    code, _, err = cli("optimize", source, "-o", source)
    assert code == 2 and "is the input; pass --in-place" in err
    code, _, err = cli("optimize", source, "--in-place", "--passes", "fuse-depth-to-space,simplify")
    assert code == 0, err
    assert "DepthToSpace" not in op_types(source)  # opset 9: CRD cannot be fused
    assert "Constant" not in op_types(source)  # simplify folded the shape constants


def test_dry_run_lists_changed_nodes_and_writes_nothing(cli, examples, tmp_path):
    code, out, err = cli(
        "optimize",
        examples / "skunit_opset11.onnx",
        "-o",
        tmp_path / "o.onnx",
        "--opset",
        "13",
        "--passes",
        "softmax-transpose",
        "--dry-run",
    )
    assert code == 0, err
    assert "softmax-transpose would change: /softmax/Transpose, /softmax/Softmax, /softmax/Transpose_1" in out
    assert "dry run: nothing written" in out
    assert list(tmp_path.iterdir()) == []


def test_passes_none_runs_no_pass(cli, examples, tmp_path):
    code, _, _ = cli(
        "optimize",
        examples / "skunit_opset11.onnx",
        "-o",
        tmp_path / "o.onnx",
        "--passes",
        "none",
        "--report",
        tmp_path / "r.json",
    )
    assert code == 0
    assert json.loads((tmp_path / "r.json").read_text())["passes"] == []
    assert op_types(tmp_path / "o.onnx") == op_types(examples / "skunit_opset11.onnx")


def test_quiet_prints_nothing(cli, examples, tmp_path):
    code, out, err = cli("-q", "optimize", examples / "srnet_opset9.onnx", "-o", tmp_path / "o.onnx")
    assert (code, out, err) == (0, "", "")
    code, out, err = cli("optimize", examples / "srnet_opset9.onnx", "-o", tmp_path / "o.onnx", "-q")
    assert (code, out, err) == (0, "", "")


def test_passes_lists_pipelines(cli):
    code, out, _ = cli("passes", "--json")
    data = json.loads(out)
    ascend310 = data["targets"]["ascend310"]["pipeline"]
    assert ascend310[0] == "simplify" and ascend310[-2:] == ["decompose-depth-to-space", "transpose-whitelist"]
    for target in ("ascend310p", "ascend910b", "onnxruntime"):
        pipeline = data["targets"][target]["pipeline"]
        assert pipeline[0] == "simplify" and pipeline[-2:] == ["softmax-transpose", "fuse-depth-to-space"]
        assert pipeline == list(load_target(target).pipeline) and list(data["targets"][target]["why"]) == pipeline
    assert "fold-transpose-batchnorm" not in data["targets"]["onnxruntime"]["pipeline"]  # 2.4x slower there
    code, out, _ = cli("passes")
    assert code == 0 and "transpose-whitelist" in out and "target ascend310:" in out


def unrunnable_dynamic_model(tmp_path):
    """A dynamic dim no size fits: 3n is never 35, so verification finds no input shapes."""
    model = make_model(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")],
        [("x", ["n", 3])],
        [("y", [5, 7])],
        initializers=[("shape", np.array([5, 7], np.int64))],
    )
    return save(model, tmp_path / "dyn.onnx")


BAD_INPUTS = {
    "missing file": (lambda t, e: ["optimize", t / "absent.onnx", "-o", t / "o.onnx"], "no such file"),
    "empty file": (lambda t, e: ["optimize", _write(t / "e.onnx", b""), "-o", t / "o.onnx"], "empty file"),
    "text file": (
        lambda t, e: ["optimize", _write(t / "t.onnx", b"not a model"), "-o", t / "o.onnx"],
        "not an ONNX model",
    ),
    "truncated": (
        lambda t, e: [
            "optimize",
            _write(t / "c.onnx", (e / "srnet_opset9.onnx").read_bytes()[:5000]),
            "-o",
            t / "o.onnx",
        ],
        "truncated",
    ),
    "directory": (lambda t, e: ["optimize", t, "-o", t / "o.onnx"], "is a directory"),
    "no output": (lambda t, e: ["optimize", e / "srnet_opset9.onnx"], "no output: give -o OUT"),
    "output folder missing": (
        lambda t, e: ["optimize", e / "srnet_opset9.onnx", "-o", t / "x" / "o.onnx"],
        "does not exist",
    ),
    "report folder missing": (
        lambda t, e: ["optimize", e / "srnet_opset9.onnx", "-o", t / "o.onnx", "--report", t / "x" / "r.json"],
        "does not exist",
    ),
    "bad shape": (
        lambda t, e: ["optimize", e / "srnet_opset9.onnx", "-o", t / "o.onnx", "--input-shape", "image"],
        "Invalid value for '--input-shape'",
    ),
    "unknown shape name": (
        lambda t, e: ["optimize", e / "srnet_opset9.onnx", "-o", t / "o.onnx", "--input-shape", "img:1,3,8,8"],
        "'img', which is not an input",
    ),
    "dynamic dim no size fits": (
        lambda t, e: ["optimize", unrunnable_dynamic_model(t), "-o", t / "o.onnx"],
        "cannot find input shapes the model runs with for 'n' (input 'x', axis 0); give their sizes with "
        "--verify-shape 'x:<n>,3'",
    ),
    "unknown target": (
        lambda t, e: ["optimize", e / "srnet_opset9.onnx", "-o", t / "o.onnx", "--target", "ascend301"],
        "unknown target 'ascend301'; did you mean ascend310",
    ),
    "unknown option": (lambda t, e: ["optimize", e / "srnet_opset9.onnx", "--frobnicate"], "No such option"),
    "bad npz": (
        lambda t, e: ["optimize", e / "srnet_opset9.onnx", "-o", t / "o.onnx", "--inputs", _write(t / "i.npz", b"x")],
        "not a readable .npz",
    ),
    "both outputs": (
        lambda t, e: ["optimize", e / "srnet_opset9.onnx", "-o", t / "o.onnx", "--in-place"],
        "either -o OUT or --in-place",
    ),
    "bad passes": (
        lambda t, e: ["optimize", e / "srnet_opset9.onnx", "-o", t / "o.onnx", "--passes", ","],
        "give pass names",
    ),
    "downgrade impossible": (
        lambda t, e: ["optimize", e / "srnet_opset11.onnx", "-o", t / "o.onnx", "--opset", "9", "--passes", "none"],
        "needs decompose-depth-to-space before it can be converted",
    ),
    "opset unknown": (
        lambda t, e: ["optimize", e / "skunit_opset11.onnx", "-o", t / "o.onnx", "--opset", "99"],
        "--opset 99: onnx-opt converts to opsets 7 to",
    ),
}


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_gives_one_line_and_exit_2(cli, examples, tmp_path, case):
    make_args, message = BAD_INPUTS[case]
    work = tmp_path / "work"
    work.mkdir()
    args = make_args(work, examples)
    before = {p.name: digest(p) for p in work.iterdir() if p.is_file()}
    code, out, err = cli(*args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and err.startswith("onnx-opt: ")
    assert message in err
    assert "Traceback" not in err + out
    assert {p.name: digest(p) for p in work.iterdir() if p.is_file()} == before  # nothing written or changed


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "optimizer", "optimize", str(tmp_path / "x.onnx"), "-o", str(tmp_path / "o.onnx")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr == f"onnx-opt: error: {tmp_path / 'x.onnx'}: no such file\n"


def test_internal_errors_exit_1_and_debug_shows_the_traceback(cli, examples, tmp_path, monkeypatch):
    import optimizer.optimize

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(optimizer.optimize, "save_model", explode)
    monkeypatch.setattr(optimizer.optimize, "staged_save", explode)  # the save of a verified run
    code, _, err = cli("optimize", examples / "srnet_opset9.onnx", "-o", tmp_path / "o.onnx")
    assert code == 1
    assert err.strip() == (
        "onnx-opt: internal error: RuntimeError: disk on fire (rerun with --debug for the traceback)"
    )
    code, _, err = cli("--debug", "optimize", examples / "srnet_opset9.onnx", "-o", tmp_path / "o.onnx")
    assert code == 1 and "Traceback" in err
    assert err.splitlines()[-1] == "onnx-opt: internal error: RuntimeError: disk on fire"
