"""The profile / compare / hotspots verbs on real exported models and the recorded samples."""

import json
from pathlib import Path

import pytest
from helpers import digest

from profiles.read import read_profile

DATA = Path(__file__).resolve().parent / "profiles" / "data"


@pytest.fixture(scope="module")
def srnet_profiles(tmp_path_factory, request):
    """Profiles of the PixelShuffle net at opset 9 and of its fused (DepthToSpace) version."""
    from optimizer.cli import run

    folder = tmp_path_factory.mktemp("profiles")
    examples = Path(__file__).resolve().parent.parent / "examples"
    fused = folder / "srnet_fused.onnx"
    assert run(["-q", "optimize", str(examples / "srnet_opset9.onnx"), "-o", str(fused), "--opset", "11"]) == 0
    for name, model in (("before", examples / "srnet_opset9.onnx"), ("after", fused)):
        assert run(["-q", "profile", str(model), "-o", str(folder / name), "--runs", "8", "--warmup", "2"]) == 0
    return folder / "before", folder / "after"


def test_profile_writes_msprof_style_files_with_latency(srnet_profiles):
    before, _ = srnet_profiles
    names = sorted(p.name.split("_2")[0] for p in before.iterdir())
    assert names == ["latency", "op_statistic", "op_summary"]
    header = next(before.glob("op_summary_*.csv")).read_text().splitlines()[0]
    assert header.startswith("Device_id,Model ID,Task ID,Stream ID,Op Name,OP Type,OP State,Task Type,")
    profile = read_profile(before)
    assert profile.kind == "msprof" and len(profile.latency.samples_ms) == 8
    transpose = profile.stats_by_type()["Transpose"]
    assert transpose.count == 8  # one per measured run: the 2 warm-up runs are left out
    assert [op.input_shapes[0] for op in profile.ops if op.op_type == "Transpose"][0] == [1, 64, 2, 2, 114, 114]


def test_compare_shows_the_transpose_time_fall(cli, srnet_profiles, tmp_path):
    before, after = srnet_profiles
    code, out, err = cli("compare", before, after, "--json", tmp_path / "c.json", "--html", tmp_path / "c.html")
    assert code == 0, err
    data = json.loads((tmp_path / "c.json").read_text())
    rows = {row["key"]: row for row in data["rows"]}
    assert rows["Transpose"]["after_us"] == 0 and rows["Transpose"]["before_us"] > 0
    assert rows["DepthToSpace"]["before_us"] == 0 and rows["DepthToSpace"]["after_us"] > 0
    assert "Transpose" in data["disappeared"] and "DepthToSpace" in data["appeared"]
    latency = data["latency"]
    assert latency["before_ms"] > 0 and latency["verdict"] in ("faster", "slower", "same")
    assert latency["ci"][0] <= latency["ratio"] <= latency["ci"][1] and len(latency["after_samples_ms"]) == 8
    assert "Transpose" in out and "gone after" in out and "latency (median)" in out and "95% CI" in out
    html = (tmp_path / "c.html").read_text()
    assert "<table" in html and "Transpose" in html and "alt='latency distributions'" in html
    assert "warning: different models" not in err


def test_compare_by_node(cli, srnet_profiles):
    before, after = srnet_profiles
    code, out, _ = cli("compare", before, after, "--by", "node", "--top", "3")
    assert code == 0 and "/shuffle/Transpose" in out


def test_compare_the_rdn_guide_before_and_after_the_white_list(cli, tmp_path):
    code, out, err = cli(
        "compare",
        DATA / "rdn_before_op_statistic_0_1.csv",
        DATA / "rdn_after_op_statistic_0_1.csv",
        "--json",
        tmp_path / "c.json",
    )
    assert code == 0, err
    data = json.loads((tmp_path / "c.json").read_text())
    transposed = next(row for row in data["rows"] if row["key"] == "TransposeD")
    assert transposed["before_us"] == pytest.approx(934287.8)
    assert transposed["after_us"] == pytest.approx(10141.094)
    assert transposed["share_before"] == pytest.approx(0.442058, abs=1e-5)
    assert transposed["ratio"] == pytest.approx(10141.094 / 934287.8)
    assert "TransposeD" in out and "44.2%" in out


