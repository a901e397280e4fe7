"""``auto --backend ascend``: the loop of :mod:`optimizer.loop.auto`, timed on the NPU.

1. the *base* (``optimize --passes none``) is converted with ATC (``--soc``, else the target's
   ``soc_version``) and profiled on the NPU (msprof + ais_bench); the profile chooses the
   candidates (:func:`optimizer.loop.candidates.choose_candidates`);
2. a pass candidate is applied and verified with onnxruntime as on the other backend, converted,
   and its ``.om`` timed against the current best ``.om`` by the A/B engine with
   :class:`optimizer.loop.timing.AisBenchRunners` (NPU compute time); kept on ``faster``;
3. the ``transpose-whitelist`` candidate edits the OPP (ATC reads ``white_list_shape`` at each
   conversion) with :mod:`optimizer.whitelist`, which backs the file up first; the current best
   model is converted again and timed; the edit is kept only on ``faster`` and otherwise undone
   byte for byte (:class:`OppEdits`), as it is when anything (an error, Ctrl-C) stops the run
   or when the result as a whole is not faster than the base;
4. the result is timed against the base (never slower, as on onnxruntime); with ``tune="aoe"``,
   AOE's operator tuning (job type 2) then runs on the kept model's hottest AI Core ops (read
   from a profile of its ``.om``), and the tuned ``.om`` is kept only when faster.

The output is the ONNX model (as on onnxruntime) and the kept ``.om`` beside it (``OUT`` with the
suffix ``.om``); the report says which ``.om`` was kept, the OPP edits kept and AOE's outcome.
"""

from __future__ import annotations

import platform
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from optimizer import whitelist
from optimizer.errors import UserError
from optimizer.loop.auto import (
    FASTER,
    MIN_STEP_BUDGET_S,
    AutoOptions,
    AutoResult,
    Step,
    apply_candidate,
    check_paths,
    new_step,
    optimize_options,
    write_output,
    write_report,
)
from optimizer.loop.candidates import Candidate, choose_candidates
from optimizer.loop.timing import MAX_ROUNDS, ABResult, AisBenchRunners, time_ab
from optimizer.modelio import load_model
from optimizer.optimize import optimize
from optimizer.passapi import model_opset
from optimizer.targets import load_target, target_names
from optimizer.toolchain.jobs import aoe_tune, atc_convert, input_shape_for, prepare_tune_bank, write_tune_ops
from optimizer.toolchain.process import ToolError
from optimizer.whitelist_shapes import WHITELIST_PASS

RUN_TIMEOUT_S = 600.0  # one ais_bench run of ``loop`` inferences
AOE_STEP = "aoe (operator tuning)"


class ConversionError(ToolError):
    """ATC could not convert a model: one line, and ATC's whole failure block in ``block``."""

    def __init__(self, line: str, block: str) -> None:
        super().__init__(line)
        self.block = block


@dataclass(frozen=True)
class Built:
    """A model of the loop: its ONNX file, the ``.om`` made of it, and what made that ``.om``."""

    onnx: Path
    om: Path
    how: str = "the result's, converted by ATC"


class OppEdits:
    """The OPP white-list edits of one run, each made with the editor (which backs the file up first).

    :meth:`undo` puts the file back to the bytes it had before an edit: through the editor's own
    revert (which also removes its backup) when that backup is this run's, else by writing those
    bytes back and leaving an older backup alone. Used as a context manager, every edit is undone
    when the block raises (an error, KeyboardInterrupt).
    """

    def __init__(self, opp: Path | None) -> None:
        self.opp = opp
        self.original: bytes | None = None  # the file before this run's first edit
        self.had_backup = False
        self.kept: list[dict] = []

    def __enter__(self) -> OppEdits:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is not None:
            self.undo_all()

    def add(self, shapes: list[list[int]]) -> tuple[whitelist.WhitelistEdit, bytes]:
        """Add ``shapes`` to the white list; the edit and the file's bytes before it."""
        if self.opp is None:
            raise UserError("no OPP folder: give --opp OPP_DIR or set ASCEND_OPP_PATH (set_env.sh sets it)")
        path = whitelist.transpose_file(self.opp)
        before = path.read_bytes()
        if self.original is None:
            self.original, self.had_backup = before, _backup(path).exists()
        return whitelist.add_shapes(self.opp, shapes), before

    def undo(self, before: bytes) -> None:
        """Put the file back to ``before``, byte for byte."""
        path = whitelist.transpose_file(self.opp)
        if before == self.original and not self.had_backup and _backup(path).is_file():
            whitelist.revert(self.opp)
        elif path.read_bytes() != before:
            _write_bytes(path, before)
        if path.read_bytes() != before:
            raise RuntimeError(f"{path}: could not restore its previous content")

    def undo_all(self) -> None:
        """Undo every edit of the run (kept ones too)."""
        if self.original is not None:
            self.undo(self.original)
        self.kept = []


