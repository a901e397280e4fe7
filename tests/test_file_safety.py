"""Files, signals and untrusted input (issue 11): no file but the output is ever destroyed, saves
are atomic with their external data, staging folders never outlive a run, bad input exits 2
with one line, and every writer goes through the one atomic-write helper."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import stat
import subprocess
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from helpers import digest, make_model
from onnx import TensorProto, helper, numpy_helper

from optimizer import modelio, verify
from optimizer.errors import UserError
from optimizer.modelio import load_model, save_model
from optimizer.verify import InputSpec, random_inputs, run_onnxruntime
from profiles import atomic
from profiles.atomic import UnwritableTargetError, copy_atomic, write_atomic, write_json_atomic

ROOT = Path(__file__).resolve().parent.parent
SIZE = 4096
ROOT_USER = hasattr(os, "geteuid") and os.geteuid() == 0


def two_weights(w: float, v: float = 5.0, doc: str = "") -> onnx.ModelProto:
    """y = x + w + v, two 16 KiB weights (both go to external data)."""
    model = make_model(
        [helper.make_node("Add", ["x", "w"], ["s"], name="add_w"), helper.make_node("Add", ["s", "v"], ["y"])],
        [("x", [SIZE])],
        [("y", [SIZE])],
        initializers=[("w", np.full(SIZE, w, np.float32)), ("v", np.full(SIZE, v, np.float32))],
    )
    model.graph.doc_string = doc
    return model


def external(folder: Path, name: str = "m.onnx", location: str = "m.weights", w: float = 1.0) -> Path:
    path = folder / name
    onnx.save(two_weights(w), str(path), save_as_external_data=True, location=location, size_threshold=0)
    return path


def on_disk(path: Path):
    """(graph doc, w, v) of the model at ``path`` with its external data, or the reason it is unreadable."""
    if not path.exists():
        return None
    try:
        onnx.checker.check_model(str(path))
        model = onnx.load(str(path))
    except Exception as exc:
        return f"broken: {exc}"
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    values = {name: set(np.unique(array).tolist()) for name, array in weights.items()}
    return model.graph.doc_string, values["w"], values["v"]


def one_line_error(code: int, err: str, fragment: str) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and fragment in err, err


def staging_left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".onnx-opt-"))


# -- R1: a written file never destroys another file of the run ----------------------------------------


@pytest.fixture
def relu(tmp_path) -> Path:
    path = tmp_path / "m.onnx"
    onnx.save(make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [1, 4])], [("y", [1, 4])]), str(path))
    return path


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the verb loads the model: the refusal must come before any work."""

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the refusal")

    monkeypatch.setattr("optimizer.optimize.load_model", refuse)


def test_a_report_over_the_input_model_is_refused_and_the_input_kept(cli, relu, tmp_path, no_work):
    before = digest(relu)
    code, _, err = cli("optimize", relu, "-o", tmp_path / "o.onnx", "--report", relu)
    one_line_error(code, err, f"--report {relu} would overwrite the input model")
    assert digest(relu) == before and not (tmp_path / "o.onnx").exists()


@pytest.mark.parametrize(
    "report, fragment",
    [
        ("o.onnx", "would overwrite -o"),
        ("o.onnx.data", "where -o {out} keeps its external data"),
        ("o.onnx.1234abcd.data", "where -o {out} keeps its external data"),
        ("m.weights", "the external data of the input model"),
        ("i.npz", "would overwrite --inputs"),
        ("link.json", "would overwrite the input model"),
    ],
)
def test_a_report_over_any_file_of_the_run_is_refused(cli, tmp_path, report, fragment, no_work):
    source = external(tmp_path)
    out = tmp_path / "o.onnx"
    (tmp_path / "i.npz").write_bytes(b"npz")
    (tmp_path / "link.json").symlink_to(source)
    before = {p.name: digest(p) for p in tmp_path.iterdir() if p.is_file()}
    code, _, err = cli("optimize", source, "-o", out, "--inputs", tmp_path / "i.npz", "--report", tmp_path / report)
    one_line_error(code, err, fragment.format(out=out))
    assert {p.name: digest(p) for p in tmp_path.iterdir() if p.is_file()} == before


def test_an_in_place_report_over_the_models_data_is_refused(cli, tmp_path, no_work):
    source = external(tmp_path)
    code, _, err = cli("optimize", source, "--in-place", "--report", tmp_path / "m.weights")
    one_line_error(code, err, "the external data of the input model")


