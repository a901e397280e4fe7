"""``onnx-opt plan`` and the replay of a plan (``options_from_plan`` + ``optimize``) on the RDN profile."""

import json
import shutil
from pathlib import Path

import onnx
import pytest

from optimizer.errors import UserError
from optimizer.loop.plan import Plan, file_sha256, options_from_plan, read_plan, write_plan
from optimizer.optimize import OptimizeOptions, optimize
from optimizer.registry import default_passes

RDN = Path(__file__).resolve().parent.parent / "data" / "rdn" / "rdn_before_op_statistic_0_1.csv"
SHAPE_6D = [1, 64, 2, 2, 114, 114]


@pytest.fixture(scope="module")
def plans(tmp_path_factory):
    """The RDN profile's plans for the opset-9 PixelShuffle net, for ascend310 and ascend910b (by the CLI)."""
    from optimizer.cli import run

    folder = tmp_path_factory.mktemp("plans")
    model = folder / "srnet_opset9.onnx"
    shutil.copyfile(Path(__file__).resolve().parents[2] / "examples" / "srnet_opset9.onnx", model)
    for target in ("ascend310", "ascend910b"):
        assert (
            run(
                [
                    "-q",
                    "plan",
                    str(RDN),
                    "--model",
                    str(model),
                    "--target",
                    target,
                    "-o",
                    str(folder / f"{target}.json"),
                ]
            )
            == 0
        )
    return model, folder


def test_plan_for_ascend310_proposes_the_white_list_shape(plans):
    model, folder = plans
    data = json.loads((folder / "ascend310.json").read_text())
    assert data["format"] == "onnx-opt-plan/1" and data["created_by"].startswith("onnx-opt ")
    assert data["model"] == {"path": str(model), "sha256": file_sha256(model)}
    assert data["target"] == "ascend310" and data["opset"] is None
    assert data["passes"] == ["transpose-whitelist"]
    assert data["whitelist_shapes"] == [SHAPE_6D]
    assert data["candidates"][0]["op_types"] == ["TransposeD"] and data["profile"] == str(RDN)
    # every other pass that may run unnamed is rejected, with its reason; opt-in ones are never weighed
    assert {r["pass"] for r in data["rejected"]} == set(default_passes()) - {"transpose-whitelist"}
    assert {"simplify", "softmax-transpose", "decompose-depth-to-space"} <= {r["pass"] for r in data["rejected"]}


def test_plan_for_ascend910b_proposes_opset_11_and_fuse_depth_to_space(plans):
    _, folder = plans
    plan = read_plan(folder / "ascend910b.json")
    assert plan.target == "ascend910b" and plan.opset == 11 and plan.passes == ["fuse-depth-to-space"]
    assert plan.whitelist_shapes == []
    assert plan.candidates[0]["opset"] == 11


def test_plan_prints_the_candidates_and_the_inferred_target(cli, plans, tmp_path):
    model, _ = plans
    code, out, err = cli("plan", RDN, "--model", model, "-v", "-o", tmp_path / "p.json")
    assert code == 0, err
    assert "target ascend310: inferred from the profile: core type 'AI Core'" in out
    assert "transpose-whitelist" in out and "TransposeD" in out and "44.2%" in out
    assert "white-list shape: [1, 64, 2, 2, 114, 114]" in out
    assert "not proposed: simplify: changes no node of a hot op type" in out
    assert f"--plan {tmp_path / 'p.json'}" in out


def test_plan_asks_for_the_target_when_the_profile_cannot_tell(cli, plans, tmp_path):
    model, _ = plans
    profile = tmp_path / "op_statistic_0_1.csv"
    profile.write_text(RDN.read_text().replace("AI Core", "AI_CORE"))
    code, out, err = cli("plan", profile, "--model", model, "-o", tmp_path / "p.json")
    assert code == 2 and "give --target (ascend310, ascend310p, ascend910b, onnxruntime)" in err
    assert not (tmp_path / "p.json").exists()


@pytest.mark.parametrize("target", ["ascend310", "ascend910b"])
def test_a_plan_replays_exactly(plans, tmp_path, target):
    model, folder = plans
    base = OptimizeOptions(input=model, output=tmp_path / "out.onnx")
    options = options_from_plan(folder / f"{target}.json", model, base)
    plan = read_plan(folder / f"{target}.json")
    assert (options.passes, options.opset, options.target) == (plan.passes, plan.opset, plan.target)
    report = optimize(options)
    assert report.verification.ok
    written = onnx.load(tmp_path / "out.onnx")
    ops = [node.op_type for node in written.graph.node]
    if target == "ascend910b":
        assert report.opset_after == 11 and "DepthToSpace" in ops and "Transpose" not in ops
    else:
        assert report.opset_after == 9 and "Transpose" in ops
        record = next(r for r in report.records if r.name == "transpose-whitelist")
        assert record.findings["transpose_shapes"] == plan.whitelist_shapes


