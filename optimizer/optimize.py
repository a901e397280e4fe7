"""The optimize job: load, convert the opset, run the passes, verify, find culprits, save."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import onnx_ir as ir

from optimizer import __version__
from optimizer.errors import UserError
from optimizer.gc_pause import paused_gc
from optimizer.manager import DROPPED, FAILED, PassManager, PassRecord, cleanup, count_nodes
from optimizer.modelio import (
    check_output,
    clean_stale_staging,
    external_tensors,
    has_external_data,
    load_model,
    load_model_and_skeleton,
    own_data_files,
    save_model,
    staged_save,
)
from optimizer.opset import convert_opset, supported_opsets
from optimizer.pass_options import resolve_settings
from optimizer.passapi import PassContext, model_opset
from optimizer.registry import all_passes, get_pass, opt_in_reason
from optimizer.shapes import fix_input_shapes
from optimizer.targets import DEFAULT_TARGET, edit_pipeline, load_target
from optimizer.verifier import Verification, Verifier, choose_feeds


@dataclass
class OptimizeOptions:
    """Everything ``onnx-opt optimize`` takes."""

    input: Path
    output: Path | None = None
    passes: list[str] | None = None  # None: the target's pipeline; []: no pass; +name / -name: edits of it
    target: str = DEFAULT_TARGET
    opset: int | None = None
    input_shapes: dict[str, list[int]] = field(default_factory=dict)  # fixed in the output, as ATC does
    verify_shapes: dict[str, list[int]] = field(default_factory=dict)  # for verification only
    verify: bool = True
    inputs: Path | None = None
    rtol: float | None = None
    atol: float | None = None
    seed: int = 0
    dry_run: bool = False
    explain: str | None = None  # --explain: the pass whose verdict on every candidate is reported
    in_place: bool = False
    fixed_point: bool = False
    max_rounds: int = 10
    pass_options: dict[str, dict[str, str]] = field(default_factory=dict)  # --set: pass -> option -> value
    allow_approximate: bool = False  # --allow-approximate: opt-in passes named in --passes may run


@dataclass
class OptimizeReport:
    """What the job did: paths, pipeline, per-pass records, verification, timings, notes."""

    input: str
    output: str | None
    target: str
    pipeline: list[str]
    opset_before: int
    opset_after: int
    nodes_before: int
    nodes_after: int
    records: list[PassRecord]
    verification: Verification | None
    timings: dict[str, float]
    notes: list[str]
    written: list[str]
    dry_run: bool
    options: dict[str, dict[str, Any]] = field(default_factory=dict)  # effective options by pass
    expected_differences: list[str] = field(default_factory=list)  # opt-in passes kept despite changed outputs

    def problems(self) -> list[PassRecord]:
        """Passes that raised or were dropped for breaking numerics."""
        return [record for record in self.records if record.status in (FAILED, DROPPED)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the ``--report`` file)."""
        return {
            "tool": f"onnx-opt {__version__}",
            "input": self.input,
            "output": self.output,
            "written": self.written,
            "dry_run": self.dry_run,
            "target": self.target,
            "pipeline": self.pipeline,
            "options": self.options,
            "expected_differences": self.expected_differences,
            "opset": {"before": self.opset_before, "after": self.opset_after},
            "nodes": {"before": self.nodes_before, "after": self.nodes_after},
            "passes": [record.to_dict() for record in self.records],
            "verification": self.verification.to_dict() if self.verification else None,
            "timings": {name: round(seconds, 6) for name, seconds in self.timings.items()},
            "notes": self.notes,
        }


def optimize(options: OptimizeOptions, progress: Callable[[str], None] | None = None) -> OptimizeReport:
    """Run the whole job; raises :class:`UserError` for bad input before writing anything.

    The cyclic garbage collector is paused for the job (:func:`optimizer.gc_pause.paused_gc`).
    onnxruntime runs the original in a thread of its own while the passes run (it releases
    the GIL, and this machine class has two cores); its outputs are awaited before the check.
    """
    with paused_gc(), ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnx-opt-reference") as pool:
        return _optimize(options, progress, pool)