def test_compare_refuses_json_and_html_naming_one_file_or_a_profile(cli, tmp_path):
    data = ROOT / "tests" / "profiles" / "data"
    before, after = data / "rdn_before_op_statistic_0_1.csv", data / "rdn_after_op_statistic_0_1.csv"
    copy = tmp_path / "before.csv"
    copy.write_bytes(before.read_bytes())
    code, _, err = cli("compare", copy, after, "--json", tmp_path / "c.out", "--html", tmp_path / "c.out")
    one_line_error(code, err, "are the same file")
    assert not (tmp_path / "c.out").exists()
    code, _, err = cli("compare", copy, after, "--json", copy)
    one_line_error(code, err, f"--json {copy} would overwrite BEFORE")
    assert copy.read_bytes() == before.read_bytes()


@pytest.mark.parametrize("kind", ["fifo", "socket", "device"])
def test_a_model_output_that_is_not_a_regular_file_is_refused_before_any_work(cli, relu, tmp_path, kind, no_work):
    target = tmp_path / kind
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "socket":
        server = socket.socket(socket.AF_UNIX)
        server.bind(str(target))
    else:
        if not ROOT_USER:
            pytest.skip("making a device node needs root")
        os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # a /dev/null of our own
    mode = target.lstat().st_mode
    code, _, err = cli("optimize", relu, "-o", target)
    one_line_error(code, err, "not a regular file")
    assert target.lstat().st_mode == mode  # still the node it was, not renamed over


def test_a_report_to_a_character_device_is_written_through(cli, relu, tmp_path):
    if not ROOT_USER:
        pytest.skip("making a device node needs root")
    null = tmp_path / "null"
    os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    code, _, err = cli("optimize", relu, "-o", tmp_path / "o.onnx", "--no-verify", "--report", null)
    assert code == 0, err
    assert stat.S_ISCHR(null.lstat().st_mode)


def test_reports_and_models_get_the_permissions_of_a_plain_open(cli, relu, tmp_path):
    old = os.umask(0o027)
    try:
        code, _, err = cli("optimize", relu, "-o", tmp_path / "o.onnx", "--no-verify", "--report", tmp_path / "r.json")
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(old)
    assert code == 0, err
    plain = stat.S_IMODE((tmp_path / "plain").stat().st_mode)
    assert plain == 0o640
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == plain
    assert stat.S_IMODE((tmp_path / "o.onnx").stat().st_mode) == plain


# -- R7: an invalid -o is refused before any work --------------------------------------------------------


def test_an_output_in_a_folder_that_cannot_be_written_is_refused_before_any_work(cli, relu, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m, **kw: False if Path(p) == locked else real_access(p, m, **kw))
    monkeypatch.setattr("optimizer.optimize.load_model", lambda *a: pytest.fail("loaded before the refusal"))
    code, _, err = cli("optimize", relu, "-o", locked / "o.onnx")
    one_line_error(code, err, f"folder {locked} is not writable")
    code, _, err = cli("optimize", relu, "-o", tmp_path / "missing" / "o.onnx")
    one_line_error(code, err, "does not exist")


# -- R2: a model and its external data are replaced as one unit --------------------------------------------


class InjectedError(OSError):
    pass


def flaky(monkeypatch, k: int, error: type[BaseException]) -> list[int]:
    """Make the k-th call of the file operations a save is made of raise ``error``."""
    calls = [0]
    for name in ("replace", "rename", "link", "chmod", "fsync"):
        real = getattr(os, name)

        def wrapper(*args, _real=real, **kwargs):
            calls[0] += 1
            if calls[0] == k:
                raise error("injected")
            return _real(*args, **kwargs)

        monkeypatch.setattr(os, name, wrapper)
    return calls


