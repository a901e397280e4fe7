"""The A/B timing engine: did B get faster than A, beyond the noise?

Protocol, the same on every backend: one runner per model, built with identical settings; warm-up
in both orders (A B, then B A: whichever runs first is slightly slower); then rounds in which each
model runs once, the order alternating (A B, B A, ...) or shuffled per round (seeded), so drift
hits both sides. After the initial rounds, the ratio of medians B / A gets a seeded bootstrap
interval (:mod:`profiles.statistics`, rounds resampled as pairs); while it crosses an edge of the
``±min_gain`` band, rounds are added until it does not, ``max_rounds`` is reached or ``budget_s``
is spent, and then the verdict is ``undecided`` with the spread seen.

Clocks on onnxruntime: ``thread-cpu`` (the calling thread's CPU time, ``time.thread_time``), valid
with one intra-op thread and sequential execution, where it spreads about ±0.3 % under load from
other processes, while ``wall`` (``time.perf_counter``) spreads 0.97-1.06 for a model against
itself; ``auto`` takes ``thread-cpu`` with one thread and ``wall`` with more. On the NPU
(:class:`AisBenchRunners`) the clock is ``npu``: the NPU compute time ais_bench reports.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from optimizer.errors import UserError
from profiles.statistics import CONFIDENCE, MIN_GAIN, RatioEstimate, describe, estimate

Runner = Callable[[], float]  # one run of a model; returns its time in seconds on the runner's clock
RunnerFactory = Callable[[Any], Runner]  # model (path or onnx-ir model) -> runner

CLOCKS = ("auto", "thread-cpu", "wall")
ORDERS = ("alternate", "shuffle")
GRAPH_OPTIMIZATION = ("disable", "basic", "extended", "all")
ROUNDS = 20
MAX_ROUNDS = 400
BUDGET_S = 60.0
WARMUP = 2
MIN_SAMPLE_S = 0.005  # a sample of a tiny model averages inferences up to this long
MAX_REPEATS = 1000
CLOCK_WORDS = {"thread-cpu": "thread CPU time", "wall": "wall-clock time", "npu": "NPU compute time"}


@dataclass
class ABResult:
    """One pair: baseline A against candidate B, ratio = B / A of the median latencies.

    ``clock`` is ``thread-cpu``, ``wall`` or (ais_bench) ``npu``; ``verdict`` is ``faster``,
    ``slower``, ``same`` or ``undecided``; ``reason`` says why in one line, in words: "B is faster
    than A: ratio 0.710 (95% CI 0.690-0.730), beyond the 2% threshold; thread CPU time, 60
    interleaved rounds" (undecided: the spread each side showed, and what stopped the rounds). ``settings`` records how
    it was measured (backend, threads, session options, warm-up, order, why this clock, why it stopped).
    """

    a: str
    b: str
    clock: str
    a_median_ms: float
    b_median_ms: float
    ratio: float
    ci: tuple[float, float]
    verdict: str
    reason: str
    rounds: int
    a_samples_ms: list[float]
    b_samples_ms: list[float]
    settings: dict = field(default_factory=dict)
    estimate: RatioEstimate | None = None

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        d = asdict(self)
        d["ci"] = list(self.ci)
        return d


def resolve_clock(clock: str, threads: int) -> tuple[str, str]:
    """The clock to use and why: ``auto`` is ``thread-cpu`` with one intra-op thread, else ``wall``."""
    if clock not in CLOCKS:
        raise UserError(f"clock must be one of {', '.join(CLOCKS)}, not {clock!r}")
    if clock == "thread-cpu" and threads != 1:
        raise UserError(
            f"the thread-cpu clock needs one intra-op thread, not {threads}: the calling thread's CPU time "
            "misses the other threads' work (use --clock wall or --threads 1)"
        )
    if clock == "auto":
        if threads == 1:
            return "thread-cpu", "auto: one intra-op thread, sequential execution: the calling thread's CPU time"
        return "wall", f"auto: {threads} intra-op threads: wall-clock time (thread CPU time would miss their work)"
    return clock, f"{clock}, as asked"


class OnnxruntimeRunners:
    """Runner factory: one onnxruntime CPU session per model, all with the same SessionOptions
    (``threads`` intra-op threads, one inter-op thread, sequential execution, ``graph_optimization``),
    each run timed with ``clock`` on the same ``feeds``. A sample is the mean of as many inferences
    as take ``min_sample_s`` (one for most models; a tiny model's single run is mostly clock and
    scheduler jitter), counted once per model when its session starts."""

    backend = "onnxruntime"

    def __init__(self, feeds: dict[str, np.ndarray], *, threads: int = 1, clock: str = "thread-cpu",
                 graph_optimization: str = "all", min_sample_s: float = MIN_SAMPLE_S) -> None:
        if clock not in ("thread-cpu", "wall"):
            raise UserError(f"onnxruntime runners time with thread-cpu or wall, not {clock!r}")
        resolve_clock(clock, threads)  # refuses thread-cpu with several threads
        if graph_optimization not in GRAPH_OPTIMIZATION:
            raise UserError(f"graph optimization must be one of {', '.join(GRAPH_OPTIMIZATION)}")
        self.feeds, self.threads, self.clock, self.graph_optimization = feeds, threads, clock, graph_optimization
        self.min_sample_s = min_sample_s
        self.repeats: dict[str, int] = {}  # inferences per sample, by model
        self._sources = contextlib.ExitStack()  # kept open while the sessions live

    def settings(self) -> dict:
        """The session options every session gets."""
        return {"backend": self.backend, "threads": self.threads, "inter_op_threads": 1,
                "execution_mode": "sequential", "graph_optimization": self.graph_optimization,
                "inferences_per_sample": dict(self.repeats)}

    def __call__(self, model: Any) -> Runner:
        from optimizer.ort_session import cpu_session, native_reason, onnxruntime, session_options
        from optimizer.verify import session_source

        ort = onnxruntime()
        levels = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        options = session_options(
            intra_op_num_threads=self.threads,
            inter_op_num_threads=1,
            execution_mode=ort.ExecutionMode.ORT_SEQUENTIAL,
            graph_optimization_level=levels[self.graph_optimization],
        )
        timer = time.thread_time if self.clock == "thread-cpu" else time.perf_counter
        feeds = self.feeds
        try:
            source = self._sources.enter_context(session_source(model if not isinstance(model, str) else Path(model),
                                                                options))
            session = cpu_session(source, options)
            session.run(None, feeds)
            started = timer()
            session.run(None, feeds)
        except Exception as exc:  # the model, or these inputs, onnxruntime cannot run: bad input
            raise UserError(f"{_name(model)}: onnxruntime cannot run it: {native_reason(exc)}") from None
        once = max(timer() - started, 1e-7)
        repeats = min(MAX_REPEATS, max(1, math.ceil(self.min_sample_s / once)))
        self.repeats[_name(model)] = repeats

        def run() -> float:
            started = timer()
            for _ in range(repeats):
                session.run(None, feeds)
            return (timer() - started) / repeats

        return run

    def close(self) -> None:
        """Remove what the sessions needed on disk (a copy of an in-memory model, rarely)."""
        self._sources.close()


class AisBenchRunners:
    """Runner factory for ``.om`` models on the NPU: a run is one ais_bench invocation (or the old
    benchmark tool's) of ``loop`` inferences, and its time is the median NPU compute time it reports
    (the mean, from the benchmark tool). Results go into a folder per model under ``work``."""

    backend = "ascend"
    clock = "npu"

    def __init__(self, toolchain: Any, work: Path, *, device: int = 0, loop: int = 10, timeout: float = 600.0,
                 verbose: bool = False) -> None:
        self.toolchain, self.work, self.device, self.loop = toolchain, Path(work), device, loop
        self.timeout, self.verbose = timeout, verbose
        self._count = 0

    def settings(self) -> dict:
        """How each model is run."""
        return {"backend": self.backend, "device": self.device, "loop": self.loop, "timeout_s": self.timeout}

    def __call__(self, model: Any) -> Runner:
        from optimizer.toolchain import inference
        from optimizer.toolchain.process import ToolError, run_tool
        from profiles.read import read_profile

        om = Path(model)
        if om.suffix != ".om" or not om.is_file():
            raise UserError(f"{om}: no such .om model")
        self._count += 1
        folder = self.work / f"{self._count}_{om.stem}"
        folder.mkdir(parents=True, exist_ok=True)
        run = inference.inference_run(
            self.toolchain, om.resolve(), folder.resolve(), device=self.device, runs=self.loop, batch_size=1
        )
        log = folder / f"{run.tool}.log"

        def once() -> float:
            for pattern in ("*_summary.json", "*/sumary.json", "result/PureInfer_perf_of_*"):
                for stale in folder.glob(pattern):
                    stale.unlink()
            done = run_tool(run.argv, env=self.toolchain.env, timeout=self.timeout, cwd=run.cwd, log=log,
                            verbose=self.verbose)
            if done.returncode != 0:
                raise ToolError(f"{run.tool} failed on {om.name} (exit status {done.returncode}); output in {log}")
            path, _, _ = inference.read_result(run)
            latency = read_profile(path).latency
            if latency is None or not latency.center_ms:
                raise ToolError(f"{run.tool} reported no latency for {om.name} in {path}")
            return latency.center_ms / 1000.0

        return once


def time_ab(
    a: Any,
    b: Any,
    feeds: dict[str, np.ndarray] | None,
    *,
    threads: int = 1,
    clock: str = "auto",
    min_gain: float = MIN_GAIN,
    rounds: int = ROUNDS,
    max_rounds: int = MAX_ROUNDS,
    budget_s: float = BUDGET_S,
    seed: int = 0,
    runner_factory: RunnerFactory | None = None,
    labels: tuple[str, str] = ("A", "B"),
    **options: Any,
) -> ABResult:
    """Time baseline ``a`` against candidate ``b`` (model paths or onnx-ir models) on ``feeds``.

    Without ``runner_factory`` each gets an onnxruntime session (:class:`OnnxruntimeRunners`).
    ``options`` go to :func:`time_many` (``warmup``, ``order``, ``graph_optimization``,
    ``confidence``, ``monotonic``, ``progress``).
    """
    [result] = time_many(
        [a, b], feeds, threads=threads, clock=clock, min_gain=min_gain, rounds=rounds, max_rounds=max_rounds,
        budget_s=budget_s, seed=seed, runner_factory=runner_factory, labels=labels, **options,
    )
    return result


def time_many(
    models: Sequence[Any],
    feeds: dict[str, np.ndarray] | None,
    *,
    threads: int = 1,
    clock: str = "auto",
    min_gain: float = MIN_GAIN,
    rounds: int = ROUNDS,
    max_rounds: int = MAX_ROUNDS,
    budget_s: float = BUDGET_S,
    seed: int = 0,
    runner_factory: RunnerFactory | None = None,
    labels: Sequence[str] | None = None,
    warmup: int = WARMUP,
    order: str = "alternate",
    graph_optimization: str = "all",
    confidence: float = CONFIDENCE,
    monotonic: Callable[[], float] = time.monotonic,
    progress: Callable[[str], None] | None = None,
) -> list[ABResult]:
    """Time every model against the first, interleaved in the same rounds; one :class:`ABResult` each.

    ``runner_factory(model) -> runner`` replaces onnxruntime (tests, the NPU); a factory with a
    ``clock`` attribute names its own clock, else ``clock`` is resolved by :func:`resolve_clock`.
    ``budget_s`` is measured on ``monotonic`` from the first warm-up run; the initial ``rounds``
    always run, further rounds only while some pair is undecided, at most ``max_rounds`` in all.
    """
    say = progress or (lambda message: None)
    labels = list(labels) if labels is not None else ["A", *(f"B{i}" if len(models) > 2 else "B"
                                                             for i in range(1, len(models)))]
    if len(models) < 2 or len(labels) != len(models):
        raise ValueError("time_many needs two or more models, and one label each")
    if rounds < 2 or max_rounds < rounds or warmup < 0 or budget_s < 0:
        raise UserError(f"need rounds >= 2, max rounds >= rounds, warm-up >= 0 (rounds {rounds}, "
                        f"max rounds {max_rounds}, warm-up {warmup})")
    if order not in ORDERS:
        raise UserError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
    if runner_factory is not None and getattr(runner_factory, "clock", None):
        used, why = runner_factory.clock, f"{runner_factory.clock}: the runner's own clock"
    else:
        used, why = resolve_clock(clock, threads)
    factory = runner_factory or OnnxruntimeRunners(
        feeds or {}, threads=threads, clock=used, graph_optimization=graph_optimization
    )
    say("starting the sessions")
    try:
        return _measure(factory, models, labels, used, why, threads, rounds, max_rounds, budget_s, seed, warmup,
                        order, min_gain, confidence, monotonic, say)
    finally:
        if hasattr(factory, "close"):
            factory.close()


def _measure(factory: RunnerFactory, models: Sequence[Any], labels: list[str], used: str, why: str, threads: int,
             rounds: int, max_rounds: int, budget_s: float, seed: int, warmup: int, order: str, min_gain: float,
             confidence: float, monotonic: Callable[[], float], say: Callable[[str], None]) -> list[ABResult]:
    """The protocol of :func:`time_many` once the runner factory is chosen."""
    runners = [factory(model) for model in models]
    started = monotonic()
    forward = list(range(len(runners)))
    for _ in range(warmup):
        for i in forward + forward[::-1]:
            runners[i]()
    samples: list[list[float]] = [[] for _ in runners]
    rng = np.random.default_rng(seed)

    def one_round() -> None:
        n = len(samples[0])
        sequence = rng.permutation(forward) if order == "shuffle" else (forward if n % 2 == 0 else forward[::-1])
        for i in sequence:
            samples[i].append(runners[i]() * 1000.0)

    def estimates() -> list[RatioEstimate]:
        return [estimate(samples[0], s, min_gain=min_gain, confidence=confidence, seed=seed, paired=True)
                for s in samples[1:]]

    for n in range(rounds):
        say(f"round {n + 1}/{rounds}")
        one_round()
    found = estimates()
    stopped = None
    step = max(1, rounds // 2)
    while not all(e.decided for e in found):
        if len(samples[0]) >= max_rounds:
            stopped = f"max rounds ({max_rounds}) reached"
            break
        if monotonic() - started >= budget_s:
            stopped = f"time budget of {budget_s:g} s spent"
            break
        for _ in range(min(step, max_rounds - len(samples[0]))):
            if monotonic() - started >= budget_s:
                break
            one_round()
        say(f"{len(samples[0])} rounds, not decided yet")
        found = estimates()
    settings = {
        **(factory.settings() if hasattr(factory, "settings") else {"backend": "custom", "threads": threads}),
        "clock_reason": why, "warmup": warmup, "warmup_orders": "forward, then reversed", "order": order,
        "min_gain": min_gain, "confidence": confidence, "seed": seed, "max_rounds": max_rounds,
        "budget_s": budget_s, "stopped": None, "elapsed_s": round(monotonic() - started, 3),
    }
    return [
        _result(labels[0], labels[i + 1], used, e, samples[0], samples[i + 1], stopped, settings)
        for i, e in enumerate(found)
    ]


def _result(a: str, b: str, clock: str, e: RatioEstimate, a_samples: list[float], b_samples: list[float],
            stopped: str | None, settings: dict) -> ABResult:
    rounds = len(a_samples)
    measured = f"{CLOCK_WORDS.get(clock, clock)}, {rounds} interleaved rounds"
    if e.decided:
        verdict, reason = e.verdict, f"{describe(e, a, b)}; {measured}"
    else:
        verdict, reason = "undecided", f"{describe(e, a, b, undecided=True)}; {measured}, then {stopped}"
    return ABResult(
        a=a, b=b, clock=clock, a_median_ms=e.a_median, b_median_ms=e.b_median, ratio=e.ratio, ci=(e.lo, e.hi),
        verdict=verdict, reason=reason, rounds=rounds, a_samples_ms=list(a_samples), b_samples_ms=list(b_samples),
        settings={**settings, "stopped": None if e.decided else stopped}, estimate=e,
    )


def _name(model: Any) -> str:
    return str(model) if isinstance(model, (str, Path)) else getattr(model.graph, "name", None) or "model"
