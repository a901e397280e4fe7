"""``auto``: profile, choose passes from where the time goes, keep only what is faster.

The loop, on the onnxruntime backend:

1. the *base* is the input written as ``optimize --passes none`` writes it (``--input-shape``
   fixed), so every A/B compares files written the same way;
2. the base is profiled, and :func:`optimizer.loop.candidates.choose_candidates` orders the
   passes by the hot time of the nodes they would change;
3. each candidate, on the current best model: applied and verified by ``optimize`` (numbers
   kept on every output and If side), then timed against the current best with the A/B engine
   (:func:`optimizer.loop.timing.time_ab`); kept only on a ``faster`` verdict, otherwise
   rejected with the reason and the ratio measured;
4. the result is timed against the base once more; if that does not say ``faster`` for a
   model that kept passes (drift made the steps look better than the whole), the base is
   written instead, so the output is never slower than the input by the engine's verdict.

Everything happens in a work folder; the output and the report are written only at the end,
so an interrupt leaves nothing half-done. The Ascend backend (:mod:`optimizer.loop.auto_ascend`)
shares the per-candidate flow (:func:`apply_candidate`, :meth:`Step.judge`), the options, the
result and the writing.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optimizer.errors import UserError
from optimizer.loop.candidates import Candidate, choose_candidates
from optimizer.loop.plan import Plan, file_sha256
from optimizer.loop.timing import MAX_ROUNDS, ROUNDS, ABResult, RunnerFactory, time_ab
from optimizer.modelio import (
    check_output,
    check_outputs,
    clean_stale_staging,
    has_external_data,
    load_model,
    save_model,
)
from optimizer.optimize import OptimizeOptions, optimize
from optimizer.passapi import model_opset
from optimizer.verifier import choose_feeds
from profiles.atomic import write_json_atomic
from profiles.statistics import MIN_GAIN

FASTER = "faster"
BUDGET_S = 120.0  # seconds of A/B timing in all, shared by the steps still to come
MIN_STEP_BUDGET_S = 5.0
REPORT_FILES = ("auto.json", "auto.html", "plan.json")


@dataclass
class AutoOptions:
    """Everything ``onnx-opt auto`` takes (``runner_factory`` / ``monotonic`` for tests).

    The fields after ``monotonic`` are the Ascend backend's (``backend="ascend"``): the SoC (default:
    the target's ``soc_version``), the NPU device and ais_bench's inferences per run, the toolkit
    settings (CANN version, OPP folder, ATC flags, per-tool timeout), and ``tune="aoe"`` for a
    final AOE operator-tuning step with its tune bank and timeout.
    """

    input: Path
    output: Path
    target: str | None = None
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    verify_shapes: dict[str, list[int]] = field(default_factory=dict)
    inputs: Path | None = None
    min_gain: float = MIN_GAIN
    budget_s: float = BUDGET_S
    threads: int = 1
    clock: str = "auto"
    profile_runs: int = 20
    seed: int = 0
    report: Path | None = None
    runner_factory: RunnerFactory | None = None
    monotonic: Callable[[], float] = time.monotonic
    rounds: int = ROUNDS
    backend: str = "onnxruntime"
    soc: str | None = None
    device: int = 0
    loop: int = 10
    cann_version: str | None = None
    opp: Path | None = None
    input_format: str | None = None
    out_nodes: str | None = None
    atc_args: list[str] = field(default_factory=list)
    timeout_s: float = 3600.0
    tune: str | None = None
    tune_bank: Path | None = None
    tune_top: int = 10
    tune_timeout_s: float = 6 * 3600.0
    verbose: bool = False
    pass_options: dict[str, dict[str, str]] = field(default_factory=dict)  # --set: pass -> option -> value


@dataclass
class Step:
    """One candidate's fate: kept or rejected, with the verdict, ratio and interval measured."""

    pass_name: str
    opset: int | None
    hot_share: float
    hot_op_types: list[str]
    verdict: str | None
    kept: bool
    ratio: float | None
    ci: tuple[float, float] | None
    reason: str
    timing: ABResult | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``steps`` entry of ``auto.json``."""
        return {
            "pass": self.pass_name,
            "opset": self.opset,
            "verdict": self.verdict,
            "kept": self.kept,
            "ratio": self.ratio,
            "ci": list(self.ci) if self.ci else None,
            "reason": self.reason,
            "hot_share": self.hot_share,
            "hot_op_types": self.hot_op_types,
            "timing": self.timing.to_dict() if self.timing else None,
        }

    def judge(self, timing: ABResult) -> bool:
        """Record an A/B of the current best (A) against this step's model (B); kept on ``faster``."""
        self.timing, self.verdict, self.ratio, self.ci = timing, timing.verdict, timing.ratio, timing.ci
        self.kept = timing.verdict == FASTER
        self.reason = timing.reason
        return self.kept


