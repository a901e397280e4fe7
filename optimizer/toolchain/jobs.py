"""What the toolchain verbs orchestrate, as functions another verb or a test can call.

- :func:`convert`: optimise (when asked) -> add the TransposeD shapes to the OPP's white list
  (when asked) -> ATC;
- :func:`tune`: AOE after its prelude (the tune bank folder, the --tune_ops_file of a profile's
  hottest ops), or ATC's legacy --auto_tune_mode;
- the steps both share with ``auto --backend ascend``: :func:`input_shape_for`,
  :func:`atc_convert`, :func:`prepare_tune_bank`, :func:`write_tune_ops` and :func:`aoe_tune`.

ATC and AOE run in the output's folder, so every path handed to them is made absolute first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from optimizer.errors import UserError
from optimizer.targets import DEFAULT_TARGET
from optimizer.toolchain.aoe import AoeOptions, AoeResult, run_aoe, tune_ops
from optimizer.toolchain.atc import AtcOptions, AtcResult, check_auto_tune, model_input_shape, run_atc
from optimizer.toolchain.environment import Toolchain, discover
from optimizer.toolchain.process import ToolError

AUTO_TUNE_DEFAULT = "RL,GA"  # both, as the ICNet guide ran it

Progress = Callable[[str], None] | None


@dataclass
class ToolJob:
    """What a conversion and a tuning job share: the model, the chip, the tool's options."""

    model: Path
    soc: str
    output: Path | None = None  # the .om to write (with or without '.om'); default beside the model
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    input_format: str | None = None
    out_nodes: str | None = None
    extra: list[str] = field(default_factory=list)  # after '--': replaces any flag of the same name
    timeout: float = 3600.0
    cann_version: str | None = None


@dataclass
class ConvertJob(ToolJob):
    """``onnx-opt convert``: ATC, optionally after the optimiser and the white-list editor."""

    precision_mode: str | None = None
    optimise: bool = False  # run the optimiser first (target, passes, opset)
    target: str = DEFAULT_TARGET
    passes: list[str] | None = None
    opset: int | None = None
    pass_options: dict[str, dict[str, str]] = field(default_factory=dict)  # --set: pass -> option -> value
    allow_approximate: bool = False  # --allow-approximate: opt-in passes named in --passes may run
    whitelist: bool = False
    opp: Path | None = None  # default: ASCEND_OPP_PATH of set_env.sh


@dataclass
class Converted:
    """What :func:`convert` did; each step None when it did not run."""

    optimised: object | None = None  # optimizer.optimize.OptimizeReport
    atc: AtcResult | None = None
    notes: list[str] = field(default_factory=list)  # lines for the user, in order
    error: str | None = None  # a tool that was stopped (its timeout), one line


@dataclass
class TuneJob(ToolJob):
    """``onnx-opt tune``: AOE (``job_type`` 1 or 2) or ATC's auto_tune (``mode`` RL, GA or RL,GA)."""

    tool: str = "aoe"
    job_type: int | None = None
    mode: str | None = None
    ops_from: Path | None = None  # a profile: AOE tunes only its ``top`` hottest ops
    top: int = 10
    tune_bank: Path | None = None


@dataclass
class Tuned:
    """What :func:`tune` did: the tool's result (None when it was stopped), the auto_tune modes used."""

    tool: str
    result: AoeResult | AtcResult | None = None
    mode: str | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None


def om_name(output: Path | None, model: Path, suffix: str = "") -> Path:
    """The tool's --output: ``output`` without a trailing .om, else the model's name (plus ``suffix``) beside it."""
    if output is None:
        return model.with_name(model.stem + suffix)
    return output.with_suffix("") if output.suffix == ".om" else output


def input_shape_for(model: Path, input_shapes: dict[str, list[int]], extra: list[str] | tuple[str, ...]) -> str | None:
    """The tool's --input_shape: None when given raw in ``extra``, else the given shapes and the model's static ones."""
    if any(arg.split("=", 1)[0] == "--input_shape" for arg in extra):
        return None
    return model_input_shape(model, input_shapes)


