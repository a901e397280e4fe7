"""The A/B timing engine: decisions on an injected timer, real onnxruntime runs (structure only,
never timing), the bench verb, and the NPU protocol on the fake ais_bench."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir
import pytest
from helpers import make_model
from onnx import helper

from optimizer.errors import UserError
from optimizer.loop.timing import AisBenchRunners, time_ab, time_many

ROOT = Path(__file__).resolve().parent.parent.parent
FAKES = ROOT / "tests" / "fakes"
VERDICTS = {"faster", "slower", "same", "undecided"}


class FakeRunners:
    """Runner factory on a simulated clock: model name -> median seconds, log-normal noise, seeded.

    Every run is recorded in ``calls`` and advances ``now`` (the injected monotonic clock)."""

    def __init__(self, medians: dict[str, float], noise: float = 0.002, seed: int = 0, clock: str | None = None):
        self.medians, self.noise, self.rng = medians, noise, np.random.default_rng(seed)
        self.calls: list[str] = []
        self.now = 0.0
        if clock:
            self.clock = clock

    def monotonic(self) -> float:
        return self.now

    def __call__(self, model: str):
        def run() -> float:
            self.calls.append(model)
            seconds = self.medians[model] * float(np.exp(self.rng.normal(0.0, self.noise)))
            self.now += seconds
            return seconds

        return run


def fake_ab(medians, noise=0.002, **options):
    runners = FakeRunners(medians, noise)
    options.setdefault("monotonic", runners.monotonic)
    return time_ab("a", "b", None, runner_factory=runners, **options), runners


@pytest.mark.parametrize("b, expected", [(0.007, "faster"), (0.013, "slower"), (0.010, "same")])
def test_clear_differences_are_decided_in_the_first_rounds(b, expected):
    result, _ = fake_ab({"a": 0.010, "b": b}, rounds=20)
    assert result.verdict == expected and result.rounds == 20
    assert result.ci[0] <= result.ratio <= result.ci[1]
    assert result.a_median_ms == pytest.approx(10.0, rel=0.01)
    assert result.b_median_ms == pytest.approx(b * 1000, rel=0.01)
    assert len(result.a_samples_ms) == len(result.b_samples_ms) == 20
    assert result.reason.endswith("; thread CPU time, 20 interleaved rounds")
    assert result.settings["stopped"] is None


def test_the_reason_words_the_verdict():
    result, _ = fake_ab({"a": 0.010, "b": 0.007}, labels=("base", "fused"))
    assert (result.a, result.b) == ("base", "fused")
    assert result.reason.startswith("fused is faster than base: ratio 0.70")
    assert "beyond the 2% threshold" in result.reason


def test_noise_too_wide_is_undecided_after_max_rounds_with_the_spread():
    result, runners = fake_ab({"a": 0.010, "b": 0.010}, noise=0.3, rounds=10, max_rounds=40, budget_s=1e9)
    assert result.verdict == "undecided" and result.rounds == 40
    assert result.ci[0] < 0.98 or result.ci[1] > 1.02
    assert "crosses the ±2% threshold; spread A ±" in result.reason and ", B ±" in result.reason
    assert result.reason.endswith("40 interleaved rounds, then max rounds (40) reached")
    assert result.settings["stopped"] == "max rounds (40) reached"
    assert len(runners.calls) == 2 * (2 * 2) + 2 * 40  # warm-up: two rounds of A B B A


def test_the_budget_stops_the_added_rounds():
    # Each run advances the simulated clock by ~10 ms: a 1 s budget allows ~50 rounds, not 10000.
    result, _ = fake_ab({"a": 0.010, "b": 0.010}, noise=0.3, rounds=10, max_rounds=10_000, budget_s=1.0)
    assert result.verdict == "undecided" and 10 <= result.rounds < 60
    assert result.reason.endswith("then time budget of 1 s spent")


def test_the_initial_rounds_always_run_and_more_follow_only_while_undecided():
    noisy, _ = fake_ab({"a": 0.010, "b": 0.0085}, noise=0.08, rounds=4, max_rounds=400, budget_s=1e9)
    assert noisy.verdict == "faster" and 4 < noisy.rounds < 400  # decided once enough rounds came in
    quiet, _ = fake_ab({"a": 0.010, "b": 0.0085}, noise=0.001, rounds=4, budget_s=0.0)
    assert quiet.rounds == 4 and quiet.verdict == "faster"


def test_warm_up_in_both_orders_then_alternating_rounds():
    _, runners = fake_ab({"a": 0.01, "b": 0.01}, rounds=4, warmup=2)
    calls = "".join(runners.calls)
    assert calls[:8] == "abba" * 2  # A B, then B A, twice
    assert calls[8:] == "ab" "ba" "ab" "ba"


def test_shuffled_rounds_are_seeded_and_see_both_orders():
    _, first = fake_ab({"a": 0.01, "b": 0.01}, rounds=20, warmup=0, order="shuffle", seed=3)
    _, again = fake_ab({"a": 0.01, "b": 0.01}, rounds=20, warmup=0, order="shuffle", seed=3)
    pairs = ["".join(first.calls[i:i + 2]) for i in range(0, 40, 2)]
    assert first.calls == again.calls and {"ab", "ba"} == set(pairs)
    with pytest.raises(UserError, match="order must be"):
        fake_ab({"a": 0.01, "b": 0.01}, order="random")


def test_every_result_says_which_clock():
    assert fake_ab({"a": 0.01, "b": 0.01})[0].clock == "thread-cpu"
    wall, _ = fake_ab({"a": 0.01, "b": 0.01}, threads=4)
    assert wall.clock == "wall" and "4 intra-op threads" in wall.settings["clock_reason"]
    assert wall.reason.endswith("wall-clock time, 20 interleaved rounds")
    assert fake_ab({"a": 0.01, "b": 0.01}, clock="wall")[0].settings["clock_reason"] == "wall, as asked"
    with pytest.raises(UserError, match="thread-cpu clock needs one intra-op thread"):
        fake_ab({"a": 0.01, "b": 0.01}, clock="thread-cpu", threads=2)
    npu = time_ab("a", "b", None, runner_factory=FakeRunners({"a": 0.01, "b": 0.01}, clock="npu"))
    assert npu.clock == "npu" and npu.reason.endswith("NPU compute time, 20 interleaved rounds")


def test_time_many_times_each_against_the_first_in_the_same_rounds():
    runners = FakeRunners({"base": 0.010, "x": 0.007, "y": 0.010})
    results = time_many(["base", "x", "y"], None, runner_factory=runners, rounds=6, warmup=1,
                        labels=["base", "x", "y"], monotonic=runners.monotonic)
    assert [(r.a, r.b, r.verdict) for r in results] == [("base", "x", "faster"), ("base", "y", "same")]
    assert results[0].a_samples_ms == results[1].a_samples_ms
    assert "".join(c[0] for c in runners.calls[:6]) == "bxyyxb"
    assert "".join(c[0] for c in runners.calls[6:12]) == "bxyyxb"  # round 1 forward, round 2 reversed


def test_bad_parameters_are_refused():
    with pytest.raises(UserError, match="rounds >= 2"):
        fake_ab({"a": 0.01, "b": 0.01}, rounds=10, max_rounds=5)
    with pytest.raises(ValueError, match="two or more models"):
        time_many(["a"], None, runner_factory=FakeRunners({"a": 0.01}))


def test_to_dict_is_json_ready():
    result, _ = fake_ab({"a": 0.010, "b": 0.007}, rounds=5)
    d = json.loads(json.dumps(result.to_dict()))
    assert {"a", "b", "clock", "a_median_ms", "b_median_ms", "ratio", "ci", "verdict", "reason", "rounds",
            "a_samples_ms", "b_samples_ms", "settings"} <= set(d)
    assert d["ci"] == list(result.ci) and d["settings"]["warmup_orders"] == "forward, then reversed"


# -- real onnxruntime: structure only, nothing about time ------------------------------------------


def tiny_model(extra_relu: bool = False) -> onnx.ModelProto:
    nodes = [helper.make_node("Relu", ["x"], ["y" if not extra_relu else "h"], name="r0")]
    if extra_relu:
        nodes.append(helper.make_node("Relu", ["h"], ["y"], name="r1"))
    return make_model(nodes, [("x", [1, 8, 16, 16])], [("y", [1, 8, 16, 16])])


@pytest.mark.parametrize("clock", ["thread-cpu", "wall"])
def test_real_runs_of_the_example_and_its_fused_form(examples, clock):
    feeds = {"image": np.random.default_rng(0).standard_normal((1, 3, 114, 114)).astype(np.float32)}
    result = time_ab(examples / "srnet_opset9.onnx", examples / "srnet_opset11.onnx", feeds, clock=clock,
                     rounds=3, max_rounds=3, warmup=1)
    assert result.verdict in VERDICTS and result.clock == clock and result.rounds == 3
    assert result.ratio > 0 and len(result.a_samples_ms) == len(result.b_samples_ms) == 3
    assert all(s > 0 for s in result.a_samples_ms + result.b_samples_ms)
    assert result.settings | {"backend": "onnxruntime", "threads": 1, "inter_op_threads": 1,
                              "execution_mode": "sequential", "graph_optimization": "all"} == result.settings


def test_real_runs_of_in_memory_models_with_threads():
    a, b = ir.serde.deserialize_model(tiny_model()), ir.serde.deserialize_model(tiny_model(extra_relu=True))
    feeds = {"x": np.ones((1, 8, 16, 16), np.float32)}
    result = time_ab(a, b, feeds, threads=2, rounds=4, max_rounds=4, graph_optimization="disable")
    assert result.verdict in VERDICTS and result.clock == "wall" and result.rounds == 4
    assert result.settings["graph_optimization"] == "disable" and result.settings["threads"] == 2


def test_a_model_onnxruntime_cannot_load_is_a_user_error(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(UserError, match="junk.onnx: onnxruntime cannot run it"):
        time_ab(junk, junk, {}, rounds=2)


# -- onnx-opt bench --------------------------------------------------------------------------------


def test_bench_prints_the_verdict_and_writes_json(cli, examples, tmp_path):
    code, out, err = cli("bench", examples / "srnet_opset9.onnx", examples / "srnet_opset11.onnx", "--runs", "3",
                         "--max-rounds", "3", "--warmup", "1", "--min-gain", "5", "--json", tmp_path / "b.json")
    assert code == 0, err
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["a_model"].endswith("srnet_opset9.onnx") and data["inputs"] == "random (seed 0)"
    assert data["verdict"] in VERDICTS and data["rounds"] == 3 and data["clock"] == "thread-cpu"
    assert data["settings"]["min_gain"] == 0.05 and len(data["b_samples_ms"]) == 3
    for column in ("A median ms", "ratio B/A", "95% CI", "verdict", "clock", "rounds"):
        assert column in out
    assert "5% threshold" in out or "±5%" in out


def test_bench_in_memory_inputs_file(cli, tmp_path):
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(tiny_model(), a)
    onnx.save(tiny_model(extra_relu=True), b)
    np.savez(tmp_path / "in.npz", x=np.ones((1, 8, 16, 16), np.float32))
    code, out, err = cli("-q", "bench", a, b, "--inputs", tmp_path / "in.npz", "--runs", "2", "--max-rounds", "2",
                         "--clock", "wall", "--json", tmp_path / "b.json")
    assert code == 0 and out == "", err
    data = json.loads((tmp_path / "b.json").read_text())
    assert data["inputs"] == str(tmp_path / "in.npz") and data["clock"] == "wall"


@pytest.mark.parametrize(
    "args, message",
    [
        (["{tmp}/missing.onnx", "{ex}/srnet_opset9.onnx"], "missing.onnx"),
        (["{ex}/srnet_opset9.onnx", "{ex}/skunit_opset11.onnx"], "input 'image' has shape [1,16,14,14]"),
        (["{ex}/srnet_opset9.onnx", "{tmp}/other.onnx"], "take different inputs"),
        (["{ex}/srnet_opset9.onnx", "{ex}/srnet_opset9.onnx", "--threads", "2", "--clock", "thread-cpu"],
         "needs one intra-op thread"),
        (["{ex}/srnet_opset9.onnx", "{ex}/srnet_opset9.onnx", "--runs", "10", "--max-rounds", "5"],
         "below --runs"),
        (["{ex}/srnet_opset9.onnx", "{ex}/srnet_opset9.onnx", "--json", "{tmp}/no/b.json"], "does not exist"),
        (["{tmp}/a.om", "{tmp}/a.om", "--inputs", "{tmp}/x.npz"], "apply to the onnxruntime backend"),
    ],
)
def test_bench_bad_input_is_one_line_and_exit_2(cli, examples, tmp_path, args, message):
    onnx.save(tiny_model(), tmp_path / "other.onnx")
    code, out, err = cli("bench", *[a.format(tmp=tmp_path, ex=examples) for a in args])
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err


# -- the NPU protocol on the fake ais_bench --------------------------------------------------------


@pytest.fixture
def fake_npu(tmp_path, monkeypatch):
    """``python3 -m ais_bench`` is the fake, with no real toolkit and the fakes' calls recorded."""
    from optimizer.toolchain import environment

    for name in list(os.environ):
        if name.startswith(("ASCEND_", "FAKE_")) or name == "PYTHONPATH":
            monkeypatch.delenv(name)
    monkeypatch.setattr(environment, "DEFAULT_HOME", tmp_path / "no-default-toolkit")
    monkeypatch.setenv("PYTHONPATH", str(FAKES))
    monkeypatch.setenv("FAKE_CALLS", str(tmp_path / "calls.jsonl"))

    def om(name: str, latency_ms: float) -> Path:
        path = tmp_path / f"{name}.om"
        path.write_text(f"fake om\nlatency_ms={latency_ms}\n")
        return path

    return om