@dataclass
class AutoResult:
    """What ``auto`` did: the target, every step, the final A/B, what was written."""

    input: str
    output: str
    target: str
    target_chosen: str
    steps: list[Step]
    final: ABResult | None
    kept: list[str]
    opset: int | None
    rejected: list[dict]
    notes: list[str]
    profile_before: Any = None  # profiles.model.Profile
    profile_after: Any = None
    written: list[str] = field(default_factory=list)
    backend: str = "onnxruntime"
    om: str | None = None  # ascend: the kept .om, written beside the output
    opp_edits: list[dict] = field(default_factory=list)  # ascend: the OPP white-list edits kept
    aoe: dict | None = None  # ascend, --tune aoe: what AOE did and whether its model was kept

    def to_dict(self) -> dict[str, Any]:
        """``auto.json``."""
        final = None
        if self.final is not None:
            final = {"ratio": self.final.ratio, "ci": list(self.final.ci), "verdict": self.final.verdict,
                     "reason": self.final.reason, "timing": self.final.to_dict()}
        data = {
            "backend": self.backend,
            "input": self.input,
            "output": self.output,
            "written": self.written,
            "target": self.target,
            "target_chosen": self.target_chosen,
            "kept": self.kept,
            "opset": self.opset,
            "steps": [step.to_dict() for step in self.steps],
            "not_candidates": self.rejected,
            "final": final,
            "plan": "plan.json",
            "notes": self.notes,
        }
        if self.backend == "ascend":
            data.update(om=self.om, opp_edits=self.opp_edits, aoe=self.aoe)
        return data


def run_auto(options: AutoOptions, progress: Callable[[str], None] | None = None) -> AutoResult:
    """Run the loop; writes ``options.output`` (and the report folder) only once it is done."""
    say = progress or (lambda message: None)
    check_paths(options)
    with tempfile.TemporaryDirectory(prefix="onnx-opt-auto-") as folder:
        work = Path(folder)
        base = work / "base.onnx"
        say("writing the base model (as optimize --passes none writes it)")
        optimize(optimize_options(options, options.input, base, passes=[], verify=False))
        feeds = choose_feeds(load_model(base), options.inputs, options.verify_shapes, options.seed).sets[0]
        say("profiling the base model")
        before = _profile(base, work / "profile_before", feeds, options)
        say("choosing candidates from the profile")
        candidates, rejected, choice = choose_candidates(before, base, options.target,
                                                         pass_options=options.pass_options)
        result = AutoResult(str(options.input), str(options.output), choice.name, choice.how, [], None, [],
                            None, rejected, clean_stale_staging(options.output.parent))
        if not candidates:
            result.notes.append("no pass changes a node of a hot op type: nothing to try")
        best, spent = base, 0.0
        for index, candidate in enumerate(candidates):
            budget = max(MIN_STEP_BUDGET_S, (options.budget_s - spent) / (len(candidates) - index + 1))
            started = options.monotonic()
            step, model = _try(candidate, best, work / f"step{index}.onnx", feeds, budget, options, choice.name, say)
            spent += options.monotonic() - started
            result.steps.append(step)
            if step.kept:
                best = model
                result.kept.append(candidate.pass_name)
        if result.kept:
            say("timing the result against the input")
            result.final = _time(base, best, feeds, max(MIN_STEP_BUDGET_S, options.budget_s - spent), options,
                                 ("input", "result"))
            if result.final.verdict != FASTER:
                result.notes.append(
                    f"the result is not faster than the input as a whole ({result.final.reason}); "
                    "writing the input's graph"
                )
                best, result.kept = base, []
        if not result.kept:
            result.notes.append("nothing paid: the output is the input's graph, as optimize --passes none writes it")
        result.opset = model_opset(load_model(best)) if result.kept else None
        if options.report is not None:
            say("profiling the result")
            result.profile_before = before
            result.profile_after = before if best == base else _profile(best, work / "profile_after", feeds, options)
        say("writing")
        result.written = write_output(best, base, options)
        if options.report is not None:
            write_report(options.report, work, result, options)
    return result


def _try(
    candidate: Candidate,
    best: Path,
    out: Path,
    feeds: dict,
    budget: float,
    options: AutoOptions,
    target: str,
    say: Callable[[str], None],
) -> tuple[Step, Path]:
    """Apply one candidate to the current best model, verify it, time it; the step and its model."""
    step = apply_candidate(candidate, best, out, options, target, say)
    if step.reason:
        return step, best
    say(f"{candidate.pass_name}: timing against the current best")
    kept = step.judge(_time(best, out, feeds, budget, options, ("current", candidate.pass_name)))
    return step, out if kept else best


def new_step(candidate: Candidate) -> Step:
    """The step of ``candidate`` before anything is tried."""
    return Step(candidate.pass_name, None, candidate.hot_share, candidate.op_types, None, False, None, None, "")


