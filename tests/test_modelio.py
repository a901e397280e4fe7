import os
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