def atc_convert(
    toolchain: Toolchain,
    model: Path,
    output: Path,
    *,
    soc: str,
    input_shape: str | None,
    input_format: str | None = None,
    out_nodes: str | None = None,
    precision_mode: str | None = None,
    auto_tune_mode: str | None = None,
    extra: list[str] | tuple[str, ...] = (),
    timeout: float,
    extra_env: dict[str, str] | None = None,
    progress: Progress = None,
    verbose: bool = False,
) -> AtcResult:
    """Convert ``model`` to ``output``.om with ATC; ToolError when it is stopped (timeout)."""
    options = AtcOptions(
        model=model.resolve(),
        output=output.resolve(),
        soc=soc,
        input_shape=input_shape,
        input_format=input_format,
        out_nodes=out_nodes,
        precision_mode=precision_mode,
        auto_tune_mode=auto_tune_mode,
        extra=list(extra),
    )
    return run_atc(toolchain, options, timeout=timeout, extra_env=extra_env, progress=progress, verbose=verbose)


def prepare_tune_bank(bank: Path | None) -> tuple[Path | None, bool]:
    """The tune bank folder, absolute and made when missing (AOE needs it to exist); whether it was made."""
    if bank is None:
        return None, False
    created = not bank.is_dir()
    bank.mkdir(parents=True, exist_ok=True)
    return bank.resolve(), created


def write_tune_ops(profile: Path, top: int, output: Path) -> tuple[Path, list[str]]:
    """Write AOE's --tune_ops_file for the ``top`` hottest AI Core ops of ``profile`` beside ``output``
    (``NAME.tune_ops.json``); its absolute path and the op names (or types) it lists."""
    from profiles.atomic import write_json_atomic

    ops = tune_ops(profile, top)
    path = output.resolve().with_name(output.name + ".tune_ops.json")
    write_json_atomic(path, ops)
    return path, ops.get("tune_ops_name") or ops.get("tune_ops_type") or []


def aoe_tune(
    toolchain: Toolchain,
    model: Path,
    output: Path,
    *,
    soc: str,
    job_type: int,
    input_shape: str | None,
    input_format: str | None = None,
    out_nodes: str | None = None,
    tune_ops_file: Path | None = None,
    tune_bank: Path | None = None,
    extra: list[str] | tuple[str, ...] = (),
    timeout: float,
    progress: Progress = None,
    verbose: bool = False,
) -> AoeResult:
    """Tune ``model`` with AOE into ``output``.om (TUNE_BANK_PATH ``tune_bank`` for AOE alone); ToolError
    when it is stopped (timeout)."""
    options = AoeOptions(
        model=model.resolve(),
        output=output.resolve(),
        job_type=job_type,
        input_shape=input_shape,
        input_format=input_format,
        out_nodes=out_nodes,
        tune_ops_file=tune_ops_file.resolve() if tune_ops_file is not None else None,
        extra=list(extra),
    )
    bank = tune_bank.resolve() if tune_bank is not None else None
    return run_aoe(toolchain, options, soc=soc, tune_bank=bank, timeout=timeout, progress=progress, verbose=verbose)


def convert(job: ConvertJob, *, progress: Progress = None, verbose: bool = False) -> Converted:
    """Optimise ``job.model`` to ``NAME.opt.onnx`` (when ``job.optimise``), add its TransposeD shapes to
    the OPP (when ``job.whitelist``), then convert it with ATC.

    Bad input and missing tools are a :class:`UserError` before anything runs; when the optimiser
    writes nothing, ATC does not run (``atc`` is None and a note says why).
    """
    if not job.model.is_file():
        raise UserError(f"{job.model}: no such file")
    toolchain = discover(job.cann_version)
    toolchain.tool("atc")
    output = _checked_output(om_name(job.output, job.model))
    done = Converted()
    source = job.model
    if job.optimise:
        source = output.with_name(output.name + ".opt.onnx")
        done.optimised = _optimise(job, source, progress)
        if not done.optimised.written:
            done.notes.append("the optimised model was not written: nothing was converted")
            return done
    if job.whitelist:
        opp = job.opp or (Path(toolchain.env["ASCEND_OPP_PATH"]) if toolchain.env.get("ASCEND_OPP_PATH") else None)
        done.notes.append(whitelist_model(source, opp, job.input_shapes))
    try:
        done.atc = atc_convert(
            toolchain, source, output, soc=job.soc, input_shape=input_shape_for(source, job.input_shapes, job.extra),
            input_format=job.input_format, out_nodes=job.out_nodes, precision_mode=job.precision_mode,
            extra=job.extra, timeout=job.timeout, progress=progress, verbose=verbose,
        )
    except ToolError as exc:
        done.error = str(exc)
    return done


