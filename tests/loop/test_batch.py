import json
import os
import shutil
import signal
import subprocess
import sys

import onnx
import pytest

from optimizer.loop.batch_manifest import read_items
from optimizer.loop.batch_status import BatchStatus

EXAMPLES = ["ghost_opset11.onnx", "skunit_opset11.onnx", "srnet_opset9.onnx"]


@pytest.fixture
def zoo(tmp_path, examples):
    """A folder of the examples (one in a subfolder) and a broken model."""
    folder = tmp_path / "zoo"
    (folder / "sr").mkdir(parents=True)
    for name in EXAMPLES[:2]:
        shutil.copy(examples / name, folder / name)
    shutil.copy(examples / EXAMPLES[2], folder / "sr" / EXAMPLES[2])
    (folder / "broken.onnx").write_bytes(b"not a model")
    return folder


def status_of(outdir):
    records = json.loads((outdir / "batch-status.json").read_text())["models"]
    return {key: record["status"] for key, record in records.items()}


def assert_complete(outdir, keys):
    for key in keys:
        onnx.checker.check_model(onnx.load(str(outdir / key)), full_check=True)


KEYS = ["ghost_opset11.onnx", "skunit_opset11.onnx", "sr/srnet_opset9.onnx"]


def run_batch_cli(cli, zoo, outdir, *args):
    return cli("batch", zoo, "-o", outdir, *args)


def test_a_folder_is_optimised_a_broken_model_fails_alone_and_a_rerun_resumes(cli, zoo, tmp_path):
    outdir = tmp_path / "out"
    before = {p: p.read_bytes() for p in zoo.rglob("*.onnx")}
    code, out, err = run_batch_cli(cli, zoo, outdir, "--workers", "2")
    assert code == 1
    assert status_of(outdir) == {"broken.onnx": "failed", **dict.fromkeys(KEYS, "done")}
    assert_complete(outdir, KEYS)
    assert {p: p.read_bytes() for p in zoo.rglob("*.onnx")} == before
    summary = json.loads((outdir / "batch.json").read_text())["models"]
    broken = next(row for row in summary if row["model"] == "broken.onnx")
    assert "not an ONNX model" in broken["reason"] and "\n" not in broken["reason"]
    ghost = next(row for row in summary if row["model"] == "ghost_opset11.onnx")
    assert ghost["nodes_before"] == 21 and ghost["nodes_after"] < 21 and ghost["verification"] == "ok"
    assert ghost["passes"]["simplify"]["changes"] > 0
    assert "broken.onnx" in out and "failed" in out  # the summary table

    done_at = {key: (outdir / key).stat().st_mtime_ns for key in KEYS}
    shutil.copy(zoo / "ghost_opset11.onnx", zoo / "broken.onnx")  # repaired
    code, _, err = run_batch_cli(cli, zoo, outdir, "--workers", "2")
    assert code == 0, err
    assert "3 of 4 models already done" in err and err.count("] done: ") == 1
    assert status_of(outdir) == dict.fromkeys(["broken.onnx", *KEYS], "done")
    assert {key: (outdir / key).stat().st_mtime_ns for key in KEYS} == done_at

    code, _, err = run_batch_cli(cli, zoo, outdir, "--workers", "2", "--passes", "none")
    assert code == 0 and err.count("] done: ") == 4  # other settings: every model again


def test_a_deleted_output_or_a_changed_input_is_done_again(cli, zoo, tmp_path):
    (zoo / "broken.onnx").unlink()
    outdir = tmp_path / "out"
    assert run_batch_cli(cli, zoo, outdir, "--workers", "1")[0] == 0
    (outdir / KEYS[0]).unlink()
    shutil.copy(zoo / "skunit_opset11.onnx", zoo / "ghost_opset11.onnx")
    code, _, err = run_batch_cli(cli, zoo, outdir, "--workers", "1")
    assert code == 0 and err.count("] done: ") == 1 and "ghost_opset11.onnx" in err  # (both changes: one model)
    os.utime(zoo / "sr" / EXAMPLES[2])  # touched: its fingerprint changes
    code, _, err = run_batch_cli(cli, zoo, outdir, "--workers", "1")
    assert err.count("] done: ") == 1 and "sr/srnet_opset9.onnx" in err


def test_a_manifest_sets_shapes_targets_and_options_per_model(cli, zoo, tmp_path):
    dynamic = onnx.load(str(zoo / "ghost_opset11.onnx"))
    dynamic.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"
    onnx.save(dynamic, str(zoo / "sr" / "dynamic.onnx"))
    manifest = zoo / "zoo.yaml"
    manifest.write_text(
        "defaults:\n  passes: simplify\nmodels:\n"
        "  - ghost_opset11.onnx\n"
        "  - path: sr/dynamic.onnx\n    output: sr9.onnx\n    target: ascend310\n"
        "    passes: +merge-casts\n    input_shapes: 'image:2,16,28,28'\n"
        "    options: {split-avgpool.max_kernel: 127}\n"
    )
    outdir = tmp_path / "out"
    code, _, err = cli("batch", manifest, "-o", outdir, "--workers", "2")
    assert code == 0, err
    rows = {row["model"]: row for row in json.loads((outdir / "batch.json").read_text())["models"]}
    assert set(rows) == {"ghost_opset11.onnx", "sr9.onnx"}
    assert list(rows["ghost_opset11.onnx"]["passes"]) == ["simplify", "cleanup"]
    assert rows["sr9.onnx"]["target"] == "ascend310" and "merge-casts" in rows["sr9.onnx"]["passes"]
    shape = onnx.load(str(outdir / "sr9.onnx")).graph.input[0].type.tensor_type.shape
    assert [d.dim_value for d in shape.dim] == [2, 16, 28, 28]
    assert json.loads((outdir / "batch-status.json").read_text())["models"]["sr9.onnx"]["status"] == "done"


