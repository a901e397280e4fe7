import ast
import os
import shutil
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import digest, make_model
from onnx import helper

from optimizer import whitelist
from optimizer.errors import UserError
from optimizer.manager import PassManager
from optimizer.modelio import load_model
from optimizer.passapi import PassContext
from optimizer.targets import load_target
from optimizer.testing import check_pass

PASS = "transpose-whitelist"
FIXTURES = Path(__file__).resolve().parent.parent / "data" / "opp"
RDN_SHAPE = [1, 64, 2, 2, 114, 114]


def test_finds_the_rdn_shape_in_the_pixelshuffle_net_at_opset_9(torch_model):
    result = check_pass(PASS, torch_model("srnet", 9), target="ascend310", expect_changes=0)
    assert result.record.findings["transpose_shapes"] == [RDN_SHAPE]
    assert result.record.matches == 1


def test_needs_the_capability_of_an_ascend_target(torch_model):
    ctx = PassContext(load_target("onnxruntime"))
    record = PassManager([PASS], ctx).run(load_model(torch_model("srnet", 9))).records[0]
    assert record.status == "skipped" and "lacks transpose-whitelist" in record.reason


def test_dynamic_batch_uses_input_shape_after_simplify(torch_model, cli, tmp_path):
    source = torch_model("srnet", 9, dynamic_batch=True)
    check = check_pass(PASS, source, target="ascend310", input_shapes={"image": [1, 3, 114, 114]})
    assert check.record.findings["transpose_shapes"] == [RDN_SHAPE]  # shape subgraphs inferred with the shape
    code, out, err = cli(
        "optimize",
        source,
        "--target",
        "ascend310",
        "--dry-run",
        "--input-shape",
        "image:4,3,114,114",
        "--report",
        tmp_path / "r.json",
    )
    assert code == 0, err
    import json

    record = next(p for p in json.loads((tmp_path / "r.json").read_text())["passes"] if p["name"] == PASS)
    assert record["findings"]["transpose_shapes"] == [[4, 64, 2, 2, 114, 114]]


def test_without_shapes_the_transpose_is_left_with_the_reason():
    model = make_model(
        [helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0], name="t")], [("x", ["n", 4])], [("y", [4, "n"])]
    )
    result = check_pass(PASS, model, target="ascend310", input_shapes={"x": [2, 4]})
    assert result.record.findings["transpose_shapes"] == [[2, 4]]
    import onnx_ir as ir

    from optimizer.manager import PassManager
    from optimizer.passapi import PassContext
    from optimizer.targets import load_target

    run = PassManager([PASS], PassContext(load_target("ascend310"))).run(ir.serde.deserialize_model(model))
    assert run.records[0].skips == [{"node": "t", "reason": "input shape is not static (fix it with --input-shape)"}]


def test_transposes_of_constants_are_not_listed():
    model = make_model(
        [
            helper.make_node("Transpose", ["w"], ["wt"], perm=[1, 0], name="tw"),
            helper.make_node("Add", ["x", "wt"], ["y"], name="add"),
        ],
        [("x", [3, 2])],
        [("y", [3, 2])],
        initializers=[("w", np.ones((2, 3), np.float32))],
    )
    assert check_pass(PASS, model, target="ascend310").record.findings["transpose_shapes"] == []


# --- the OPP file editor -------------------------------------------------------------------------


def opp_with(tmp_path, fixture="transpose_2021.py") -> Path:
    opp = tmp_path / "opp"
    target = opp / whitelist.TRANSPOSE_FILE
    target.parent.mkdir(parents=True)
    shutil.copy(FIXTURES / fixture, target)
    return opp


def run_function(path: Path, shape) -> bool:
    """Execute the edited file's function on its own, as ATC's check_supported would call it."""
    tree = ast.parse(path.read_text())
    function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == whitelist.FUNCTION)
    helpers = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_fuzzy_match"]
    namespace: dict = {}
    exec(compile(ast.Module(body=[*helpers, function], type_ignores=[]), str(path), "exec"), namespace)
    return namespace[whitelist.FUNCTION](shape, 8)


@pytest.mark.parametrize("fixture", ["transpose_2021.py", "transpose_2022.py"])
def test_appends_in_the_files_layout_and_touches_nothing_else(tmp_path, fixture):
    opp = opp_with(tmp_path, fixture)
    path = opp / whitelist.TRANSPOSE_FILE
    original = path.read_text()
    assert not run_function(path, RDN_SHAPE)
    edit = whitelist.add_shapes(opp, [RDN_SHAPE, [8, 8], [2, 3, 4]])
    assert edit.added == [RDN_SHAPE, [2, 3, 4]] and edit.present == [[8, 8]] and edit.written
    text = path.read_text()
    assert (
        "                         [3, 5, 7],\n                         [1, 64, 2, 2, 114, 114], [2, 3, 4]\n"
        "                       ]\n" in text
    )
    before, after = original.splitlines(), text.splitlines()
    assert len(after) == len(before) + 1
    first = next(i for i, (a, b) in enumerate(zip(before, after, strict=False)) if a != b)
    assert after[:first] == before[:first]
    assert after[first] == before[first] + ","  # the old last entry gains its comma
    assert after[first + 2 :] == before[first + 1 :]  # every line after the new one is the same
    assert run_function(path, RDN_SHAPE) and run_function(path, [2, 3, 4]) and not run_function(path, [7, 7])
    assert whitelist.listed_shapes(path)[-2:] == [RDN_SHAPE, [2, 3, 4]]
    if fixture == "transpose_2022.py":  # the other lists are untouched
        for line in (
            "white_list_shape_lhisi = [[1, 3, 224, 224], [2, 2]]",
            "[-1, 8, 64, -1], [1, -1, 3]",
            "                         [9, 9]\n                       ]",
        ):
            assert line in text


