"""What ``onnx-opt batch`` runs: the models of a folder, or of a manifest (YAML or JSON).

A manifest is a list of models, or a mapping with ``models`` (that list) and ``defaults`` (settings
every model takes unless it sets its own). Each model is a path, or a mapping::

    path: vit/model.onnx            # relative to the manifest's folder
    output: vit.onnx                # relative to OUTDIR (default: the path relative to the base)
    target: ascend310p              # a built-in target or a target file
    passes: "+fuse-attention"       # as --passes
    opset: 23
    input_shapes: {x: [1, 3, 224, 224]}   # or "x:1,3,224,224"
    options: {split-avgpool.max_kernel: 127}   # as --set
    verify: true
    soc: Ascend310P3                # then the optimised model is converted with ATC to vit.om
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from optimizer.errors import UserError

KEYS = {"path", "output", "target", "passes", "opset", "input_shapes", "options", "verify", "soc"}
MANIFEST_SUFFIXES = (".json", ".yaml", ".yml")


@dataclass(frozen=True)
class BatchItem:
    """One model of a batch and how to optimise it."""

    source: str  # absolute path of the input model
    output: str  # absolute path of the optimised model
    key: str  # the output relative to OUTDIR: the model's name in the status file and the summary
    target: str = "onnxruntime"
    passes: str | None = None
    opset: int | None = None
    input_shapes: dict[str, list[int]] = field(default_factory=dict)
    options: dict[str, dict[str, str]] = field(default_factory=dict)
    verify: bool = True
    soc: str | None = None  # convert the optimised model with ATC for this chip

    def fingerprint(self) -> str:
        """A digest of the settings and of the input file's size and modification time: a done model
        whose fingerprint changed is done again."""
        stat = Path(self.source).stat()
        settings = {**asdict(self), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def read_items(source: Path, outdir: Path, defaults: dict[str, Any]) -> list[BatchItem]:
    """The models of folder ``source`` (every ``*.onnx`` below it) or of manifest ``source``,
    with ``defaults`` (the command line's settings) under each manifest's own."""
    if source.is_dir():
        out = outdir.resolve()
        models = sorted(p for p in source.rglob("*.onnx")
                        if not _hidden(p.relative_to(source)) and out not in p.resolve().parents)
        if not models:
            raise UserError(f"no .onnx model in {source}")
        entries, base = [{"path": str(p)} for p in models], source
    elif source.suffix.lower() in MANIFEST_SUFFIXES and source.is_file():
        entries, file_defaults = _read_manifest(source)
        defaults = {**defaults, **file_defaults}
        base = source.parent
    else:
        raise UserError(f"{source} is neither a folder of models nor a manifest (.json, .yaml)")
    items = [_item(entry, index, base, outdir, defaults, source) for index, entry in enumerate(entries)]
    seen: dict[str, str] = {}
    for item in items:
        if item.key in seen:
            raise UserError(f"{seen[item.key]} and {item.source} would both be written to {item.output}")
        if Path(item.output).resolve() == Path(item.source).resolve():
            raise UserError(f"{item.source} would be overwritten by its own output: choose another -o folder")
        seen[item.key] = item.source
    return items


def _hidden(relative: Path) -> bool:
    """Whether a path inside the folder lies in a hidden folder or is hidden (staging folders)."""
    return any(part.startswith(".") for part in relative.parts)


def _read_manifest(path: Path) -> tuple[list[Any], dict[str, Any]]:
    """The model entries and the defaults of a manifest file."""
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        raise UserError(f"{path}: not valid {path.suffix[1:].upper()}: {' '.join(str(exc).split())}") from None
    if isinstance(data, list):
        return data, {}
    if isinstance(data, dict) and isinstance(data.get("models"), list):
        unknown = set(data) - {"models", "defaults"}
        if unknown:
            raise UserError(f"{path}: unknown key {sorted(unknown)[0]!r} (a manifest has 'models' and 'defaults')")
        defaults = data.get("defaults") or {}
        if not isinstance(defaults, dict) or set(defaults) - (KEYS - {"path", "output"}):
            raise UserError(f"{path}: 'defaults' must map settings ({', '.join(sorted(KEYS - {'path', 'output'}))})")
        return data["models"], defaults
    raise UserError(f"{path}: a manifest is a list of models or a mapping with a 'models' list")


def _item(entry: Any, index: int, base: Path, outdir: Path, defaults: dict[str, Any], manifest: Path) -> BatchItem:
    """One manifest entry, checked, with the defaults filled in."""
    where = f"{manifest}: model {index + 1}"
    if isinstance(entry, str):
        entry = {"path": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise UserError(f"{where}: give a path, or a mapping with a 'path'")
    unknown = set(entry) - KEYS
    if unknown:
        raise UserError(f"{where}: unknown key {sorted(unknown)[0]!r} (known: {', '.join(sorted(KEYS))})")
    settings = {**defaults, **entry}
    source = (base / settings["path"]).resolve() if not Path(settings["path"]).is_absolute() else Path(settings["path"])
    if not source.is_file():
        raise UserError(f"{where}: {settings['path']} is not a file")
    try:
        relative = source.relative_to(base.resolve())
    except ValueError:
        relative = Path(source.name)
    output = Path(settings.get("output") or relative)
    if output.is_absolute() or ".." in output.parts:
        raise UserError(f"{where}: output {output} must be a path inside the output folder")
    return BatchItem(
        source=str(source),
        output=str((outdir / output).resolve()),
        key=output.as_posix(),
        target=str(settings.get("target") or "onnxruntime"),
        passes=_passes(settings.get("passes"), where),
        opset=_opset(settings.get("opset"), where),
        input_shapes=_shapes(settings.get("input_shapes") or {}, where),
        options=_options(settings.get("options") or {}, where),
        verify=bool(settings.get("verify", True)),
        soc=None if settings.get("soc") is None else str(settings["soc"]),
    )


def _passes(value: Any, where: str) -> str | None:
    """The passes as --passes text, checked."""
    from optimizer.targets import parse_passes

    if value is None:
        return None
    text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    try:
        parse_passes(text)
    except UserError as exc:
        raise UserError(f"{where}: passes: {exc}") from None
    return text


def _opset(value: Any, where: str) -> int | None:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        return value
    raise UserError(f"{where}: opset must be a positive integer, not {value!r}")


def _shapes(value: Any, where: str) -> dict[str, list[int]]:
    """Input shapes as a mapping ``name: [dims]`` or as --input-shape text."""
    if isinstance(value, str):
        from optimizer.shapes import parse_input_shapes

        try:
            return parse_input_shapes(value)
        except UserError as exc:
            raise UserError(f"{where}: input_shapes: {str(exc).removeprefix('--input-shape: ')}") from None
    if isinstance(value, dict) and all(
        isinstance(dims, list) and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in dims)
        for dims in value.values()
    ):
        return {str(name): list(dims) for name, dims in value.items()}
    raise UserError(f"{where}: input_shapes must map input names to lists of dims, or be 'x:1,3,224,224'")


def _options(value: Any, where: str) -> dict[str, dict[str, str]]:
    """Pass options as ``{"pass.option": value}`` or ``{"pass": {"option": value}}``."""
    if not isinstance(value, dict):
        raise UserError(f"{where}: options must map PASS.OPTION to values")
    options: dict[str, dict[str, str]] = {}
    for name, setting in value.items():
        if isinstance(setting, dict):
            for option, option_value in setting.items():
                options.setdefault(str(name), {})[str(option)] = _text(option_value)
        elif "." in str(name):
            pass_name, option = str(name).split(".", 1)
            options.setdefault(pass_name, {})[option] = _text(setting)
        else:
            raise UserError(f"{where}: option {name!r} is not PASS.OPTION")
    return options


def _text(value: Any) -> str:
    """An option value as --set would give it."""
    return str(value).lower() if isinstance(value, bool) else str(value)