def ais_calls(tmp_path) -> list[list[str]]:
    lines = (tmp_path / "calls.jsonl").read_text().splitlines()
    return [call["argv"] for call in map(json.loads, lines) if call["tool"] == "ais_bench"]


def test_npu_the_faster_om_is_faster(fake_npu, tmp_path):
    from optimizer.toolchain.environment import discover

    slow, fast = fake_npu("slow", 1.0), fake_npu("fast", 0.7)
    runners = AisBenchRunners(discover(), tmp_path / "work", loop=4, timeout=60)
    result = time_ab(slow, fast, None, runner_factory=runners, rounds=3, max_rounds=3, warmup=1)
    assert (result.verdict, result.clock, result.rounds) == ("faster", "npu", 3)
    assert result.ratio == pytest.approx(0.7, rel=0.02)
    assert result.settings["backend"] == "ascend" and result.settings["loop"] == 4
    argv = ais_calls(tmp_path)
    assert len(argv) == 2 * 2 + 2 * 3  # warm-up A B B A, then three rounds
    assert [Path(a[a.index("--model") + 1]).stem for a in argv[:4]] == ["slow", "fast", "fast", "slow"]
    assert all(a[a.index("--loop") + 1] == "4" for a in argv)


def test_npu_two_identical_oms_are_the_same(fake_npu, tmp_path, monkeypatch):
    from optimizer.toolchain.environment import discover

    one, two = fake_npu("one", 0.5), fake_npu("two", 3.0)
    monkeypatch.setenv("FAKE_LATENCY_two", "0.5")  # the variable wins over the file's own latency
    runners = AisBenchRunners(discover(), tmp_path / "work", loop=4, timeout=60)
    result = time_ab(one, two, None, runner_factory=runners, rounds=3, max_rounds=3, warmup=0)
    assert result.verdict == "same" and result.a_median_ms == pytest.approx(0.5, rel=0.02)


def test_bench_on_two_oms_uses_ais_bench(cli, fake_npu, tmp_path):
    slow, fast = fake_npu("slow", 2.0), fake_npu("fast", 1.0)
    code, out, err = cli("bench", slow, fast, "--runs", "2", "--max-rounds", "2", "--loop", "3",
                         "--json", tmp_path / "b.json")
    assert code == 0, err
    data = json.loads((tmp_path / "b.json").read_text())
    assert (data["verdict"], data["clock"], data["inputs"]) == ("faster", "npu", None)
    assert abs(data["ratio"] - 0.5) < 0.01  # the fakes report 2 ms and 1 ms, each with +-0.5% jitter
    assert f"B is faster than A: ratio {data['ratio']:.3f}" in out and "NPU compute time, 2 interleaved rounds" in out
    assert len(ais_calls(tmp_path)) == 2 * 2 + 2 * 2


def test_npu_a_missing_om_is_a_user_error(fake_npu, tmp_path):
    from optimizer.toolchain.environment import discover

    with pytest.raises(UserError, match="no such .om model"):
        AisBenchRunners(discover(), tmp_path / "work")(tmp_path / "absent.om")