@pytest.mark.parametrize(("text", "message"), [
    ("models: [ghost_opset11.onnx, {path: nowhere.onnx}]", "model 2: nowhere.onnx is not a file"),
    ("models: [{path: ghost_opset11.onnx, colour: red}]", "model 1: unknown key 'colour'"),
    ("models: [ghost_opset11.onnx, {path: skunit_opset11.onnx, output: ghost_opset11.onnx}]", "would both be written"),
    ("models: [{path: ghost_opset11.onnx, passes: '+'}]", "model 1: passes: + and - need a pass name"),
    ("models: [{path: ghost_opset11.onnx, input_shapes: 'x:a'}]", "model 1: input_shapes:"),
    ("models: [{path: ghost_opset11.onnx, output: ../x.onnx}]", "must be a path inside the output folder"),
    ("models: {path: [", "not valid YAML"),
    ("models: 3", "a manifest is a list of models or a mapping with a 'models' list"),
])
def test_a_bad_manifest_is_one_line_and_exit_2_before_any_work(cli, zoo, tmp_path, text, message):
    manifest = zoo / "bad.yaml"
    manifest.write_text(text)
    code, out, err = cli("batch", manifest, "-o", tmp_path / "out")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_an_output_folder_inside_the_input_folder_is_not_read_as_input(zoo):
    (zoo / "broken.onnx").unlink()
    items = read_items(zoo, zoo / "out", {})
    (zoo / "out").mkdir()
    shutil.copy(zoo / "ghost_opset11.onnx", zoo / "out" / "ghost_opset11.onnx")
    assert [item.key for item in read_items(zoo, zoo / "out", {})] == [item.key for item in items] == KEYS


def test_a_model_that_kills_its_worker_fails_alone(zoo, tmp_path):
    from batch_tasks import die_on_crash_model

    from optimizer.loop.batch import run_pool

    (zoo / "broken.onnx").rename(zoo / "crash.onnx")
    items = read_items(zoo, tmp_path / "out", {})
    outcomes = {}
    run_pool(items, 2, lambda item, outcome: outcomes.__setitem__(item.key, outcome), task=die_on_crash_model)
    assert {key: outcome["status"] for key, outcome in outcomes.items()} == {
        "crash.onnx": "failed", **dict.fromkeys(KEYS, "done")}
    assert outcomes["crash.onnx"]["reason"].startswith("the worker process died while optimising it")


def test_ctrl_c_keeps_finished_outputs_complete_and_a_rerun_finishes(zoo, tmp_path):
    (zoo / "broken.onnx").unlink()
    for copy in range(6):  # enough work that the interrupt lands mid-batch
        shutil.copy(zoo / "skunit_opset11.onnx", zoo / f"copy{copy}.onnx")
    outdir = tmp_path / "out"
    command = [sys.executable, "-m", "optimizer", "batch", str(zoo), "-o", str(outdir), "--workers", "1"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    first = process.stderr.readline()
    assert "] done: " in first, first
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130, err
    assert err.strip().splitlines()[-1].startswith("onnx-opt: interrupted") and "Traceback" not in err
    states = status_of(outdir)
    done = [key for key, state in states.items() if state == "done"]
    assert done and "pending" in states.values()
    assert_complete(outdir, done)
    stray = [p.name for p in outdir.iterdir() if p.name not in {*done, "batch-status.json", "batch.json"}
             and not p.name.startswith(".onnx-opt-")]
    assert not stray  # nothing half-written: only finished models (and staging folders a later run removes)
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(done)} of 9 models already done" in rerun.stderr
    assert set(status_of(outdir).values()) == {"done"}


def test_the_status_file_survives_only_whole(tmp_path):
    (tmp_path / "batch-status.json").write_text("{half")
    from optimizer.errors import UserError

    with pytest.raises(UserError, match="is not a batch status file .*remove it to start the batch over"):
        BatchStatus.load(tmp_path)


def test_on_a_local_ray_with_2_cpus(cli, zoo, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'onnx-opt[ray]'")
    outdir = tmp_path / "out"
    code, _, err = run_batch_cli(cli, zoo, outdir, "--ray", "--workers", "2")
    if code == 2 and "--ray: Ray did not start" in err:  # a machine where Ray cannot start: said, never silent
        pytest.skip(err.strip())
    assert code == 1, err
    assert status_of(outdir) == {"broken.onnx": "failed", **dict.fromkeys(KEYS, "done")}
    assert_complete(outdir, KEYS)
    shutil.copy(zoo / "ghost_opset11.onnx", zoo / "broken.onnx")
    code, _, err = run_batch_cli(cli, zoo, outdir, "--ray", "--workers", "2")
    assert code == 0 and "3 of 4 models already done" in err and err.count("] done: ") == 1