def test_hotspots_with_a_model_names_the_passes_that_would_change_it(cli, srnet_profiles, examples, tmp_path):
    before, _ = srnet_profiles
    code, out, err = cli(
        "hotspots",
        before,
        "--model",
        examples / "srnet_opset9.onnx",
        "--target",
        "ascend310",
        "--json",
        tmp_path / "h.json",
    )
    assert code == 0, err
    data = json.loads((tmp_path / "h.json").read_text())
    top = data["op_types"][0]
    assert top["op_type"] == "Transpose" and top["share"] > 0.3
    assert {"fuse-depth-to-space", "softmax-transpose", "transpose-whitelist"} <= set(top["passes"])
    assert top["matching"] == ["transpose-whitelist"]
    assert top["refusals"]["fuse-depth-to-space"] == (
        "CRD DepthToSpace needs opset >= 11; the model ends at opset 9 (--opset 11 lets it run)"
    )
    layout = [t for t in data["op_types"] if t["category"] == "layout"]
    assert layout and all(t["onnx_op_type"] is None for t in layout)


def test_hotspots_of_the_rdn_guide_maps_transposed_to_transpose(cli, tmp_path):
    code, out, _ = cli("hotspots", DATA / "rdn_before_op_statistic_0_1.csv", "--json", tmp_path / "h.json")
    assert code == 0
    data = json.loads((tmp_path / "h.json").read_text())
    by_type = {t["op_type"]: t for t in data["op_types"]}
    assert by_type["TransposeD"]["onnx_op_type"] == "Transpose"
    assert "transpose-whitelist" in by_type["TransposeD"]["passes"]
    assert by_type["TransData"]["category"] == "layout" and by_type["TransData"]["passes"] == []
    assert "layout conversions (TransData)" in out


def test_hotspots_with_a_model_infers_the_target_and_credits_only_touched_op_types(cli, examples, tmp_path):
    code, out, err = cli(
        "hotspots",
        DATA / "rdn_before_op_statistic_0_1.csv",
        "--model",
        examples / "srnet_opset9.onnx",
        "--json",
        tmp_path / "h.json",
    )
    assert code == 0, err
    assert "target ascend310: inferred from the profile: core type 'AI Core'" in out
    data = json.loads((tmp_path / "h.json").read_text())
    assert data["target"]["name"] == "ascend310"
    by_type = {t["op_type"]: t for t in data["op_types"]}
    assert by_type["TransposeD"]["matching"] == ["transpose-whitelist"]
    assert by_type["ConcatD"]["matching"] == []  # simplify changes only Constants
    assert by_type["ConcatD"]["refusals"]["simplify"] == "changes no Concat node (only Constant)"


def test_hotspots_with_a_model_asks_for_the_target_when_the_profile_cannot_tell(cli, examples, tmp_path):
    profile = tmp_path / "op_statistic_0_1.csv"
    profile.write_text((DATA / "rdn_before_op_statistic_0_1.csv").read_text().replace("AI Core", "AI_CORE"))
    code, out, err = cli("hotspots", profile, "--model", examples / "srnet_opset9.onnx")
    assert code == 2 and "give --target" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["compare", "{tmp}/nothing", "{tmp}/nothing"], "nothing"),
        (["compare", "{tmp}/junk.csv", "{tmp}/junk.csv"], "junk.csv"),
        (["hotspots", "{tmp}/junk.csv"], "junk.csv"),
        (["profile", "{tmp}/junk.csv", "-o", "{tmp}/out"], "not an ONNX model"),
        (["profile", "{examples}/srnet_opset9.onnx", "-o", "{tmp}/missing/out"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path, examples, args, message):
    (tmp_path / "junk.csv").write_text("this,is\nnot,a profile\n")
    before = digest(tmp_path / "junk.csv")
    code, out, err = cli(*[a.format(tmp=tmp_path, examples=examples) for a in args])
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err
    assert digest(tmp_path / "junk.csv") == before and not (tmp_path / "out").exists()


def test_compare_latency_samples_with_min_gain(cli, tmp_path):
    from profiles import Latency, write_latency_json

    before = [10.0 + 0.01 * (i % 5) for i in range(30)]
    after = [9.7 + 0.01 * (i % 5) for i in range(30)]
    write_latency_json(Latency.from_samples(before), tmp_path / "before.json")
    write_latency_json(Latency.from_samples(after), tmp_path / "after.json")
    code, out, err = cli("compare", tmp_path / "before.json", tmp_path / "after.json", "--json", tmp_path / "c.json")
    assert code == 0, err
    assert json.loads((tmp_path / "c.json").read_text())["latency"]["verdict"] == "faster"
    assert "after is faster than before: ratio 0.970" in out and "beyond the 2% threshold" in out
    code, out, err = cli("compare", tmp_path / "before.json", tmp_path / "after.json", "--min-gain", "5")
    assert code == 0 and ": same" in out and "within ±5%" in out, err
