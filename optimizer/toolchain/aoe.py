"""AOE: the argument list of a tuning job, its --tune_ops_file, and what the job left behind.

Success is ``Aoe process finished`` (or, CANN 6.x, ``<task> process finished. Performance improved
by xx%``) with exit status 0. The tuned model is ``--output``.om, or else
``aoe_workspace/<model>_<ts>/tunespace/result/<model>_<ts>_tune*.om`` in the working folder, beside
``aoe_result_opat_<ts>_<pid>.json`` / ``aoe_result_sgat_...json`` (baseline, result, improvement,
operators changed in the tune bank).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from optimizer.errors import UserError
from optimizer.toolchain.environment import Toolchain
from optimizer.toolchain.process import run_writing_tool

AOE_CORES = frozenset({"AI_CORE", "AI_VECTOR_CORE", "MIX_AIC", "MIX_AIV"})
_FINISHED = re.compile(r"Aoe process finished|process finished\. Performance improved by\s*(?P<pct>[-+\d.]+)%")
_BASELINE, _RESULT = "model_baseline_performance(ms)", "model_result_performance(ms)"
_BEFORE, _AFTER = "performance_before_tune(us)", "performance_after_tune(us)"


@dataclass
class AoeOptions:
    """One tuning job; ``output`` is AOE's --output (the .om name without its suffix)."""

    model: Path
    output: Path
    job_type: int
    input_shape: str | None = None
    input_format: str | None = None
    out_nodes: str | None = None
    tune_ops_file: Path | None = None
    extra: list[str] = field(default_factory=list)

    @property
    def om(self) -> Path:
        """The tuned model when AOE honours --output."""
        return self.output.with_name(self.output.name + ".om")

    @property
    def log(self) -> Path:
        """The console log beside the output."""
        return self.output.with_name(self.output.name + ".aoe.log")


@dataclass
class TunedOp:
    """An operator whose tune-bank entry the job added or updated."""

    name: str | None
    op_type: str | None
    before_us: float | None
    after_us: float | None
    improvement: str | None


@dataclass
class AoeReport:
    """One ``aoe_result_*.json``: the model's time before and after, and the operators changed."""

    path: Path
    kind: str
    baseline_ms: float | None
    result_ms: float | None
    improvement: str | None
    status: str | None
    modified: list[TunedOp]
    repo_summary: dict


@dataclass
class AoeResult:
    """What a job did; ``problem`` is None on success."""

    argv: list[str]
    returncode: int
    log: Path
    om: Path | None
    improvement: str | None
    reports: list[AoeReport]
    tune_bank: str
    problem: str | None

    @property
    def ok(self) -> bool:
        """Finished line, exit status 0 and a tuned .om."""
        return self.problem is None

    def to_dict(self) -> dict:
        """JSON-ready form."""
        data = asdict(self)
        data.update(ok=self.ok, log=str(self.log), om=str(self.om) if self.om else None)
        for report in data["reports"]:
            report["path"] = str(report["path"])
        return data


def aoe_args(aoe: Path, options: AoeOptions) -> list[str]:
    """AOE's argument list; ``options.extra`` (after ``--``) replaces any flag of the same name."""
    argv = [
        "--framework=5",
        f"--model={options.model}",
        f"--job_type={options.job_type}",
        f"--output={options.output}",
    ]
    for flag, value in (
        ("input_format", options.input_format),
        ("input_shape", options.input_shape),
        ("out_nodes", options.out_nodes),
        ("tune_ops_file", options.tune_ops_file),
    ):
        if value:
            argv.append(f"--{flag}={value}")
    replaced = {arg.split("=", 1)[0] for arg in options.extra if arg.startswith("--")}
    return [str(aoe)] + [arg for arg in argv if arg.split("=", 1)[0] not in replaced] + list(options.extra)


def tune_ops(profile_path: Path, top: int) -> dict[str, list[str]]:
    """The --tune_ops_file content: the ``top`` hottest AI Core op names of a profile (op types when it
    has no per-op rows). AI CPU, DSA and communication kernels are left out: AOE does not tune them."""
    from profiles.read import read_profile

    profile = read_profile(profile_path)
    if profile.ops:
        key, rows = "tune_ops_name", [(op.name, op.core_type, op.duration_us) for op in profile.ops]
    else:
        key, rows = "tune_ops_type", [(s.op_type, s.core_type, s.total_us) for s in profile.stats]
    times: dict[str, float] = {}
    for name, core, us in rows:
        if name and (core is None or core.upper().replace(" ", "_") in AOE_CORES):
            times[name] = times.get(name, 0.0) + us
    if not times:
        raise UserError(f"{profile_path}: holds no AI Core operators to tune (an op_summary or op_statistic is needed)")
    return {key: sorted(times, key=lambda name: (-times[name], name))[:top]}