def test_a_plan_refuses_another_model(plans, examples, tmp_path):
    model, folder = plans
    other = examples / "srnet_opset11.onnx"
    with pytest.raises(UserError) as info:
        options_from_plan(folder / "ascend310.json", other, OptimizeOptions(input=other))
    assert file_sha256(model) in str(info.value) and file_sha256(other) in str(info.value)


def test_a_plan_refuses_options_that_contradict_it(plans):
    model, folder = plans
    with pytest.raises(UserError, match="without --passes and --opset"):
        options_from_plan(folder / "ascend310.json", model, OptimizeOptions(input=model, opset=13))
    with pytest.raises(UserError, match="input shapes"):
        options_from_plan(folder / "ascend310.json", model, OptimizeOptions(input=model, input_shapes={"image": [2]}))


def test_write_then_read_keeps_the_plan(tmp_path):
    plan = Plan(
        "m.onnx",
        "a" * 64,
        "ascend310",
        13,
        ["simplify", "transpose-whitelist"],
        input_shapes={"image": [1, 3, 8, 8]},
        whitelist_shapes=[[1, 2, 3]],
        candidates=[{"pass_name": "x"}],
        rejected=[{"pass": "y", "reason": "z"}],
        profile="p",
        target_chosen="given with --target",
    )
    assert read_plan(write_plan(plan, tmp_path / "p.json")) == plan


def good_plan() -> dict:
    return Plan("m.onnx", "a" * 64, "ascend310", None, ["transpose-whitelist"], whitelist_shapes=[[1, 2, 3]]).to_dict()


def edited(path: str, value):
    data = good_plan()
    *parents, last = path
    target = data
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return json.dumps(data)


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"format": ', "not JSON (line 1, column"),
        ("[]", "$: expected an object"),
        (edited(["format"], "onnx-opt-plan/9"), "$.format: expected 'onnx-opt-plan/1'"),
        (edited(["model"], KeyError), "$.model: missing"),
        (edited(["model", "sha256"], "xyz"), "$.model.sha256: expected 64 lower-case hex digits"),
        (edited(["target"], "ascend311"), "$.target: unknown target 'ascend311'"),
        (edited(["opset"], True), "$.opset: expected an integer, got true"),
        (edited(["opset"], 99), "$.opset: 99 is outside"),
        (edited(["passes"], ["simplify", "merge-everything"]), "$.passes[1]: unknown pass 'merge-everything'"),
        (edited(["passes"], "simplify"), "$.passes: expected an array"),
        (edited(["options", "input_shapes"], {"image": [1, "3"]}), "$.options.input_shapes.image[1]: expected an"),
        (edited(["whitelist_shapes"], [[1, 2, 0]]), "$.whitelist_shapes[0][2]: expected an integer >= 1, got 0"),
        (edited(["candidates"], [3]), "$.candidates[0]: expected an object"),
    ],
)
def test_a_bad_plan_file_is_a_user_error_naming_the_json_path(tmp_path, text, message):
    path = tmp_path / "plan.json"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        read_plan(path)
    assert str(info.value).startswith(f"{path}: ") and message in str(info.value)


def test_optimize_plan_replays_through_the_cli_and_refuses_contradicting_flags(cli, plans, examples, tmp_path):
    model, folder = plans
    plan, out = folder / "ascend910b.json", tmp_path / "o.onnx"
    code, _, err = cli("optimize", model, "--plan", plan, "-o", out)
    assert code == 0, err
    written = onnx.load(str(out))
    assert "DepthToSpace" in [n.op_type for n in written.graph.node]
    assert written.opset_import[0].version == 11
    for flags in (["--opset", "13"], ["--target", "ascend310"], ["--passes", "simplify"]):
        code, _, err = cli("optimize", model, "--plan", plan, "-o", tmp_path / "x.onnx", *flags)
        assert code == 2 and flags[0] in err and err.count("\n") == 1, err
    other = tmp_path / "other.onnx"
    shutil.copyfile(examples / "srnet_opset11.onnx", other)
    code, _, err = cli("optimize", other, "--plan", plan, "-o", tmp_path / "y.onnx")
    assert code == 2 and "sha256" in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "y.onnx").exists()
