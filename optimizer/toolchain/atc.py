"""ATC: the argument list of an ONNX conversion, and what its console output means.

Success is the line ``ATC run success`` with exit status 0 and a freshly written .om file.
Failure (exit status 255) ends with GE's error-manager blocks::

    E19010: No parser is registered for Op [Conv_52, optype [ai.onnx::11::Convx]].
            Solution: Check the version of the installation package ...
            TraceBack (most recent call last):
            Model parse to graph failed, graph name:tdnnx.[FUNC:ModelParseToGraph][FILE:onnx_parser.cc][LINE:905]

CANN 8 prints ``[PID: n] 2025-03-18-09:02:18.501.341`` after the code. Codes are explained with
GE's error registry (``optimizer/data/ge_error_codes.json``) where the console does not say more.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path

from optimizer.errors import UserError
from optimizer.toolchain.environment import Toolchain
from optimizer.toolchain.process import run_writing_tool
from optimizer.toolchain.versions import AUTO_TUNE_REMOVED

SUCCESS_LINE = "ATC run success"
AUTO_TUNE_GONE = (  # the same advice for our refusal and for ATC's own E10001
    "Auto Tune is not part of CANN 6.0.1 and later: tune with AOE instead "
    "(onnx-opt tune {model} --soc {soc} --tool aoe --job-type 2)"
)
_CODE = re.compile(r"^(?P<code>[EW][0-9A-Z]\d{4}):\s?(?P<rest>.*)$")
_PID_PREFIX = re.compile(r"^\[PID: \d+\] \d{4}-\d{2}-\d{2}-\d{2}:\d{2}:\d{2}\.\d+\.\d+\s+")
_SOLUTION, _CAUSE, _TRACEBACK = "Solution:", "Possible Cause:", "TraceBack"
_NOT_SAID = "N/A"


@dataclass
class AtcMessage:
    """One error or warning of the console: code, message, solution, cause, traceback lines."""

    code: str
    message: str
    solution: str | None = None
    cause: str | None = None
    title: str | None = None
    traceback: list[str] = field(default_factory=list)

    @property
    def is_warning(self) -> bool:
        """W codes are warnings (W11001: a lower-priority kernel was used)."""
        return self.code.startswith("W")

    @property
    def is_auto_tune_deprecated(self) -> bool:
        """ATC's own refusal of --auto_tune_mode (CANN 6.0.1 and later)."""
        text = self.message.lower()
        return self.code == "E10001" and ("auto tune" in text or "auto_tune" in text)


@dataclass
class AtcOptions:
    """One conversion; ``output`` is ATC's --output (the .om name without its suffix)."""

    model: Path
    output: Path
    soc: str
    input_shape: str | None = None
    input_format: str | None = None
    out_nodes: str | None = None
    precision_mode: str | None = None
    auto_tune_mode: str | None = None
    extra: list[str] = field(default_factory=list)

    @property
    def om(self) -> Path:
        """The model ATC writes."""
        return self.output.with_name(self.output.name + ".om")

    @property
    def log(self) -> Path:
        """The console log beside the output."""
        return self.output.with_name(self.output.name + ".atc.log")


@dataclass
class AtcResult:
    """What a run did; ``problem`` is None on success."""

    argv: list[str]
    returncode: int
    log: Path
    om: Path | None
    errors: list[AtcMessage]
    warnings: list[AtcMessage]
    problem: str | None

    @property
    def ok(self) -> bool:
        """Success line, exit status 0 and a written .om."""
        return self.problem is None

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "ok": self.ok,
            "argv": self.argv,
            "returncode": self.returncode,
            "log": str(self.log),
            "om": str(self.om) if self.om else None,
            "problem": self.problem,
            "errors": [asdict(m) for m in self.errors],
            "warnings": [asdict(m) for m in self.warnings],
        }


def atc_args(atc: Path, options: AtcOptions) -> list[str]:
    """ATC's argument list; ``options.extra`` (after ``--``) replaces any flag of the same name."""
    argv = [
        "--framework=5",
        f"--model={options.model}",
        f"--output={options.output}",
        f"--soc_version={options.soc}",
    ]
    for flag, value in (
        ("input_format", options.input_format),
        ("input_shape", options.input_shape),
        ("out_nodes", options.out_nodes),
        ("precision_mode", options.precision_mode),
        ("auto_tune_mode", options.auto_tune_mode),
    ):
        if value:
            argv.append(f"--{flag}={value}")
    replaced = {arg.split("=", 1)[0] for arg in options.extra if arg.startswith("--")}
    return [str(atc)] + [arg for arg in argv if arg.split("=", 1)[0] not in replaced] + list(options.extra)


def model_input_shape(model: Path, given: dict[str, list[int]]) -> str:
    """ATC's --input_shape for ``model``: the given shapes, the model's static shapes for the rest."""
    from optimizer.modelio import load_proto
    from optimizer.shapes import format_input_shapes

    proto = load_proto(model)
    initializers = {tensor.name for tensor in proto.graph.initializer}
    inputs = [value for value in proto.graph.input if value.name not in initializers]
    names = [value.name for value in inputs]
    for name in given:
        if name not in names:
            listed = ", ".join(names)
            raise UserError(f"--input-shape names '{name}', which is not an input of {model} (inputs: {listed})")
    shapes: dict[str, list[int]] = {}
    for value in inputs:
        if value.name in given:
            shapes[value.name] = given[value.name]
            continue
        tensor = value.type.tensor_type
        dims = list(tensor.shape.dim) if tensor.HasField("shape") else None
        if dims is None or not all(d.HasField("dim_value") for d in dims):
            shown = "unknown rank" if dims is None else ",".join(_dim_text(d) for d in dims)
            raise UserError(
                f"{model}: input '{value.name}' has a dynamic shape ({shown}): give --input-shape '{value.name}:...'"
            )
        shapes[value.name] = [d.dim_value for d in dims]
    return format_input_shapes(shapes)