def _optimize(options: OptimizeOptions, progress: Callable[[str], None] | None, pool: Executor) -> OptimizeReport:
    say = progress or (lambda message: None)
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = timings.get(name, 0.0) + now - clock
        clock = now

    output = _output_path(options)
    stale = clean_stale_staging(output.parent) if output is not None and not options.dry_run else []
    low, high = supported_opsets()
    if options.opset is not None and not low <= options.opset <= high:
        raise UserError(f"--opset {options.opset}: onnx-opt converts to opsets {low} to {high}")
    target = load_target(options.target)
    names, edited = edit_pipeline(target, options.passes)
    for name in names:
        reason = opt_in_reason(get_pass(name))
        if reason and not options.allow_approximate:
            raise UserError(f"--passes {name}: {reason}; give --allow-approximate to run it")
    pass_options = resolve_settings(options.pass_options, names)
    say("loading model")
    original, skeleton = load_model_and_skeleton(options.input)
    nodes_before, external, opset_before = count_nodes(original), has_external_data(original), model_opset(original)
    # verification compares with the original as loaded: the run works on copies of it
    start = original.clone() if options.verify and options.input_shapes else original
    notes: list[str] = stale + edited
    fixed = fix_input_shapes(start, options.input_shapes)
    if fixed:
        notes.append(f"fixed input shapes (--input-shape, as ATC fixes them): {'; '.join(fixed)}")
        skeleton = None  # it has the shapes as they were
    if output is not None:
        _check_external_data_clash(options.input, output, original)
    lap("load")
    pending = None
    if options.verify:  # before any work: inputs it cannot make are bad input
        say("running the original with onnxruntime")
        feeds = choose_feeds(start, options.inputs, options.verify_shapes, options.seed)
        # it runs while this thread goes on with the passes: a core is left to them
        pending = pool.submit(Verifier, original, feeds, reference=options.input, rtol=options.rtol, atol=options.atol,
                              threads=spare_cores())
        lap("verify")

    final_opset = options.opset or opset_before
    ctx = PassContext(target, final_opset)
    say("converting opset")
    model = _upgrade(start.clone() if options.verify else start, options, skeleton)  # start: for the culprit search
    del skeleton
    if final_opset < opset_before:
        names = _add_downgrade_passes(names, model, final_opset, options, notes)
    if not target.accepts_opset(final_opset):
        low, high = target.opsets
        notes.append(
            f"target {target.name} accepts opsets {low}-{high}; the model will have opset {final_opset} (see --opset)"
        )
    lap("opset")

    finalize = (lambda m: _downgrade(m, options)) if final_opset < model_opset(model) else None
    manager = PassManager(
        names, ctx, fixed_point=options.fixed_point, max_rounds=options.max_rounds, progress=say, finalize=finalize,
        options=pass_options, explain=options.explain,
    )
    run = manager.run(model, restart=lambda: _upgrade(start.clone() if options.verify else _reloaded(options), options))
    model, records = run.model, run.records
    lap("passes")
    skeleton = run.skeleton  # the checker's, of run.model as it is now
    if options.opset is not None and options.opset < model_opset(model):
        model, skeleton = _downgrade(model, options), None
    lap("opset")

    checked: Verification | None = None
    expected: list[str] = []  # opt-in passes whose difference is reported, not a failure
    written: list[str] = []
    saving = output is not None and not options.dry_run
    if pending is not None:
        say("verifying with onnxruntime")
        verifier = pending.result()  # a UserError when onnxruntime cannot run the original
        if saving:  # onnxruntime reads the staged output: the model is written once
            lap("verify")
            say("saving")
            with staged_save(model, output, external_data=external or None, skeleton=skeleton) as staged:
                lap("save")
                checked = verifier.check(model, staged.model)
                lap("verify")
                if checked.ok:
                    written = [str(path) for path in staged.commit()]
            skeleton = None  # used up by the staged write
        else:
            checked = verifier.check(model)
        if not checked.ok and any(record.changes for record in records):
            say("finding the pass that broke the outputs")
            model, records = _drop_culprits(_upgrade(start.clone(), options), manager, verifier, records, options)
            checked = verifier.check(model)
        registered = all_passes()  # the records hold "cleanup" too
        expected = [r.name for r in records
                    if r.changes and r.status != DROPPED and r.name in registered and opt_in_reason(registered[r.name])]
        if not checked.ok and not expected:
            notes.append(_unexplained_failure(start, verifier, options))
        lap("verify")

    accepted = checked is None or checked.ok or bool(expected)
    if saving and accepted and not written:
        say("saving")
        skeleton = skeleton if model is run.model else None  # not after the culprit search
        written = [str(path) for path in save_model(model, output, external_data=external or None, skeleton=skeleton)]
        lap("save")
    return OptimizeReport(
        input=str(options.input),
        output=str(output) if output else None,
        target=target.name,
        pipeline=manager.names,
        opset_before=opset_before,
        opset_after=model_opset(model),
        nodes_before=nodes_before,
        nodes_after=count_nodes(model),
        records=records,
        verification=checked,
        timings=timings,
        notes=notes,
        written=written,
        dry_run=options.dry_run,
        options=manager.options(),
        expected_differences=expected if checked is not None and not checked.ok else [],
    )


