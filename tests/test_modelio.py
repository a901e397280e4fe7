import os
import re
import stat
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from helpers import digest, make_model, save
from onnx import helper, numpy_helper

from optimizer import modelio
from optimizer.errors import UserError
from optimizer.modelio import load_model, save_model


def weighted_model(size=4096) -> onnx.ModelProto:
    weight = np.arange(size, dtype=np.float32).reshape(1, size)
    model = make_model(
        [helper.make_node("Add", ["x", "w"], ["y"], name="add")],
        [("x", [1, size])],
        [("y", [1, size])],
        initializers=[("w", weight)],
    )
    model.doc_string = "model doc"
    model.graph.doc_string = "graph doc"
    helper.set_model_props(model, {"author": "onnx-opt tests"})
    return model


def external_model(folder: Path, location="weights.bin") -> Path:
    model = weighted_model()
    path = folder / "model.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location=location, size_threshold=0)
    return path


def test_load_resolves_external_data_relative_to_the_model(tmp_path, monkeypatch):
    path = external_model(tmp_path)
    monkeypatch.chdir("/")
    model = load_model(path)
    weight = model.graph.initializers["w"].const_value
    assert isinstance(weight, ir.ExternalTensor)
    assert weight.numpy()[0, 5] == 5.0


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "empty file"),
        (b"hello, this is not a model\n", "not an ONNX model"),
        (bytes(range(256)) * 4, "not an ONNX model"),
    ],
)
def test_bad_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        load_model(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_model(tmp_path / "absent.onnx")
    with pytest.raises(UserError, match="is a directory"):
        load_model(tmp_path)


def test_truncated_file_is_refused(tmp_path, examples):
    data = (examples / "srnet_opset9.onnx").read_bytes()
    for cut in (len(data) // 2, len(data) - 7, 100):
        path = tmp_path / f"cut{cut}.onnx"
        path.write_bytes(data[:cut])
        with pytest.raises(UserError, match="truncated|not an ONNX model|invalid ONNX"):
            load_model(path)


def _relocate(path: Path, location: str) -> None:
    model = onnx.load(str(path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    onnx.save(model, str(path))


@pytest.mark.parametrize("location", ["/etc/passwd", "../outside.bin", "sub/../../outside.bin"])
def test_external_data_escaping_the_folder_is_refused(tmp_path, location):
    folder = tmp_path / "m"
    folder.mkdir()
    path = external_model(folder)
    (tmp_path / "outside.bin").write_bytes((folder / "weights.bin").read_bytes())
    _relocate(path, location)
    with pytest.raises(UserError, match="escapes the model's folder"):
        load_model(path)


def test_external_data_through_a_symlink_out_of_the_folder_is_refused(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    path = external_model(folder)
    (tmp_path / "real.bin").write_bytes((folder / "weights.bin").read_bytes())
    (folder / "weights.bin").unlink()
    (folder / "weights.bin").symlink_to(tmp_path / "real.bin")
    with pytest.raises(UserError, match="symbolic link"):
        load_model(path)


def test_missing_and_short_external_data_are_refused(tmp_path):
    path = external_model(tmp_path)
    data = tmp_path / "weights.bin"
    content = data.read_bytes()
    data.write_bytes(content[:100])
    with pytest.raises(UserError, match="truncated"):
        load_model(path)
    data.unlink()
    with pytest.raises(UserError, match="is missing"):
        load_model(path)


def test_save_keeps_model_fields_and_is_atomic(tmp_path):
    source = weighted_model()
    source.graph.value_info.append(helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4096]))
    model = ir.serde.deserialize_model(source)
    out = tmp_path / "out.onnx"
    assert save_model(model, out) == [out]
    saved = onnx.load(str(out))
    assert saved.ir_version == source.ir_version
    assert [(o.domain, o.version) for o in saved.opset_import] == [("", 13)]
    assert saved.doc_string == "model doc" and saved.graph.doc_string == "graph doc"
    assert {p.key: p.value for p in saved.metadata_props} == {"author": "onnx-opt tests"}
    assert sorted(os.listdir(tmp_path)) == ["out.onnx"]  # no temporary file left behind


def test_save_keeps_external_data_when_the_input_had_it(tmp_path):
    path = external_model(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    written = save_model(load_model(path), out_dir / "opt.onnx")
    assert written == [out_dir / "opt.onnx", out_dir / "opt.onnx.data"]
    saved = onnx.load(str(out_dir / "opt.onnx"), load_external_data=False)
    assert saved.graph.initializer[0].data_location == onnx.TensorProto.EXTERNAL
    reloaded = onnx.load(str(out_dir / "opt.onnx"))
    assert numpy_helper.to_array(reloaded.graph.initializer[0])[0, 7] == 7.0


def test_save_switches_to_external_data_above_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(modelio, "EXTERNAL_DATA_THRESHOLD", 1000)
    model = ir.serde.deserialize_model(weighted_model())
    written = save_model(model, tmp_path / "big.onnx")
    assert written[1].name == "big.onnx.data"
    assert written[1].stat().st_size == 4096 * 4
    monkeypatch.setattr(modelio, "EXTERNAL_DATA_THRESHOLD", 10**12)
    assert save_model(model, tmp_path / "small.onnx") == [tmp_path / "small.onnx"]


def test_save_can_inline_external_weights(tmp_path):
    model = load_model(external_model(tmp_path))
    out = tmp_path / "inline.onnx"
    save_model(model, out, external_data=False)
    saved = onnx.load(str(out), load_external_data=False)
    assert saved.graph.initializer[0].data_location == onnx.TensorProto.DEFAULT
    assert numpy_helper.to_array(saved.graph.initializer[0])[0, 9] == 9.0


def test_save_to_a_missing_folder_is_a_user_error(tmp_path):
    model = ir.serde.deserialize_model(weighted_model())
    with pytest.raises(UserError, match="does not exist"):
        save_model(model, tmp_path / "nope" / "out.onnx")


def test_saving_twice_gives_identical_bytes(tmp_path):
    model = ir.serde.deserialize_model(weighted_model())
    save_model(model, tmp_path / "a.onnx")
    save_model(model, tmp_path / "b.onnx")
    assert digest(tmp_path / "a.onnx") == digest(tmp_path / "b.onnx")


def test_in_place_save_keeps_the_file_mode(tmp_path):
    path = save(weighted_model(), tmp_path / "m.onnx")
    path.chmod(0o640)
    save_model(load_model(path), path)
    assert path.stat().st_mode & 0o777 == 0o640


def test_sparse_tensor_attributes_and_negative_input_dims_are_refused_on_load(tmp_path):
    values = numpy_helper.from_array(np.array([1.0], np.float32), "values")
    sparse = helper.make_sparse_tensor(values, numpy_helper.from_array(np.array([0], np.int64)), [4])
    constant = helper.make_node("Constant", [], ["c"], name="dense_me", sparse_value=sparse)
    model = make_model([constant, helper.make_node("Add", ["x", "c"], ["y"])], [("x", [4])], [("y", [4])])
    with pytest.raises(UserError, match="node 'dense_me' \\(Constant\\) has a sparse tensor attribute 'sparse_value'"):
        load_model(save(model, tmp_path / "sparse.onnx"))
    model = weighted_model()
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = -4
    with pytest.raises(UserError, match="input 'x' declares dim -4 on axis 1"):
        load_model(save(model, tmp_path / "negative.onnx"))


def data_location(path: Path) -> str:
    (location,) = {
        entry.value
        for tensor in onnx.load(str(path), load_external_data=False).graph.initializer
        for entry in tensor.external_data
        if entry.key == "location"
    }
    return location


def test_saving_over_a_pair_writes_the_data_under_a_new_name_and_removes_the_old(tmp_path):
    model = ir.serde.deserialize_model(weighted_model())
    out = tmp_path / "o.onnx"
    names = []
    for _ in range(3):
        written = save_model(model, out, external_data=True)
        names.append(data_location(out))
        assert written == [out, tmp_path / names[-1]]
        assert sorted(os.listdir(tmp_path)) == sorted(["o.onnx", names[-1]])  # only the new pair
        assert numpy_helper.to_array(onnx.load(str(out)).graph.initializer[0])[0, 7] == 7.0
    assert names[0] == names[2] == "o.onnx.data" and re.fullmatch(r"o\.onnx\.[0-9a-f]{8}\.data", names[1])
    assert modelio.own_data_files(out) == {tmp_path / "o.onnx.data"}
    save_model(model, out, external_data=False)  # inline now: the data file goes too
    assert os.listdir(tmp_path) == ["o.onnx"]


def test_saved_files_get_the_mode_of_a_plain_open_and_symlinks_are_followed(tmp_path):
    old = os.umask(0o022)
    try:
        written = save_model(ir.serde.deserialize_model(weighted_model()), tmp_path / "m.onnx", external_data=True)
    finally:
        os.umask(old)
    assert [path.stat().st_mode & 0o777 for path in written] == [0o644, 0o644]
    (tmp_path / "link.onnx").symlink_to(tmp_path / "m.onnx")
    save_model(load_model(tmp_path / "link.onnx"), tmp_path / "link.onnx", external_data=False)
    assert (tmp_path / "link.onnx").is_symlink() and sorted(os.listdir(tmp_path)) == ["link.onnx", "m.onnx"]


def test_save_refuses_an_output_that_is_not_a_regular_file(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(UserError, match="is a FIFO, not a regular file"):
        save_model(ir.serde.deserialize_model(weighted_model()), tmp_path / "fifo")
    assert stat.S_ISFIFO((tmp_path / "fifo").lstat().st_mode)