@dataclass
class _Run:
    """What every step of one run needs."""

    options: AutoOptions
    toolchain: object  # optimizer.toolchain.environment.Toolchain
    soc: str
    work: Path
    runners: object  # a runner factory for .om files
    say: Callable[[str], None]


def run_auto_ascend(options: AutoOptions, progress: Callable[[str], None] | None = None) -> AutoResult:
    """Run the loop on the NPU; writes ``options.output``, its ``.om`` and the report only once it is done.

    Raises :class:`UserError` for bad input or a missing tool (before any work) and
    :class:`ToolError` when ATC cannot convert the base model or a tool fails outside a step.
    """
    say = progress or (lambda message: None)
    check_paths(options)
    if options.output.suffix == ".om" or options.output.with_suffix(".om").is_dir():
        raise UserError(f"-o {options.output}: give an ONNX file name whose .om beside it can be written too")
    toolchain, soc, target = _setup(options)
    opp = options.opp or (Path(toolchain.env["ASCEND_OPP_PATH"]) if toolchain.env.get("ASCEND_OPP_PATH") else None)
    with tempfile.TemporaryDirectory(prefix="onnx-opt-auto-") as folder, OppEdits(opp) as edits:
        work = Path(folder)
        runners = options.runner_factory or AisBenchRunners(
            toolchain, work / "ais_bench", device=options.device, loop=options.loop,
            timeout=min(options.timeout_s, RUN_TIMEOUT_S), verbose=options.verbose,
        )
        run = _Run(options, toolchain, soc, work, runners, say)
        say("writing the base model (as optimize --passes none writes it)")
        base_onnx = work / "base.onnx"
        optimize(optimize_options(options, options.input, base_onnx, passes=[], verify=False))
        base = Built(base_onnx, _convert_or_raise(run, base_onnx, work / "base"), "the input's, converted by ATC")
        say("profiling the base model on the NPU")
        before = _profile(run, base.om, work / "profile_before")
        say("choosing candidates from the profile")
        candidates, rejected, choice = choose_candidates(before, base.onnx, target, pass_options=options.pass_options)
        result = AutoResult(str(options.input), str(options.output), choice.name, choice.how, [], None, [],
                            None, rejected, [], backend="ascend")
        if not candidates:
            result.notes.append("no pass changes a node of a hot op type: nothing to try")
        best, spent = base, 0.0
        for index, candidate in enumerate(candidates):
            budget = max(MIN_STEP_BUDGET_S, (options.budget_s - spent) / (len(candidates) - index + 1))
            started = options.monotonic()
            if candidate.pass_name == WHITELIST_PASS:
                step, best = _try_whitelist(run, candidate, best, index, budget, edits)
            else:
                step, best = _try_pass(run, candidate, best, index, budget, choice.name)
            spent += options.monotonic() - started
            result.steps.append(step)
            if step.kept:
                result.kept.append(candidate.pass_name)
        if result.kept:
            say("timing the result against the input")
            result.final = _time(run, base.om, best.om, max(MIN_STEP_BUDGET_S, options.budget_s - spent),
                                 ("input", "result"))
            if result.final.verdict != FASTER:
                result.notes.append(f"the result is not faster than the input as a whole ({result.final.reason}); "
                                    "writing the input's graph" + ("; the OPP edits were undone" if edits.kept else ""))
                best, result.kept = base, []
                edits.undo_all()
        if not result.kept:
            result.notes.append("nothing paid: the output is the input's graph, as optimize --passes none writes it")
        profiled = {base.om: work / "profile_before"}
        if options.tune == "aoe":
            step, best, result.aoe = _try_aoe(run, best, profiled, max(MIN_STEP_BUDGET_S, options.budget_s - spent))
            result.steps.append(step)
        result.opset = model_opset(load_model(best.onnx)) if best.onnx != base.onnx else None
        result.opp_edits = list(edits.kept)
        if options.report is not None:
            say("profiling the result")
            result.profile_before = before
            result.profile_after = _profile_after(run, best.om, profiled, before)
        say("writing")
        result.written = write_output(best.onnx, base.onnx, options)
        om = options.output.with_suffix(".om")
        _copy(best.om, om)
        result.written.append(str(om))
        result.om = str(om)
        result.notes.append(f"the .om is {best.how}")
        if options.report is not None:
            write_report(options.report, work, result, options)
    return result