def spare_cores() -> int:
    """The cores this process may use, but one (at least one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores - 1)


def _add_downgrade_passes(
    names: list[str], model: ir.Model, final_opset: int, options: OptimizeOptions, notes: list[str]
) -> list[str]:
    """Add the passes the model needs before it can go down to ``final_opset``; drop what fights them."""
    needed = [n for n, cls in all_passes().items() if n not in names and cls().needed_for_downgrade(model, final_opset)]
    if needed and options.passes == []:
        raise UserError(
            f"the model needs {', '.join(needed)} before it can be converted to opset "
            f"{final_opset}, and --passes none runs no pass"
        )
    for name in needed:
        for other in [n for n in names if n in get_pass(name).conflicts]:
            names.remove(other)
            notes.append(f"left out {other}: it undoes {name}")
        names.append(name)
        notes.append(f"added {name}: the model needs it before conversion to opset {final_opset}")
    return names


def _unexplained_failure(start: ir.Model, verifier: Verifier, options: OptimizeOptions) -> str:
    """Why the outputs still differ once every breaking pass is dropped (the opset conversion?)."""
    if options.opset is not None and options.opset != model_opset(start):
        converted = _downgrade(_upgrade(start.clone(), options), options)
        if not verifier.check(converted).ok:
            return (
                f"the conversion from opset {model_opset(start)} to {options.opset} alone changes the outputs: "
                "nothing was written"
            )
    return "outputs differ even without the breaking passes: nothing was written"


def _drop_culprits(
    model: ir.Model, manager: PassManager, verifier: Verifier, records: list[PassRecord], options: OptimizeOptions
) -> tuple[ir.Model, list[PassRecord]]:
    """Replay the passes that changed something one at a time, each through the same opset
    conversion as the run; drop each that breaks outputs. An opt-in pass (approximate, or a fix)
    is kept with its difference noted, and the passes after it are checked against the model it
    left. Returns the model at the saved opset."""
    replayed = []
    for record in records:
        if record.name == "cleanup":
            continue
        if not record.changes:
            replayed.append(record)
            continue
        single = PassManager(
            [record.name],
            manager.ctx,
            fixed_point=manager.max_rounds > 1,
            max_rounds=manager.max_rounds,
            finalize=manager.finalize,
            options={record.name: manager.passes[record.name].options},
        )
        attempt = single.run(model.clone())  # the model without it stays, in case it is dropped
        result = attempt.records[0]
        result.explained = record.explained
        saved = _downgrade(attempt.model.clone(), options)
        checked = verifier.check(saved)
        opt_in = opt_in_reason(get_pass(record.name))
        if checked.ok:
            model = attempt.model
        elif opt_in:
            model = attempt.model
            result.notes.append(f"{opt_in}; kept (--allow-approximate): {'; '.join(checked.failures())}")
            try:  # the passes after it are checked against what it left, when onnxruntime runs that
                verifier = Verifier(saved, verifier.feeds, rtol=verifier.rtol, atol=verifier.atol)
            except UserError:
                result.notes.append("onnxruntime cannot run its result: later passes are checked against the input")
        else:
            result.status = DROPPED
            result.reason = "broke " + "; ".join(checked.failures())
        replayed.append(result)
    if any(record.changes and record.status != DROPPED for record in replayed):
        replayed.append(cleanup(model))
    return _downgrade(model, options), replayed


def _upgrade(model: ir.Model, options: OptimizeOptions, skeleton: onnx.ModelProto | None = None) -> ir.Model:
    """``model`` (a copy of the caller's, used up) at ``--opset`` when that is higher; ``skeleton``:
    the model's as loaded, when it is unchanged since."""
    if options.opset is not None and options.opset > model_opset(model):
        return convert_opset(model, options.opset, options.input.parent, in_place=True, skeleton=skeleton)
    return model


def _reloaded(options: OptimizeOptions) -> ir.Model:
    """The input model again, its input shapes fixed as the run fixed them."""
    model = load_model(options.input)
    fix_input_shapes(model, options.input_shapes)
    return model


def _downgrade(model: ir.Model, options: OptimizeOptions) -> ir.Model:
    """``model`` (a copy of the caller's, used up) at ``--opset`` when that is lower."""
    if options.opset is not None and options.opset < model_opset(model):
        return convert_opset(model, options.opset, options.input.parent, in_place=True)
    return model


def _output_path(options: OptimizeOptions) -> Path | None:
    """The model to write (None for a dry run without -o), refused before any work when it is the
    input without --in-place, a directory, a device, or in a missing or read-only folder."""
    if options.in_place:
        if options.output is not None and options.output.resolve() != options.input.resolve():
            raise UserError("give either -o OUT or --in-place, not both")
        output = options.input
    elif options.output is None:
        if options.dry_run:
            return None
        raise UserError("no output: give -o OUT (or --in-place to overwrite the input)")
    elif options.output.exists() and options.input.exists() and options.output.resolve() == options.input.resolve():
        raise UserError(f"-o {options.output} is the input; pass --in-place to overwrite it")
    elif options.output.is_dir():
        raise UserError(f"-o {options.output} is a directory; give a file name")
    else:
        output = options.output
    if not options.dry_run:
        check_output(output, "--in-place" if options.in_place else "-o")
    return output


def _check_external_data_clash(source: Path, output: Path, model: ir.Model) -> None:
    """Refuse an output that is the input's external data, or whose save would remove it (the
    data file of an earlier output there, which the input also reads)."""
    data = {Path(os.path.realpath(tensor.path)) for tensor in external_tensors(model)}
    target = Path(os.path.realpath(output))
    if target in data:
        raise UserError(f"-o {output} is the external data of the input {source}; give another file name")
    if target == Path(os.path.realpath(source)):
        return
    for shared in sorted(data & own_data_files(output)):
        raise UserError(
            f"-o {output} would remove {shared}, which the input {source} reads as external data; "
            "give another output name"
        )
