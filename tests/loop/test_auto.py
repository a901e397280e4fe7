"""``auto``: the decisions on an injected timer whose latency depends on the graph (kept on
`faster`, rejected on `same` / `slower` / broken numerics, `undecided` when the budget runs out),
the never-slower rule, interrupts, and one real onnxruntime run (numbers only, never timing)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from helpers import digest

from optimizer.loop.auto import AutoOptions, run_auto
from optimizer.passapi import Change, NodePass
from optimizer.testing import registered
from optimizer.verify import run_onnxruntime


class GraphRunners:
    """Runner factory on a simulated clock: a run takes ``base`` plus ``per_op[op]`` seconds for
    each node of that op type (log-normal noise, seeded); ``now`` is the injected monotonic clock."""

    def __init__(self, per_op, base=0.010, noise=0.002, seed=0, flip_after=None):
        self.per_op, self.base, self.noise = per_op, base, noise
        self.rng = np.random.default_rng(seed)
        self.now, self.models, self.flip_after = 0.0, [], flip_after

    def monotonic(self):
        return self.now

    def __call__(self, model):
        self.models.append(Path(model).name)
        ops = [node.op_type for node in onnx.load(str(model)).graph.node]
        median = self.base + sum(self.per_op.get(op, 0.0) for op in ops)
        if self.flip_after is not None and len(self.models) > self.flip_after:
            median = self.base  # from then on every model takes the same time

        def run():
            seconds = median * float(np.exp(self.rng.normal(0.0, self.noise)))
            self.now += seconds
            return seconds

        return run


def auto(examples, tmp_path, runners, name="srnet_opset9.onnx", **options):
    options.setdefault("budget_s", 30.0)
    settings = AutoOptions(
        input=examples / name, output=tmp_path / "out.onnx", runner_factory=runners,
        monotonic=runners.monotonic, profile_runs=2, **options,
    )
    return run_auto(settings)


def none_output(cli, examples, tmp_path, name="srnet_opset9.onnx"):
    path = tmp_path / "none.onnx"
    assert cli("-q", "optimize", examples / name, "-o", path, "--passes", "none")[0] == 0
    return path


def test_a_pass_that_makes_the_graph_faster_is_kept(examples, tmp_path):
    runners = GraphRunners({"Transpose": 0.005})  # the 6-D Transpose costs 5 ms; fusing removes it
    result = auto(examples, tmp_path, runners, report=tmp_path / "report")
    [step] = [s for s in result.steps if s.pass_name == "fuse-depth-to-space"]
    assert step.kept and step.verdict == "faster" and step.opset == 11
    assert step.ratio == pytest.approx(10 / 15, rel=0.02) and step.ci[1] < 0.98
    assert result.kept == ["fuse-depth-to-space"] and result.final.verdict == "faster"
    assert "DepthToSpace" in [n.op_type for n in onnx.load(str(tmp_path / "out.onnx")).graph.node]
    data = json.loads((tmp_path / "report" / "auto.json").read_text())
    assert data["plan"] == "plan.json" and data["final"]["verdict"] == "faster"
    [entry] = [s for s in data["steps"] if s["pass"] == "fuse-depth-to-space"]
    assert {"pass", "verdict", "kept", "ratio", "ci", "reason", "hot_share"} <= set(entry)
    assert entry["hot_share"] > 0.3 and len(entry["ci"]) == 2
    plan = json.loads((tmp_path / "report" / "plan.json").read_text())
    assert plan["passes"] == ["fuse-depth-to-space"] and plan["opset"] == 11
    html = (tmp_path / "report" / "auto.html").read_text()
    assert "fuse-depth-to-space" in html and "result against the input" in html and "<img" in html
    assert (tmp_path / "report" / "profile_before").is_dir() and (tmp_path / "report" / "profile_after").is_dir()


def test_the_plan_of_an_auto_run_replays_to_the_same_model(cli, examples, tmp_path):
    auto(examples, tmp_path, GraphRunners({"Transpose": 0.005}), report=tmp_path / "report")
    code, _, err = cli("-q", "optimize", examples / "srnet_opset9.onnx", "--plan", tmp_path / "report" / "plan.json",
                       "-o", tmp_path / "replayed.onnx")
    assert code == 0, err
    assert digest(tmp_path / "replayed.onnx") == digest(tmp_path / "out.onnx")


@pytest.mark.parametrize("per_op, verdict", [({}, "same"), ({"DepthToSpace": 0.02}, "slower")])
def test_a_pass_that_does_not_pay_is_rejected_and_the_output_is_the_input_graph(
    cli, examples, tmp_path, per_op, verdict
):
    result = auto(examples, tmp_path, GraphRunners(per_op))
    [step] = [s for s in result.steps if s.pass_name == "fuse-depth-to-space"]
    assert not step.kept and step.verdict == verdict and step.ratio is not None
    assert result.kept == [] and result.final is None
    assert any("nothing paid" in note for note in result.notes)
    assert digest(tmp_path / "out.onnx") == digest(none_output(cli, examples, tmp_path))


def test_noise_the_budget_cannot_resolve_is_undecided_and_rejected(examples, tmp_path):
    runners = GraphRunners({"Transpose": 0.0002}, noise=0.3)  # 2% apart, +-30% noise
    result = auto(examples, tmp_path, runners, budget_s=5.0)
    [step] = [s for s in result.steps if s.pass_name == "fuse-depth-to-space"]
    assert step.verdict == "undecided" and not step.kept
    assert "budget" in step.reason and "spread" in step.reason


class BreakTransposes(NodePass):
    """Test pass: reverses every Transpose's perm (wrong wherever it runs)."""

    name = "test-break-transpose"
    summary = "Test: reverse every Transpose perm"
    addresses = ("Transpose",)

    def rewrite(self, node, model, ctx):
        perm = node.attributes.get_ints("perm") if node.op_type == "Transpose" else None
        if not perm or list(perm) == sorted(perm, reverse=True):
            return None
        node.attributes["perm"] = ir.AttrInt64s("perm", list(perm)[::-1])
        return Change("reversed perm", (node.name,))