def tune_bank_location(env: dict[str, str], *, job_type: int, soc: str) -> str:
    """Where AOE keeps what it learnt: TUNE_BANK_PATH, else ASCEND_CACHE_PATH/aoe_data, else the default."""
    if env.get("TUNE_BANK_PATH"):
        return env["TUNE_BANK_PATH"]
    if env.get("ASCEND_CACHE_PATH"):
        return f"{env['ASCEND_CACHE_PATH']}/aoe_data"
    kind = "graph" if job_type == 1 else "op"
    return f"{env.get('HOME', '~')}/Ascend/latest/data/aoe/custom/{kind}/{soc}"


def run_aoe(
    toolchain: Toolchain,
    options: AoeOptions,
    *,
    soc: str,
    tune_bank: Path | None,
    timeout: float,
    progress: Callable[[str], None] | None = None,
    verbose: bool = False,
) -> AoeResult:
    """Run AOE in the output's folder (TUNE_BANK_PATH set for it alone); find its model and result files.

    When AOE is stopped (timeout, Ctrl-C, SIGTERM) the models and result files it had begun are removed.
    """
    argv = aoe_args(toolchain.tool("aoe"), options)
    extra_env = {"TUNE_BANK_PATH": str(tune_bank)} if tune_bank is not None else {}
    done, new = run_writing_tool(
        argv, options.output, lambda: _left_behind(options), env=toolchain.env, timeout=timeout, log=options.log,
        extra_env=extra_env, progress=progress, verbose=verbose,
    )
    finished = _FINISHED.search(done.output)
    om = options.om if options.om in new else next((p for p in reversed(new) if p.suffix == ".om"), None)
    reports = [read_report(path) for path in new if path.suffix == ".json"]
    problem = None
    if done.returncode != 0:
        problem = f"aoe failed with exit status {done.returncode}"
    elif finished is None:
        problem = "aoe exited without its 'Aoe process finished' line"
    elif om is None:
        problem = f"aoe finished but wrote neither {options.om.name} nor a tuned .om under aoe_workspace/"
    return AoeResult(
        argv=argv,
        returncode=done.returncode,
        log=options.log,
        om=om,
        improvement=finished.group("pct") + "%" if finished and finished.group("pct") else None,
        reports=reports,
        tune_bank=tune_bank_location({**toolchain.env, **extra_env}, job_type=options.job_type, soc=soc),
        problem=problem,
    )


def read_report(path: Path) -> AoeReport:
    """Read an ``aoe_result_*.json`` (a list of ``{"basic": ...}``, ``{"OPAT": ...}`` / ``{"SGAT": ...}``)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable AOE result file ({exc})") from None
    entries = data if isinstance(data, list) else [data]
    for entry in entries:
        for kind, section in entry.items() if isinstance(entry, dict) else ():
            if isinstance(section, dict) and _BASELINE in section:
                return AoeReport(
                    path=path,
                    kind=kind,
                    baseline_ms=_number(section.get(_BASELINE)),
                    result_ms=_number(section.get(_RESULT)),
                    improvement=section.get("model_performance_improvement"),
                    status=next((v for k, v in section.items() if k.endswith("_tuning_result")), None),
                    modified=_modified(section.get("repo_modified_operators")),
                    repo_summary=section.get("repo_summary") or {},
                )
    raise UserError(f"{path}: no tuning result ({_BASELINE}) in this AOE result file")


def _modified(value) -> list[TunedOp]:
    """Both layouts: a list of ops with ``tune_performance: {<name>: {...}}`` (6.3) or
    ``{"add_repo_operators": [flat ops], ...}`` (6.2)."""
    groups = value.values() if isinstance(value, dict) else [value or []]
    ops = []
    for group in groups:
        for item in group if isinstance(group, list) else []:
            perf = item
            if _AFTER not in item:
                perf = next((v for v in (item.get("tune_performance") or {}).values() if isinstance(v, dict)), {})
            ops.append(
                TunedOp(
                    name=item.get("op_name"),
                    op_type=item.get("op_type"),
                    before_us=_number(perf.get(_BEFORE)),
                    after_us=_number(perf.get(_AFTER)),
                    improvement=perf.get("performance_improvement"),
                )
            )
    return ops


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _left_behind(options: AoeOptions) -> dict[Path, int]:
    """The files a job may write in its folder, and their mtimes: --output.om, tuned models, result files."""
    folder = options.output.parent
    paths = [
        options.om,
        *sorted(folder.glob("aoe_workspace/*/tunespace/result/*.om")),
        *sorted(folder.glob("aoe_result_*.json")),
    ]
    return {path: path.stat().st_mtime_ns for path in paths if path.is_file()}
