"""Pass options: declared as a dataclass, typed from ``--set PASS.OPTION=VALUE``, listed, recorded, replayed."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import onnx_ir as ir
import pytest
from helpers import make_model, op_types, save
from onnx import helper

from optimizer.errors import UserError
from optimizer.manager import PassManager
from optimizer.pass_options import (
    build_options,
    check_settings,
    describe_options,
    option_values,
    parse_settings,
    read_value,
    resolve_settings,
)
from optimizer.passapi import Change, NodePass, Pass, PassContext, Skip
from optimizer.registry import get_pass, register_pass, registered
from optimizer.targets import load_target
from passes.transpose_whitelist import TransposeWhitelist

RDN = Path(__file__).resolve().parent / "data" / "rdn" / "rdn_before_op_statistic_0_1.csv"


class DropIdentity(NodePass):
    name = "test-drop-identity"
    summary = "Remove Identity nodes, but those the options keep"

    @dataclass
    class Options:
        keep: tuple[str, ...] = field(default=(), metadata={"help": "names of Identity nodes to keep"})
        limit: int | None = field(default=None, metadata={"help": "remove at most this many (none: all)"})

    def run(self, model, ctx):
        self.removed = 0
        return super().run(model, ctx)

    def rewrite(self, node, model, ctx):
        if node.op_type != "Identity":
            return None
        if node.name in self.options.keep:
            return Skip(node.name, "kept by --set test-drop-identity.keep")
        if self.options.limit is not None and self.removed >= self.options.limit:
            return Skip(node.name, "over the limit")
        ir.convenience.replace_all_uses_with(node.outputs[0], node.inputs[0])
        node.graph.remove(node, safe=True)
        self.removed += 1
        return Change("removed", (node.name,))


class Typed(Pass):
    name = "test-typed"
    summary = "Declares one option of every type --set reads"

    @dataclass(frozen=True)
    class Options:
        flag: bool = field(default=False, metadata={"help": "a switch"})
        count: int = 3
        ratio: float = 0.5
        label: str = "x"
        mode: Literal["fast", "exact"] = field(default="exact", metadata={"help": "how"})
        ranks: tuple[int, ...] = (4, 5)
        names: list[str] = field(default_factory=list)
        cap: int | None = None

    def run(self, model, ctx):
        raise NotImplementedError


class ListTransposes(TransposeWhitelist):
    name = "test-list-transposes"
    summary = "transpose-whitelist with an option, for plans"

    @dataclass
    class Options:
        largest_rank: int = field(default=8, metadata={"help": "unused here"})


@pytest.fixture
def identities(tmp_path):
    """x -> Identity id1 -> Relu -> Identity id2 -> Identity id3 -> y."""
    model = make_model(
        [
            helper.make_node("Identity", ["x"], ["a"], name="id1"),
            helper.make_node("Relu", ["a"], ["b"], name="relu"),
            helper.make_node("Identity", ["b"], ["c"], name="id2"),
            helper.make_node("Relu", ["c"], ["y"], name="relu2"),
        ],
        [("x", [2, 3])],
        [("y", [2, 3])],
    )
    return save(model, tmp_path / "ids.onnx")


def test_settings_are_parsed_by_pass_and_option():
    assert parse_settings(["a.b=1", "a.c = x=y", "d-e.f="]) == {"a": {"b": "1", "c": "x=y"}, "d-e": {"f": ""}}


@pytest.mark.parametrize("item", ["simplify", "simplify=1", "onnxsim=false", ".x=1", "simplify.=1"])
def test_a_malformed_setting_is_refused(item):
    with pytest.raises(UserError, match="expected PASS.OPTION=VALUE"):
        parse_settings([item])


@pytest.mark.parametrize(
    "kind, text, value",
    [
        (bool, "true", True),
        (bool, "YES", True),
        (bool, "1", True),
        (bool, "no", False),
        (bool, "0", False),
        (bool, "False", False),
        (int, "-7", -7),
        (float, "1e-3", 0.001),
        (str, "a b", "a b"),
        (Literal["fast", "exact"], "fast", "fast"),
        (Literal[1, 2], "2", 2),
        (tuple[int, ...], "1, 2,3", (1, 2, 3)),
        (tuple[str, ...], "", ()),
        (list[str], "a,b", ["a", "b"]),
        (int | None, "none", None),
        (int | None, "4", 4),
        (int | None, "None", None),
    ],
)
def test_values_are_read_as_their_type(kind, text, value):
    assert read_value(text, kind) == value and type(read_value(text, kind)) is type(value)


@pytest.mark.parametrize(
    "kind, text, message",
    [
        (bool, "maybe", "expected true or false"),
        (int, "abc", "expected an int"),
        (int, "1.5", "expected an int"),
        (float, "x", "expected a float"),
        (Literal["fast", "exact"], "quick", "expected one of fast, exact"),
        (tuple[int, ...], "1,x", "expected comma-separated ints"),
        (int | None, "x", "expected an int or 'none'"),
        (dict, "{}", "type dict cannot be set"),
        (tuple[int, int], "1,2", "cannot be set"),
    ],
)
def test_a_wrong_value_says_what_was_expected(kind, text, message):
    with pytest.raises(ValueError, match=message):
        read_value(text, kind)


def test_options_are_built_and_described():
    options = build_options(Typed, {"flag": "yes", "mode": "fast", "ranks": "6", "cap": "2"})
    assert options == Typed.Options(flag=True, mode="fast", ranks=(6,), cap=2)
    assert option_values(options)["ranks"] == [6]
    described = {row["name"]: row for row in describe_options(Typed)}
    assert list(described) == ["flag", "count", "ratio", "label", "mode", "ranks", "names", "cap"]
    assert described["flag"] == {"name": "flag", "type": "bool", "default": False, "help": "a switch"}
    assert [described[name]["type"] for name in ("mode", "ranks", "names", "cap")] == [
        "fast|exact",
        "int,...",
        "str,...",
        "int|none",
    ]
    assert described["ranks"]["default"] == [4, 5] and described["count"]["help"] == ""
    assert describe_options(DropIdentity)[0]["help"] == "names of Identity nodes to keep"


def test_an_unknown_option_names_those_the_pass_has():
    with pytest.raises(UserError, match="pass test-drop-identity has options keep, limit"):
        build_options(DropIdentity, {"kept": "a"})
    with pytest.raises(UserError, match="pass softmax-transpose has no options"):
        build_options(get_pass("softmax-transpose"), {"x": "1"})


def test_settings_are_checked_against_the_pipeline():
    with registered(DropIdentity):
        resolved = resolve_settings({"test-drop-identity": {"keep": "a,b"}}, ["simplify", "test-drop-identity"])
        assert resolved == {
            "simplify": get_pass("simplify").Options(),
            "test-drop-identity": DropIdentity.Options(("a", "b")),
        }
        with pytest.raises(UserError, match=r"not in the pipeline \(simplify\): add it with --passes \+test-drop"):
            resolve_settings({"test-drop-identity": {"keep": "a"}}, ["simplify"])
        check_settings({"test-drop-identity": {"limit": "1"}})  # any registered pass, for plan and auto
        with pytest.raises(UserError, match="unknown pass 'test-drop-identiy'; did you mean test-drop-identity"):
            check_settings({"test-drop-identiy": {"limit": "1"}})


def test_a_pass_takes_its_options_and_defaults_without_them():
    assert get_pass("simplify")().options == get_pass("simplify").Options()
    assert get_pass("softmax-transpose")().options == Pass.Options()
    assert DropIdentity(DropIdentity.Options(limit=1)).options.limit == 1
    with pytest.raises(TypeError, match="must be a DropIdentity.Options"):
        DropIdentity({"limit": 1})


def test_the_manager_builds_options_from_values(identities):
    import onnx_ir as ir

    with registered(DropIdentity):
        ctx = PassContext(load_target("onnxruntime"))
        run = PassManager(["test-drop-identity"], ctx, options={"test-drop-identity": {"keep": "id2"}}).run(
            ir.load(identities)
        )
    assert run.records[0].changed_nodes == ["id1"] and run.records[0].options == {"keep": ["id2"], "limit": None}


def test_registration_checks_the_options_declaration():
    class NotADataclass(Pass):
        name = "test-bad-options"
        summary = "bad"

        class Options:
            limit = 1

    class NoDefault(Pass):
        name = "test-bad-options"
        summary = "bad"

        @dataclass
        class Options:
            limit: int

    with pytest.raises(TypeError, match="Options must be a dataclass"):
        register_pass(NotADataclass)
    with pytest.raises(TypeError, match="option limit needs a default"):
        register_pass(NoDefault)


def test_set_changes_what_a_pass_does_and_the_report_records_it(cli, identities, tmp_path):
    out, report = tmp_path / "o.onnx", tmp_path / "r.json"
    with registered(DropIdentity):
        code, _, err = cli(
            "optimize", identities, "-o", out, "--passes", "test-drop-identity", "--report", report,
            "--set", "test-drop-identity.keep=id2", "--set", "test-drop-identity.limit=5",
        )
    assert code == 0, err
    assert op_types(out) == ["Relu", "Identity", "Relu"]
    data = json.loads(report.read_text())
    assert data["options"] == {"test-drop-identity": {"keep": ["id2"], "limit": 5}}
    assert data["passes"][0]["options"] == {"keep": ["id2"], "limit": 5} and data["pipeline"] == ["test-drop-identity"]


def test_simplify_can_leave_onnxsim_out(cli, tmp_path):
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", [2, 3])], [("y", [2, 3])])
    relu = save(model, tmp_path / "relu.onnx")
    notes = {}
    for given in ((), ("--set", "simplify.onnxsim=false")):
        report = tmp_path / "r.json"
        code, _, err = cli("optimize", relu, "-o", tmp_path / "o.onnx", "--report", report, *given)
        assert code == 0, err
        data = json.loads(report.read_text())
        notes[given] = " ".join(data["passes"][0]["notes"])
        assert data["options"]["simplify"] == {"onnxsim": not given} and data["options"]["softmax-transpose"] == {}
    assert "onnxsim" in notes[()] and "onnxsim" not in notes[("--set", "simplify.onnxsim=false")]
    assert "onnxscript optimizer" in notes[("--set", "simplify.onnxsim=false")]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "test-drop-identiy.keep=a"], "--set test-drop-identiy.keep=a: unknown pass 'test-drop-identiy'; "
         "did you mean test-drop-identity"),
        (["--set", "test-drop-identity.kept=a"], "--set test-drop-identity.kept=a: pass test-drop-identity has "
         "options keep, limit"),
        (["--set", "softmax-transpose.axis=1", "--passes", "softmax-transpose"], "softmax-transpose has no options"),
        (["--set", "test-drop-identity.limit=abc"], "--set test-drop-identity.limit=abc: expected an int or 'none'"),
        (["--set", "test-typed.mode=quick", "--passes", "+test-typed"], "--set test-typed.mode=quick: expected one "
         "of fast, exact"),
        (["--set", "test-drop-identity"], "expected PASS.OPTION=VALUE"),
        (["--set", "test-drop-identity.keep=a", "--passes", "simplify"], "--set test-drop-identity.keep=a: pass "
         "test-drop-identity is not in the pipeline (simplify): add it with --passes +test-drop-identity"),
    ],
)
def test_bad_settings_exit_2_with_one_line_and_write_nothing(cli, identities, tmp_path, args, message):
    out = tmp_path / "o.onnx"
    passes = [] if "--passes" in args else ["--passes", "test-drop-identity"]
    with registered(DropIdentity, Typed):
        code, stdout, err = cli("optimize", identities, "-o", out, *passes, *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists() and "Traceback" not in err


def test_settings_are_checked_before_the_model_is_read(cli, tmp_path):
    code, _, err = cli("optimize", tmp_path / "missing.onnx", "-o", tmp_path / "o.onnx", "--set", "simplify.x=1")
    assert code == 2 and "pass simplify has options onnxsim" in err


def test_passes_lists_the_options(cli):
    with registered(Typed):
        code, out, err = cli("passes", "--json")
        assert code == 0, err
        rows = {row["name"]: row for row in json.loads(out)["passes"]}
        assert rows["test-typed"]["options"][4] == {"name": "mode", "type": "fast|exact", "default": "exact",
                                                    "help": "how"}
        assert rows["simplify"]["options"][0]["name"] == "onnxsim" and rows["softmax-transpose"]["options"] == []
        code, out, _ = cli("passes", "-v")
        assert code == 0 and "test-typed.mode (fast|exact, default \"exact\"): how" in out
        assert "simplify.onnxsim (bool, default true): run onnxsim" in out
        code, out, _ = cli("passes")
        assert code == 0 and "test-typed.mode" not in out


def test_a_plan_records_the_options_and_optimize_replays_them(cli, examples, tmp_path):
    model = shutil.copyfile(examples / "srnet_opset9.onnx", tmp_path / "srnet.onnx")
    plan, report = tmp_path / "plan.json", tmp_path / "r.json"
    with registered(ListTransposes):
        code, out, err = cli(
            "plan", RDN, "--model", model, "--target", "ascend310", "-o", plan,
            "--set", "test-list-transposes.largest_rank=6", "--set", "simplify.onnxsim=false",
        )
        assert code == 0, err
        data = json.loads(plan.read_text())
        assert "test-list-transposes" in data["passes"] and "simplify" not in data["passes"]
        assert data["options"]["pass_options"] == {"test-list-transposes": {"largest_rank": "6"}}
        assert "pass options: --set test-list-transposes.largest_rank=6" in out
        code, _, err = cli("optimize", model, "--plan", plan, "-o", tmp_path / "o.onnx", "--report", report)
        assert code == 0, err
        assert json.loads(report.read_text())["options"]["test-list-transposes"] == {"largest_rank": 6}
        code, _, err = cli("optimize", model, "--plan", plan, "-o", tmp_path / "o.onnx", "--set", "simplify.onnxsim=0")
        assert code == 2 and "drop --set" in err
    code, _, err = cli("plan", RDN, "--model", model, "--target", "ascend310", "--set", "simplify.onnxsim=perhaps")
    assert code == 2 and "--set simplify.onnxsim=perhaps: expected true or false" in err


def test_convert_takes_set_and_optimises_with_it(cli, identities, tmp_path, monkeypatch):
    from optimizer.toolchain import jobs

    seen = []
    monkeypatch.setattr(jobs, "convert", lambda job, **_: seen.append(job) or jobs.Converted())
    code, _, err = cli("convert", identities, "--soc", "Ascend310", "--set", "simplify.onnxsim=false")
    # the stub ran no ATC, hence status 1
    assert code == 1 and seen[0].optimise and seen[0].pass_options == {"simplify": {"onnxsim": "false"}}, err
    report = jobs._optimise(seen[0], tmp_path / "o.onnx", None)
    assert report.options["simplify"] == {"onnxsim": False}


def test_auto_gives_each_step_the_options_of_its_pass(tmp_path):
    from optimizer.loop.auto import AutoOptions, optimize_options

    settings = {"simplify": {"onnxsim": "false"}, "softmax-transpose": {"x": "1"}}
    options = AutoOptions(input=tmp_path / "m.onnx", output=tmp_path / "o.onnx", pass_options=settings)
    assert optimize_options(options, options.input, options.output, passes=["simplify"]).pass_options == {
        "simplify": {"onnxsim": "false"}
    }
    assert optimize_options(options, options.input, options.output, passes=[]).pass_options == {}