def whitelist_model(model: Path, opp: Path | None, input_shapes: dict[str, list[int]]) -> str:
    """Add ``model``'s TransposeD shapes to the OPP's white list (backed up, revertible); what was done."""
    from optimizer import whitelist
    from optimizer.whitelist_shapes import shapes_from_model

    if opp is None:
        raise UserError("--whitelist needs the OPP folder: give --opp OPP_DIR or set ASCEND_OPP_PATH")
    whitelist.transpose_file(opp)
    shapes = shapes_from_model(model, input_shapes)
    if not shapes:
        return "no TransposeD shapes in the model: the white list is unchanged"
    edit = whitelist.add_shapes(opp, shapes)
    if edit.added:
        return f"added {', '.join(map(str, edit.added))} to {edit.path} ('onnx-opt whitelist --revert' undoes it)"
    return f"{edit.path} already lists {', '.join(map(str, edit.present))}"


def tune(job: TuneJob, *, progress: Progress = None, verbose: bool = False) -> Tuned:
    """Tune ``job.model`` with AOE (``job.tool == "aoe"``) or ATC's auto_tune, and write the tuned .om.

    Relative paths (the model, ``-o``, ``--ops-from``, ``--tune-bank``) are taken from the current
    folder, not the tool's. Bad input, a missing tool and auto_tune on CANN 6.0.1 or later are a
    :class:`UserError` before anything runs.
    """
    if not job.model.is_file():
        raise UserError(f"{job.model}: no such file")
    if job.tool == "aoe" and job.job_type not in (1, 2):
        raise UserError("--tool aoe needs --job-type: 1 subgraph tuning, 2 operator tuning (run 1, then 2)")
    toolchain = discover(job.cann_version)
    if job.tool == "auto_tune":
        check_auto_tune(toolchain, model=str(job.model), soc=job.soc)
    toolchain.tool("aoe" if job.tool == "aoe" else "atc")
    output = _checked_output(om_name(job.output, job.model, f"_{job.tool}")).resolve()
    input_shape = input_shape_for(job.model, job.input_shapes, job.extra)
    done = Tuned(job.tool)
    bank, created = prepare_tune_bank(job.tune_bank)
    if created:
        done.notes.append(f"created tune bank folder {job.tune_bank}")
    common = dict(input_shape=input_shape, input_format=job.input_format, out_nodes=job.out_nodes, extra=job.extra,
                  timeout=job.timeout, progress=progress, verbose=verbose)
    try:
        if job.tool == "aoe":
            ops_file = None
            if job.ops_from is not None:
                ops_file, names = write_tune_ops(job.ops_from, job.top, output)
                done.notes.append(f"wrote {ops_file}: AOE tunes {', '.join(names)}")
            done.result = aoe_tune(toolchain, job.model, output, soc=job.soc, job_type=job.job_type,
                                   tune_ops_file=ops_file, tune_bank=bank, **common)
        else:
            done.mode = job.mode or AUTO_TUNE_DEFAULT
            extra_env = {"TUNE_BANK_PATH": str(bank)} if bank is not None else None
            done.result = atc_convert(toolchain, job.model, output, soc=job.soc, auto_tune_mode=done.mode,
                                      extra_env=extra_env, **common)
    except ToolError as exc:
        done.error = str(exc)
    return done


def _checked_output(output: Path) -> Path:
    if not output.parent.is_dir():
        raise UserError(f"-o {output}: folder {output.parent} does not exist")
    return output


def _optimise(job: ConvertJob, destination: Path, progress: Progress):
    from optimizer.optimize import OptimizeOptions, optimize

    options = OptimizeOptions(input=job.model, output=destination, passes=job.passes, target=job.target,
                              opset=job.opset, input_shapes=job.input_shapes, pass_options=job.pass_options,
                              allow_approximate=job.allow_approximate)
    return optimize(options, progress)