def _setup(options: AutoOptions):
    """The toolchain with every tool the run needs, the SoC and the target; a UserError before any work."""
    from optimizer.toolchain import inference
    from optimizer.toolchain.environment import discover

    if options.tune not in (None, "aoe"):
        raise UserError(f"--tune {options.tune}: only aoe is supported")
    toolchain = discover(options.cann_version)
    for tool in ("atc", "msprof", *(("aoe",) if options.tune == "aoe" else ())):
        toolchain.tool(tool)
    if not inference.has_ais_bench(toolchain) and inference.benchmark_tool(toolchain) is None:
        raise UserError(inference.MISSING.format(arch=platform.machine()))
    target = options.target
    soc = options.soc or (load_target(target).soc_version if target else None)
    if soc is None:
        raise UserError("--backend ascend needs the chip: give --soc (e.g. Ascend310P3) or an Ascend --target")
    if target is None:
        target = next((name for name in target_names() if load_target(name).soc_version == soc), None)
    return toolchain, soc, target


def _try_pass(run: _Run, candidate: Candidate, best: Built, index: int, budget: float,
              target: str) -> tuple[Step, Built]:
    """Apply, verify, convert and time one pass on the current best; the step and the new best."""
    out = run.work / f"step{index}.onnx"
    step = apply_candidate(candidate, best.onnx, out, run.options, target, run.say)
    if step.reason:
        return step, best
    try:
        om = _convert(run, out, run.work / f"step{index}")
        run.say(f"{candidate.pass_name}: timing against the current best on the NPU")
        kept = step.judge(_time(run, best.om, om, budget, ("current", candidate.pass_name)))
    except ToolError as exc:
        step.reason = str(exc)
        return step, best
    return step, Built(out, om) if kept else best


def _try_whitelist(run: _Run, candidate: Candidate, best: Built, index: int, budget: float,
                   edits: OppEdits) -> tuple[Step, Built]:
    """Add the TransposeD shapes to the OPP, convert the current best again, time it; undo unless faster."""
    step = new_step(candidate)
    if not candidate.whitelist_shapes:
        step.reason = "no static TransposeD input shape to list"
        return step, best
    try:
        edit, before = edits.add(candidate.whitelist_shapes)
    except UserError as exc:
        step.reason = f"refused: {exc}"
        return step, best
    if not edit.added:
        step.reason = f"the OPP already lists {', '.join(map(str, edit.present))}: nothing to try"
        return step, best
    shapes = ", ".join(map(str, edit.added))
    run.say(f"{candidate.pass_name}: added {shapes} to {edit.path}; converting the current best again")
    try:
        om = _convert(run, best.onnx, run.work / f"step{index}_whitelist")
        run.say(f"{candidate.pass_name}: timing against the current best on the NPU")
        step.judge(_time(run, best.om, om, budget, ("current", candidate.pass_name)))
    except ToolError as exc:
        step.reason = str(exc)
    if step.kept:
        edits.kept.append({"path": str(edit.path), "added": edit.added, "backup": str(edit.backup)})
        step.reason += f"; kept {shapes} in {edit.path} ('onnx-opt whitelist --revert' undoes it)"
        return step, Built(best.onnx, om, "the result's, converted by ATC with the OPP edit")
    edits.undo(before)
    step.reason += f"; {edit.path} restored byte for byte"
    return step, best