def test_idempotent_backup_once_and_revert_restores_every_byte(tmp_path):
    opp = opp_with(tmp_path)
    path = opp / whitelist.TRANSPOSE_FILE
    original = digest(path)
    first = whitelist.add_shapes(opp, [RDN_SHAPE])
    backup = first.backup
    assert digest(backup) == original
    edited = digest(path)
    again = whitelist.add_shapes(opp, [RDN_SHAPE])
    assert not again.written and again.added == [] and digest(path) == edited
    whitelist.add_shapes(opp, [[5, 5]])
    assert digest(backup) == original  # backed up once, before the first edit
    assert whitelist.revert(opp) == path
    assert digest(path) == original and not backup.exists()
    names = sorted(p.name for p in path.parent.iterdir())
    assert names == ["transpose.py", "transpose.py.onnx-opt.lock"]  # no temporary files; the lock file stays
    with pytest.raises(UserError, match="no backup"):
        whitelist.revert(opp)


def test_concurrent_edits_of_one_opp_keep_every_shape(tmp_path, monkeypatch):
    """Two runs at once: the first pauses just before it replaces the file. Without the lock the
    second reads the unedited file and writes, the first then writes its own edit over it, and the
    second's shape is lost."""
    opp = opp_with(tmp_path)
    path = opp / whitelist.TRANSPOSE_FILE
    original = digest(path)
    paused, release, second_done = threading.Event(), threading.Event(), threading.Event()
    real_write = whitelist._atomic_write

    def write(target, data, mode_from):
        if threading.current_thread().name == "first" and target.name == path.name:
            paused.set()
            release.wait()
        real_write(target, data, mode_from)

    monkeypatch.setattr(whitelist, "_atomic_write", write)
    results = {}

    def edit(shape):
        results[threading.current_thread().name] = whitelist.add_shapes(opp, [shape])
        if threading.current_thread().name == "second":
            second_done.set()

    first = threading.Thread(target=edit, args=([4, 4],), name="first")
    second = threading.Thread(target=edit, args=([6, 6],), name="second")
    first.start()
    paused.wait()
    second.start()
    second_done.wait(timeout=2)  # with the lock the second run waits for the first; only a bound
    release.set()
    first.join()
    second.join()
    assert results["first"].added == [[4, 4]] and results["second"].added == [[6, 6]]
    assert whitelist.listed_shapes(path)[-2:] == [[4, 4], [6, 6]]
    assert digest(path.with_name(path.name + whitelist.BACKUP_SUFFIX)) == original  # from the unedited file


def test_dry_run_shows_a_diff_and_writes_nothing(tmp_path, cli):
    opp = opp_with(tmp_path)
    path = opp / whitelist.TRANSPOSE_FILE
    original = digest(path)
    edit = whitelist.add_shapes(opp, [RDN_SHAPE], dry_run=True)
    assert not edit.written and edit.backup is None
    assert (
        "-                         [3, 5, 7]\n+                         [3, 5, 7],\n"
        "+                         [1, 64, 2, 2, 114, 114]\n" in edit.diff
    )
    assert digest(path) == original and sorted(p.name for p in path.parent.iterdir()) == ["transpose.py"]


def test_crlf_files_keep_their_line_ends(tmp_path):
    opp = opp_with(tmp_path)
    path = opp / whitelist.TRANSPOSE_FILE
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    whitelist.add_shapes(opp, [RDN_SHAPE])
    data = path.read_bytes()
    assert b"[3, 5, 7],\r\n                         [1, 64, 2, 2, 114, 114]\r\n" in data
    assert data.count(b"\n") == data.count(b"\r\n")