@cache
def error_codes() -> dict[str, dict]:
    """GE's error registry by code (``ErrCode``, ``errTitle``, ``ErrMessage``, ``suggestion``)."""
    text = (resources.files("optimizer") / "data" / "ge_error_codes.json").read_text(encoding="utf-8")
    return {entry["ErrCode"]: entry for entry in json.loads(text)["error_info_list"]}


def parse_output(text: str) -> list[AtcMessage]:
    """Every error and warning block of ATC's console output, in order, completed from the registry."""
    messages: list[AtcMessage] = []
    current: AtcMessage | None = None
    in_traceback = False
    for raw in text.splitlines():
        if m := _CODE.match(raw):
            current = AtcMessage(m.group("code"), _PID_PREFIX.sub("", m.group("rest")).strip())
            messages.append(current)
            in_traceback = False
            continue
        if current is None:
            continue
        if not raw.strip() or not raw[0].isspace():
            current = None
            continue
        line = raw.strip()
        if in_traceback:
            current.traceback.append(line)
        elif line.startswith(_TRACEBACK):
            in_traceback = True
        elif line.startswith(_SOLUTION):
            current.solution = line.removeprefix(_SOLUTION).strip()
        elif line.startswith(_CAUSE):
            current.cause = line.removeprefix(_CAUSE).strip()
        else:
            current.message = f"{current.message} {line}"
    for message in messages:
        _complete(message)
    return messages


def run_atc(
    toolchain: Toolchain,
    options: AtcOptions,
    *,
    timeout: float,
    extra_env: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
    verbose: bool = False,
) -> AtcResult:
    """Run ATC in the output's folder, its console streamed to ``options.log``; judge the result.

    When ATC is stopped (timeout, Ctrl-C, SIGTERM) the .om it had begun to write is removed.
    """
    argv = atc_args(toolchain.tool("atc"), options)
    done, written = run_writing_tool(
        argv, options.output, lambda: _om_stamps(options), env=toolchain.env, timeout=timeout, log=options.log,
        extra_env=extra_env, progress=progress, verbose=verbose,
    )
    messages = parse_output(done.output)
    errors = [m for m in messages if not m.is_warning]
    om = written[0] if written else None
    problem = None
    if done.returncode != 0 or SUCCESS_LINE not in done.output:
        problem = f"atc failed with exit status {done.returncode}"
        if not errors:
            problem += " and no error code"
    elif om is None:
        problem = f"atc printed '{SUCCESS_LINE}' but wrote no {options.om.name}"
    return AtcResult(argv, done.returncode, options.log, om, errors, [m for m in messages if m.is_warning], problem)


def check_auto_tune(toolchain: Toolchain, *, model: str, soc: str) -> None:
    """Refuse --auto_tune_mode before anything runs when the CANN version is 6.0.1 or later."""
    if toolchain.version_at_least(AUTO_TUNE_REMOVED):
        advice = AUTO_TUNE_GONE.format(model=model, soc=soc)
        raise UserError(f"CANN {toolchain.version} (from {toolchain.version_source}): {advice}")


def format_failure(result: AtcResult, *, model: str, soc: str, verbose: bool = False) -> str:
    """The short block printed for a failed run: each error code first, then what to do, then the log."""
    lines: list[str] = []
    for error in result.errors:
        lines.append(f"{error.code}: {error.message}")
        if error.cause:
            lines.append(f"    Possible Cause: {error.cause}")
        if error.solution:
            lines.append(f"    Solution: {error.solution}")
        shown = error.traceback if verbose else error.traceback[:1]
        for step in shown:
            lines.append(f"    TraceBack: {step}")
        if len(error.traceback) > len(shown):
            lines.append(f"    ({len(error.traceback) - len(shown)} more traceback lines in the log; -v shows them)")
        if error.is_auto_tune_deprecated:
            lines.append(f"    Note: {AUTO_TUNE_GONE.format(model=model, soc=soc)}")
    lines.append(f"{result.problem}; full output in {result.log}")
    return "\n".join(lines)


def _complete(message: AtcMessage) -> None:
    entry = error_codes().get(message.code)
    if entry is None:
        return
    message.title = entry.get("errTitle")
    suggestion = entry.get("suggestion") or {}
    if message.solution is None and suggestion.get("Solution", _NOT_SAID) != _NOT_SAID:
        message.solution = suggestion["Solution"]
    if message.cause is None and suggestion.get("Possible Cause", _NOT_SAID) != _NOT_SAID:
        message.cause = suggestion["Possible Cause"]


def _dim_text(dim) -> str:
    return str(dim.dim_value) if dim.HasField("dim_value") else dim.dim_param or "?"


def _om_stamps(options: AtcOptions) -> dict[Path, int]:
    """The .om files ATC may write (``NAME.om``, or ``NAME_<os>_<arch>.om`` for dynamic shapes) and their mtimes."""
    candidates = [options.om, *sorted(options.output.parent.glob(f"{options.output.name}_*.om"))]
    return {path: path.stat().st_mtime_ns for path in candidates if path.is_file()}