@pytest.mark.parametrize("error", [InjectedError, KeyboardInterrupt])
@pytest.mark.parametrize("scenario", ["fresh", "over-named-data", "over-random-data", "in-place"])
def test_an_interrupted_save_leaves_the_old_pair_or_the_new_pair(tmp_path, monkeypatch, scenario, error):
    out = tmp_path / "m.onnx"
    for k in range(1, 40):
        for p in tmp_path.iterdir():
            p.unlink()
        if scenario != "fresh":
            save_model(ir.serde.deserialize_model(two_weights(1.0, doc="old")), out, external_data=True)
        if scenario == "over-random-data":  # the old pair's data has the new-name form
            save_model(ir.serde.deserialize_model(two_weights(1.0, doc="old")), out, external_data=True)
            assert re.fullmatch(r"m\.onnx\.[0-9a-f]{8}\.data", on_disk_data(out))
        old = on_disk(out)
        if scenario == "in-place":  # w replaced in memory, v still read from the old data file
            new = load_model(out)
            new.graph.initializers["w"].const_value = ir.tensor(np.full(SIZE, 2.0, np.float32), name="w")
            new.graph.doc_string = "new"
        else:
            new = ir.serde.deserialize_model(two_weights(2.0, doc="new"))
        with monkeypatch.context() as patch:
            calls = flaky(patch, k, error)
            with contextlib.suppress(error):
                save_model(new, out, external_data=True)
        state = on_disk(out)
        assert state in (old, ("new", {2.0}, {5.0})), f"step {k}: {state}"
        assert staging_left(tmp_path) == [], f"step {k}"
        if calls[0] < k:  # every step ran: the save is complete
            assert state == ("new", {2.0}, {5.0})
            referenced = {on_disk_data(out)}
            assert {p.name for p in tmp_path.iterdir()} == {"m.onnx"} | referenced  # the old data is gone
            return
    pytest.fail("the save never completed")


def on_disk_data(path: Path) -> str:
    (location,) = {
        e.value
        for t in onnx.load(str(path), load_external_data=False).graph.initializer
        for e in t.external_data
        if e.key == "location"
    }
    return location


def test_an_in_place_save_keeps_a_data_file_onnx_opt_did_not_name(tmp_path):
    path = external(tmp_path, location="shared.bin")
    save_model(load_model(path), path)
    assert (tmp_path / "shared.bin").exists()  # maybe another model's: never removed
    assert on_disk(path)[1:] == ({1.0}, {5.0})


def test_an_output_that_would_remove_the_inputs_data_is_refused(cli, tmp_path):
    out = tmp_path / "o.onnx"
    save_model(ir.serde.deserialize_model(two_weights(1.0)), out, external_data=True)
    source = tmp_path / "m.onnx"
    onnx.save(onnx.load(str(out), load_external_data=False), str(source))  # reads o.onnx.data too
    code, _, err = cli("optimize", source, "-o", out, "--no-verify")
    one_line_error(code, err, "which the input")
    assert on_disk(source)[1:] == ({1.0}, {5.0})
    code, _, err = cli("optimize", source, "-o", tmp_path / "o.onnx.data", "--no-verify")
    one_line_error(code, err, "is the external data of the input")


def test_a_stale_staging_folder_of_a_dead_process_is_removed_with_a_note(cli, relu, tmp_path):
    child = subprocess.Popen(["true"])
    child.wait()
    hour_ago = time.time() - 3600
    stale, fresh, live = (
        tmp_path / f".onnx-opt-{pid}-{tag}"
        for pid, tag in ((child.pid, "stale"), (child.pid, "fresh"), (os.getpid(), "live"))
    )
    for folder in (stale, fresh, live):
        folder.mkdir()
        (folder / "m.onnx").write_bytes(b"half")
    for folder in (stale, live):
        os.utime(folder, (hour_ago, hour_ago))
    code, _, err = cli("optimize", relu, "-o", tmp_path / "o.onnx", "--no-verify", "--passes", "none")
    assert code == 0, err
    assert not stale.exists() and fresh.exists() and live.exists()
    notes = [line for line in err.splitlines() if "staging folder" in line]
    assert len(notes) == 1 and str(stale) in notes[0] and notes[0].startswith("note: removed 1 "), err


def test_staging_folders_name_their_owner_and_go_on_every_exit_path(tmp_path):
    with pytest.raises(KeyboardInterrupt), atomic.staging_folder(tmp_path, ".onnx-opt-") as folder:
        assert folder.name.startswith(f".onnx-opt-{os.getpid()}-")
        (folder / "x").write_bytes(b"x")
        raise KeyboardInterrupt
    assert staging_left(tmp_path) == []