def _try_aoe(run: _Run, best: Built, profiled: dict[Path, Path], budget: float) -> tuple[Step, Built, dict]:
    """AOE operator tuning of the kept model's hottest AI Core ops, timed against the kept .om.

    The step, the new best (the tuned .om only when faster) and ``auto.json``'s ``aoe`` entry.
    """
    options = run.options
    step = Step(AOE_STEP, None, 0.0, [], None, False, None, None, "")
    summary: dict = {"job_type": 2, "kept": False}
    if best.om not in profiled:
        run.say("profiling the kept model for AOE")
        _profile(run, best.om, run.work / "profile_kept")
        profiled[best.om] = run.work / "profile_kept"
    output = run.work / "aoe" / "tuned"
    output.parent.mkdir()
    try:
        ops_file, step.hot_op_types = write_tune_ops(profiled[best.om], options.tune_top, output)
    except UserError as exc:
        step.reason = summary["reason"] = f"not run: {exc}"
        return step, best, summary
    summary["tune_ops"] = step.hot_op_types
    input_shape = input_shape_for(best.onnx, {}, options.atc_args)
    bank, _ = prepare_tune_bank(options.tune_bank)
    run.say("aoe: operator tuning of " + ", ".join(step.hot_op_types))
    try:
        done = aoe_tune(run.toolchain, best.onnx, output, soc=run.soc, job_type=2, input_shape=input_shape,
                        input_format=options.input_format, out_nodes=options.out_nodes, tune_ops_file=ops_file,
                        tune_bank=bank, timeout=options.tune_timeout_s, progress=run.say, verbose=options.verbose)
        summary.update(tune_bank=done.tune_bank, improvement=done.improvement,
                       reports=[{"kind": r.kind, "baseline_ms": r.baseline_ms, "result_ms": r.result_ms,
                                 "improvement": r.improvement, "modified": len(r.modified)} for r in done.reports])
        if not done.ok:
            step.reason = summary["reason"] = done.problem
            return step, best, summary
        run.say("aoe: timing the tuned model against the current best on the NPU")
        kept = step.judge(_time(run, best.om, done.om, budget, ("current", "aoe")))
    except ToolError as exc:
        step.reason = summary["reason"] = str(exc)
        return step, best, summary
    step.reason += f"; AOE's tune bank ({done.tune_bank}) keeps what it learnt either way"
    summary.update(kept=kept, verdict=step.verdict, ratio=step.ratio, reason=step.reason)
    return step, Built(best.onnx, done.om, "AOE's tuned model of the result") if kept else best, summary


def _convert(run: _Run, model: Path, output: Path) -> Path:
    """Convert ``model`` with ATC to ``output``.om; a ToolError saying why when ATC fails."""
    from optimizer.toolchain.atc import format_failure

    options = run.options
    input_shape = input_shape_for(model, {}, options.atc_args)
    run.say(f"converting {model.name} with ATC for {run.soc}")
    done = atc_convert(run.toolchain, model, output, soc=run.soc, input_shape=input_shape,
                       input_format=options.input_format, out_nodes=options.out_nodes, extra=options.atc_args,
                       timeout=options.timeout_s, progress=run.say, verbose=options.verbose)
    if not done.ok:  # the log is in the work folder, which goes: say what failed without pointing at it
        first = done.errors[0] if done.errors else None
        detail = f"{first.code}: {first.message}; " if first else ""
        block = format_failure(done, model=str(model), soc=run.soc, verbose=options.verbose).splitlines()[:-1]
        raise ConversionError(f"ATC failed: {detail}{done.problem}", "\n".join([*block, done.problem]))
    return done.om


def _convert_or_raise(run: _Run, model: Path, output: Path) -> Path:
    """Convert the base model; a ToolError with ATC's whole failure block when it cannot be converted."""
    try:
        return _convert(run, model, output)
    except ConversionError as exc:
        raise ToolError(f"{exc.block}\nthe input cannot be converted for {run.soc}; 'onnx-opt convert "
                        f"{run.options.input} --soc {run.soc}' keeps ATC's log") from None


def _time(run: _Run, a: Path, b: Path, budget: float, labels: tuple[str, str]) -> ABResult:
    options = run.options
    return time_ab(a, b, None, runner_factory=run.runners, min_gain=options.min_gain, budget_s=budget,
                   rounds=options.rounds, max_rounds=max(MAX_ROUNDS, options.rounds), seed=options.seed,
                   labels=labels, warmup=1, monotonic=options.monotonic)


def _profile(run: _Run, om: Path, folder: Path):
    """Profile ``om`` on the NPU into ``folder``; the profile read back."""
    from optimizer.toolchain.npu_profile import profile_om
    from profiles.read import read_profile

    options = run.options
    profile_om(om, folder, device=options.device, runs=options.profile_runs, timeout=options.timeout_s,
               toolchain=run.toolchain, progress=run.say, verbose=options.verbose)
    return read_profile(folder)


def _profile_after(run: _Run, om: Path, profiled: dict[Path, Path], before):
    """The profile of the kept .om for the report, in ``profile_after`` (the base's own when nothing was kept)."""
    from profiles.read import read_profile

    after = run.work / "profile_after"
    if profiled.get(om) == run.work / "profile_before":
        return before
    if om in profiled:
        shutil.copytree(profiled[om], after)
        return read_profile(after)
    return _profile(run, om, after)


def _backup(path: Path) -> Path:
    return path.with_name(path.name + whitelist.BACKUP_SUFFIX)


def _write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` over ``path`` atomically, keeping its mode (the one helper)."""
    from profiles.atomic import write_atomic

    write_atomic(path, data)


def _copy(source: Path, destination: Path) -> None:
    """Copy ``source`` to ``destination`` atomically (the one helper)."""
    from profiles.atomic import copy_atomic

    copy_atomic(source, destination)