def apply_candidate(
    candidate: Candidate, best: Path, out: Path, options: AutoOptions, target: str, say: Callable[[str], None]
) -> Step:
    """Apply ``candidate`` to the current best model into ``out`` and verify it with onnxruntime.

    The step's ``reason`` says why it is rejected before any timing (refused, failed or dropped,
    verification failed, changed nothing); it is empty when ``out`` is ready to be timed.
    """
    step = new_step(candidate)
    opset = candidate.opset if candidate.opset and candidate.opset > model_opset(load_model(best)) else None
    step.opset = opset
    say(f"{candidate.pass_name}: applying and verifying")
    try:
        report = optimize(optimize_options(options, best, out, passes=[candidate.pass_name], opset=opset,
                                           target=target))
    except UserError as exc:
        step.reason = f"refused: {exc}"
        return step
    [record] = [r for r in report.records if r.name == candidate.pass_name]
    if record.status in ("failed", "dropped"):
        step.reason = f"{record.status}: {record.reason}"
    elif report.verification is not None and not report.verification.ok:
        step.reason = "verification failed: " + "; ".join(report.verification.failures())
    elif not record.changes:
        step.reason = "changed nothing on the current model"
    return step


def _time(a: Path, b: Path, feeds: dict, budget: float, options: AutoOptions, labels: tuple[str, str]) -> ABResult:
    return time_ab(
        a, b, feeds, threads=options.threads, clock=options.clock, min_gain=options.min_gain, budget_s=budget,
        seed=options.seed, runner_factory=options.runner_factory, labels=labels, monotonic=options.monotonic,
        rounds=options.rounds, max_rounds=max(MAX_ROUNDS, options.rounds),
    )


def _profile(model: Path, folder: Path, feeds: dict, options: AutoOptions):
    from optimizer.ort_profile import profile_onnx

    return profile_onnx(model, folder, runs=options.profile_runs, threads=options.threads, feeds=feeds).profile


def optimize_options(options: AutoOptions, source: Path, out: Path, **changes: Any) -> OptimizeOptions:
    """``optimize``'s options for one step of the loop: ``source`` to ``out`` with ``changes`` (the
    ``--set`` options of the passes it runs)."""
    settings = {
        "input": source,
        "output": out,
        "target": changes.pop("target", None) or options.target or "onnxruntime",
        "input_shapes": options.input_shapes if source == options.input else {},
        "verify_shapes": options.verify_shapes,
        "inputs": options.inputs,
        "seed": options.seed,
    }
    settings.update(changes)
    passes = settings.get("passes") or ()
    settings["pass_options"] = {name: values for name, values in options.pass_options.items() if name in passes}
    return OptimizeOptions(**settings)


def check_paths(options: AutoOptions) -> None:
    """Refuse, before any work, an output that is the input, not a writable regular file, or
    any other file of the run (the report's files included), and a report that is a file."""
    if not options.input.is_file():
        raise UserError(f"{options.input}: no such file")
    if options.output.exists() and options.output.resolve() == options.input.resolve():
        raise UserError(f"-o {options.output} is the input; give another file")
    check_output(options.output)
    folder = options.report
    report_files = {f"--report {name}": folder / name for name in REPORT_FILES} if folder and folder.is_dir() else {}
    check_outputs(report_files, inputs={"--inputs": options.inputs},
                  models={"the input model": options.input, "-o": options.output})
    report = options.report
    if report is not None and report.exists() and not report.is_dir():
        raise UserError(f"--report {report} is a file; give a folder")
    if report is not None and not report.parent.is_dir():
        raise UserError(f"--report {report}: folder {report.parent} does not exist")


def write_output(best: Path, base: Path, options: AutoOptions) -> list[str]:
    """The output: the input's graph exactly as ``optimize --passes none`` writes it, or the best model."""
    if best == base:
        report = optimize(optimize_options(options, options.input, options.output, passes=[], verify=False))
        return report.written
    external = has_external_data(load_model(options.input)) or None
    written = save_model(load_model(best), options.output, external_data=external)
    return [str(path) for path in written]


def write_report(folder: Path, work: Path, result: AutoResult, options: AutoOptions) -> None:
    """``auto.json``, ``plan.json``, ``auto.html`` and both profiles, into ``folder``."""

    from optimizer.loop.auto_report import write_html
    from optimizer.loop.plan import write_plan

    folder.mkdir(exist_ok=True)
    plan = Plan(
        model_path=str(options.input),
        model_sha256=file_sha256(options.input),
        target=result.target,
        target_chosen=result.target_chosen,
        opset=result.opset,
        passes=list(result.kept),
        input_shapes=dict(options.input_shapes),
        pass_options={name: values for name, values in options.pass_options.items() if name in result.kept},
        candidates=[step.to_dict() for step in result.steps],
        rejected=result.rejected,
        profile=f"auto ({result.backend})",
        whitelist_shapes=[shape for edit in result.opp_edits for shape in edit["added"]],
    )
    write_plan(plan, folder / "plan.json")
    write_json_atomic(folder / "auto.json", result.to_dict())
    for name in ("profile_before", "profile_after"):
        if (work / name).is_dir():
            shutil.rmtree(folder / name, ignore_errors=True)
            shutil.copytree(work / name, folder / name)
    write_html(result, folder / "auto.html")