def test_a_pass_that_breaks_numerics_is_rejected_without_timing(examples, tmp_path):
    runners = GraphRunners({})  # nothing pays, so every candidate runs on the input's graph
    with registered(BreakTransposes):
        result = auto(examples, tmp_path, runners)
    [step] = [s for s in result.steps if s.pass_name == "test-break-transpose"]
    assert not step.kept and step.verdict is None and step.timing is None
    assert step.reason.startswith("dropped: broke output")


def test_the_result_is_never_slower_than_the_input_by_the_final_verdict(cli, examples, tmp_path):
    # The step's A/B says faster; from then on (the final A/B) every model takes the same time.
    runners = GraphRunners({"Transpose": 0.005}, flip_after=2)
    result = auto(examples, tmp_path, runners)
    [step] = [s for s in result.steps if s.pass_name == "fuse-depth-to-space"]
    assert step.kept and result.final.verdict == "same"
    assert result.kept == [] and any("not faster than the input as a whole" in note for note in result.notes)
    assert digest(tmp_path / "out.onnx") == digest(none_output(cli, examples, tmp_path))


class Interrupting(GraphRunners):
    def __call__(self, model):
        if len(self.models) >= 2:
            raise KeyboardInterrupt
        return super().__call__(model)


def test_an_interrupt_writes_nothing_and_leaves_no_work_folder(examples, tmp_path, monkeypatch):
    scratch = tmp_path / "tmp"  # a temporary folder of its own: other tests' auto runs come and go
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with pytest.raises(KeyboardInterrupt):
        auto(examples, tmp_path, Interrupting({"Transpose": 0.005}), report=tmp_path / "report")
    assert not (tmp_path / "out.onnx").exists() and not (tmp_path / "report").exists()
    assert list(scratch.iterdir()) == []


def test_bad_paths_are_refused_before_any_work(cli, examples, tmp_path):
    source = examples / "srnet_opset9.onnx"
    for args, message in (
        (["-o", source], "is the input"),
        (["-o", tmp_path], "is a directory"),
        (["-o", tmp_path / "missing" / "o.onnx"], "does not exist"),
    ):
        code, _, err = cli("auto", source, *args)
        assert code == 2 and message in err and err.count("\n") == 1, err


def test_a_real_run_keeps_the_numbers(cli, examples, tmp_path):
    """Real onnxruntime timing, few rounds: whatever is kept, the output computes what the input does."""
    out = tmp_path / "out.onnx"
    code, stdout, err = cli("auto", examples / "srnet_opset9.onnx", "-o", out, "--budget", "5")
    assert code == 0, err
    assert "kept: " in stdout and "fuse-depth-to-space" in stdout
    x = np.random.default_rng(0).standard_normal([1, 3, 114, 114]).astype(np.float32)
    expected = run_onnxruntime(examples / "srnet_opset9.onnx", {"image": x})
    actual = run_onnxruntime(out, {"image": x})
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=1e-4, atol=1e-5)