LAYOUTS = {
    "one line": "    white_list_shape = [[1, 2], [3, 4]]\n",
    "not a literal": "    white_list_shape = [[i, i] for i in range(3)]\n",
    "twice": "    white_list_shape = [\n        [1, 2]\n    ]\n    white_list_shape = [\n        [3]\n    ]\n",
    "not lists of ints": "    white_list_shape = [\n        (1, 2)\n    ]\n",
    "missing": "    other = [\n        [1, 2]\n    ]\n",
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_other_layouts_are_refused_and_left_untouched(tmp_path, layout):
    opp = tmp_path / "opp"
    path = opp / whitelist.TRANSPOSE_FILE
    path.parent.mkdir(parents=True)
    path.write_text(f"def {whitelist.FUNCTION}(shape, core_num):\n{LAYOUTS[layout]}    return False\n")
    before = digest(path)
    with pytest.raises(UserError, match="laid out differently"):
        whitelist.add_shapes(opp, [RDN_SHAPE])
    assert digest(path) == before and len(list(path.parent.iterdir())) == 1


def test_missing_read_only_and_invalid_files(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        whitelist.add_shapes(tmp_path / "nowhere", [RDN_SHAPE])
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="is .* an OPP folder"):
        whitelist.add_shapes(tmp_path / "empty", [RDN_SHAPE])
    opp = opp_with(tmp_path)
    path = opp / whitelist.TRANSPOSE_FILE
    path.chmod(stat.S_IRUSR | stat.S_IRGRP)
    with pytest.raises(UserError, match="read-only"):
        whitelist.add_shapes(opp, [RDN_SHAPE])
    path.chmod(0o644)
    path.write_text("def broken(:\n")
    with pytest.raises(UserError, match="not valid Python"):
        whitelist.add_shapes(opp, [RDN_SHAPE])
    with pytest.raises(UserError, match="positive integers"):
        whitelist.add_shapes(opp, [[1, 0]])


def test_the_whitelist_command_from_a_model(cli, torch_model, tmp_path):
    opp = opp_with(tmp_path)
    path = opp / whitelist.TRANSPOSE_FILE
    original = digest(path)
    code, out, err = cli("whitelist", torch_model("srnet", 9), "--opp", opp, "--dry-run")
    assert code == 0 and "+                         [1, 64, 2, 2, 114, 114]" in out and digest(path) == original
    code, out, err = cli("whitelist", torch_model("srnet", 9), "--opp", opp)
    assert code == 0 and "added [1, 64, 2, 2, 114, 114]" in err
    assert run_function(path, RDN_SHAPE)
    code, out, err = cli("whitelist", torch_model("srnet", 9), "--opp", opp)
    assert code == 0 and "nothing to add" in err
    code, out, err = cli("whitelist", "--revert", "--opp", opp)
    assert code == 0 and digest(path) == original


def test_the_whitelist_command_reads_ascend_opp_path(cli, torch_model, tmp_path, monkeypatch):
    opp = opp_with(tmp_path)
    monkeypatch.setenv("ASCEND_OPP_PATH", str(opp))
    assert cli("whitelist", torch_model("srnet", 9))[0] == 0
    assert RDN_SHAPE in whitelist.listed_shapes(opp / whitelist.TRANSPOSE_FILE)
    monkeypatch.delenv("ASCEND_OPP_PATH")
    code, _, err = cli("whitelist", torch_model("srnet", 9))
    assert code == 2 and "give --opp OPP_DIR or set ASCEND_OPP_PATH" in err


def test_the_whitelist_command_from_an_msprof_op_summary(cli, tmp_path):
    opp = opp_with(tmp_path)
    summary = tmp_path / "op_summary_0_1.csv"
    summary.write_text(
        "Model Name,Model ID,Task ID,Stream ID,Infer ID,Op Name,OP Type,Task Type,Task Start Time,"
        "Task Duration(us),Task Wait Time(us),Block Dim,Input Shapes,Input Data Types,Input Formats,"
        "Output Shapes,Output Data Types,Output Formats\n"
        'rdn_x2_bs1,1,3,5,1,Transpose_3,TransposeD,AI_CORE,1000,934287.8,0,2,"""1,64,2,2,114,114""",DT_FLOAT16,'
        'ND,"""1,64,114,2,114,2""",DT_FLOAT16,ND\n'
        'rdn_x2_bs1,1,4,5,1,Conv_4,Conv2D,AI_CORE,2000,80.2,0,2,"""1,4,114,114,16;4,64,16,16""",DT_FLOAT16;'
        'DT_FLOAT16,NC1HWC0;FRACTAL_Z,"""1,4,114,114,16""",DT_FLOAT16,NC1HWC0\n'
    )
    code, out, err = cli("whitelist", "--shapes-from", summary, "--opp", opp)
    assert code == 0, err
    assert whitelist.listed_shapes(opp / whitelist.TRANSPOSE_FILE)[-1] == RDN_SHAPE


def test_whitelist_command_bad_input(cli, tmp_path):
    opp = opp_with(tmp_path)
    code, _, err = cli("whitelist", "--opp", opp)
    assert code == 2 and "give a MODEL, --shapes-from PROFILE, or --revert" in err
    code, _, err = cli("whitelist", tmp_path / "nope.onnx", "--opp", opp)
    assert code == 2 and "no such file" in err
    assert not os.path.exists(opp / (str(whitelist.TRANSPOSE_FILE) + whitelist.BACKUP_SUFFIX))