def test_verification_of_an_external_data_model_copies_no_weights(tmp_path, monkeypatch):
    model = load_model(external(tmp_path))

    def no_copy(*args, **kwargs):
        raise AssertionError("the weights were copied for onnxruntime")

    monkeypatch.setattr(verify, "save_model", no_copy)
    x = np.ones(SIZE, np.float32)
    assert np.array_equal(run_onnxruntime(model, {"x": x})["y"], x + 6.0)


def test_a_copy_for_onnxruntime_when_one_is_needed_goes_on_every_exit_path(tmp_path):
    """Weights in two folders cannot be read in place: the copy is made, and removed even on Ctrl-C."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    model = load_model(external(tmp_path / "a"))
    other = load_model(external(tmp_path / "b", w=3.0))
    model.graph.initializers["w"].const_value = other.graph.initializers["w"].const_value
    pattern = f"{modelio.VERIFY_PREFIX}{os.getpid()}-*"
    with pytest.raises(KeyboardInterrupt), verify.onnxruntime_runner(model) as run:
        assert np.array_equal(run({"x": np.zeros(SIZE, np.float32)})["y"], np.full(SIZE, 8.0, np.float32))
        assert len(list(Path(tempfile.gettempdir()).glob(pattern))) == 1
        raise KeyboardInterrupt
    assert list(Path(tempfile.gettempdir()).glob(pattern)) == []


def test_a_verified_run_writes_the_model_once_and_onnxruntime_reads_the_staged_output(cli, relu, tmp_path, monkeypatch):
    read = []
    real = verify.session_source

    def no_copy(model, options):
        assert isinstance(model, Path), "the model was written for onnxruntime a second time"
        read.append(model)
        return real(model, options)

    monkeypatch.setattr(verify, "session_source", no_copy)
    out = tmp_path / "o.onnx"
    code, _, err = cli("optimize", relu, "-o", out)
    assert code == 0, err
    assert [path.name for path in read] == [relu.name, out.name]  # the original, then the staged output
    assert read[1].parent.name.startswith(".onnx-opt-") and staging_left(tmp_path) == []
    onnx.checker.check_model(str(out))


def test_optimize_verifies_an_external_data_model_without_copying_it(cli, tmp_path, monkeypatch):
    source = external(tmp_path)
    monkeypatch.setattr(verify, "save_model", lambda *a, **k: pytest.fail("copied the weights"))
    code, _, err = cli("optimize", source, "-o", tmp_path / "o.onnx")
    assert code == 0, err


# -- R6: bad input exits 2 with one line, before work --------------------------------------------------------


def test_a_sparse_initializer_is_refused_naming_it(cli, tmp_path):
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "sp"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    values = numpy_helper.from_array(np.array([1.0], np.float32), "sp")
    graph.sparse_initializer.append(helper.make_sparse_tensor(values, numpy_helper.from_array(np.array([0])), [1, 4]))
    path = tmp_path / "sparse.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    code, _, err = cli("optimize", path, "-o", tmp_path / "o.onnx")
    one_line_error(code, err, "'sp' is a sparse initializer")


def test_a_negative_declared_dim_is_refused(cli, relu, tmp_path):
    model = onnx.load(str(relu))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = -1
    onnx.save(model, str(relu))
    code, _, err = cli("optimize", relu, "-o", tmp_path / "o.onnx")
    one_line_error(code, err, "declares dim -1 on axis 0")


def huge_static(tmp_path: Path) -> Path:
    path = tmp_path / "huge.onnx"
    dims = [100000, 100000, 1000]
    onnx.save(make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", dims)], [("y", dims)]), str(path))
    return path


def test_a_declared_shape_too_large_to_allocate_is_refused(cli, tmp_path):
    for verb in (["optimize"], ["profile"]):
        code, _, err = cli(*verb, huge_static(tmp_path), "-o", tmp_path / "out")
        one_line_error(code, err, "input 'x' at shape [100000, 100000, 1000] (float32) needs 37252.9 GiB")


def test_a_requested_shape_too_large_to_allocate_is_refused(cli, tmp_path):
    path = tmp_path / "dyn.onnx"
    onnx.save(make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", ["n", 4])], [("y", ["n", 4])]), str(path))
    for option in ("--verify-shape", "--input-shape"):
        code, _, err = cli("optimize", path, "-o", tmp_path / "o.onnx", option, "x:100000000000,4")
        one_line_error(code, err, "needs 1490.1 GiB")


@pytest.mark.parametrize("text", [";", "x:1,4;;", ";x:1,4"])
def test_an_input_shape_with_empty_entries_is_refused(cli, relu, tmp_path, text):
    code, _, err = cli("optimize", relu, "-o", tmp_path / "o.onnx", "--input-shape", text)
    one_line_error(code, err, "empty entry")


@pytest.mark.parametrize(
    "verb, option",
    [(["optimize"], "--input-shape"), (["optimize"], "--verify-shape"), (["profile"], "--input-shape")],
)
def test_a_static_input_given_a_conflicting_shape_is_refused(cli, relu, tmp_path, verb, option):
    code, _, err = cli(*verb, relu, "-o", tmp_path / "out", option, "x:1,5")
    one_line_error(code, err, f"{option} gives input 'x' dim 5 on axis 1; the model fixes 4")


@pytest.mark.parametrize("dtype, bytes_per_element", [(np.float32, 4), (np.float16, 2 + 4), (np.int64, 8)])
def test_random_inputs_are_drawn_in_their_own_dtype(dtype, bytes_per_element):
    count = 1 << 20
    tracemalloc.start()
    try:
        feeds = random_inputs([InputSpec("x", np.dtype(dtype), [count])])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert feeds["x"].dtype == dtype
    assert peak < count * bytes_per_element * 1.25, peak / count  # no float64 (or int64) draw behind it


def test_the_memory_guard_counts_every_input(monkeypatch):
    monkeypatch.setattr(verify, "available_memory", lambda: 4 * 10**6)
    specs = [InputSpec("a", np.dtype(np.float32), [200_000]), InputSpec("b", np.dtype(np.float32), [200_000])]
    message = (
        r"the random inputs need 1.5 MiB \(input 'a' at shape \[200000\] \(float32\) needs 0.8 MiB\), "
        r"more than the 1.0 MiB they may take"
    )
    with pytest.raises(UserError, match=message):
        random_inputs(specs)
    random_inputs(specs[:1])


# -- R10: one atomic-write helper ---------------------------------------------------------------------------


def test_the_helper_writes_text_bytes_and_json_and_leaves_no_temporary(tmp_path):
    write_atomic(tmp_path / "t.txt", "héllo\n")
    write_atomic(tmp_path / "b.bin", b"\x00\xff")
    write_json_atomic(tmp_path / "j.json", {"a": [1]})
    copy_atomic(tmp_path / "b.bin", tmp_path / "c.bin")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "héllo\n"
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\xff"
    assert json.loads((tmp_path / "j.json").read_text()) == {"a": [1]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin", "c.bin", "j.json", "t.txt"]


def test_the_helper_keeps_the_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    target.write_text("old")
    target.chmod(0o604)
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["r.json"]
    write_atomic(target, "new")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o604  # its mode kept


def test_the_helper_follows_a_symlink_and_writes_through_a_fifo(tmp_path):
    real = tmp_path / "real.txt"
    real.write_text("old")
    (tmp_path / "link.txt").symlink_to(real)
    write_atomic(tmp_path / "link.txt", "new")
    assert (tmp_path / "link.txt").is_symlink() and real.read_text() == "new"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = subprocess.Popen(["cat", str(fifo)], stdout=subprocess.PIPE)
    write_atomic(fifo, "through\n")
    assert reader.communicate(timeout=30)[0] == b"through\n"
    assert stat.S_ISFIFO(fifo.lstat().st_mode)


def test_the_helper_refuses_a_socket_and_a_directory(tmp_path):
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock"))
    for target in (tmp_path / "sock", tmp_path):
        with pytest.raises(UnwritableTargetError, match="not a regular file"):
            write_atomic(target, "x")
    assert stat.S_ISSOCK((tmp_path / "sock").lstat().st_mode)


def test_every_writer_uses_the_one_helper():
    """No rename-into-place or leaked temporary file outside profiles/atomic.py."""
    pattern = re.compile(r"os\.replace\(|os\.rename\(|NamedTemporaryFile\([^)]*delete=False|mkstemp\(")
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("optimizer", "profiles")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != ROOT / "profiles" / "atomic.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_modelio_has_one_staging_prefix_for_saves():
    assert modelio.STAGING_PREFIX == ".onnx-opt-" and modelio.VERIFY_PREFIX.startswith("onnx-opt-")
