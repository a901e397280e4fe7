"""Opset conversion of every scope of a model, up or down, keeping weights and external data where they are.

Down (:mod:`optimizer.opset_down`): onnx-opt's own adapters in onnx-ir, meaning-preserving,
refusing what the target cannot express. Up (:mod:`optimizer.opset_up`): onnx's version
converter on the weightless graph, plus each model-local function. Every function ends at
the model's opset. The IR version is raised only as far as the target opset needs.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx_ir as ir

from optimizer.errors import UserError
from optimizer.opset_down import convert_down
from optimizer.opset_up import convert_function_up, convert_graph_up
from optimizer.passapi import all_graphs, model_opset
from optimizer.placeholders import Placeholders

# Below opset 7 element-wise ops broadcast only with attributes (and 'consumed_inputs' is
# everywhere); onnxruntime, like ATC, starts at opset 7.
LOWEST_OPSET = 7


def supported_opsets() -> tuple[int, int]:
    """The lowest and highest default-domain opset :func:`convert_opset` converts to.

    The highest is the newest opset of the installed onnx (``onnx.defs.onnx_opset_version()``);
    the lowest is 7, where numpy-style broadcasting starts.
    """
    return LOWEST_OPSET, onnx.defs.onnx_opset_version()


def convert_opset(
    model: ir.Model, opset: int, base_dir: Path, *, in_place: bool = False, skeleton: onnx.ModelProto | None = None
) -> ir.Model:
    """Return ``model`` converted to default-domain ``opset`` (up or down); ``model`` is not changed,
    unless ``in_place`` (then it is worked on and must not be used again: no copy is made).

    Every scope is converted: the main graph, If / Loop / Scan bodies, and model-local
    functions, whose default-domain import ends equal to the model's. External tensors are
    never read: they, and every large tensor, are the same objects in the result (so
    ``base_dir``, where the model's external data lives, is not needed again). The IR version
    is kept unless the new opset needs a newer one. What cannot be converted is a
    :class:`UserError` naming the node and the reason. ``skeleton``: the model's, when the
    caller has it (see :func:`optimizer.shape_inference.infer_value_shapes`); it saves
    serialising the graph for the shape inference an upward conversion needs.
    """
    del base_dir  # external tensors keep the base directory they were loaded with
    low, high = supported_opsets()
    if not low <= opset <= high:
        raise UserError(f"cannot convert to opset {opset}: onnx-opt converts to opsets {low} to {high}")
    current = model_opset(model)
    functions = {key: _function_opset(function, current) for key, function in model.functions.items()}
    if opset == current and all(version == opset for version in functions.values()):
        return model
    work = model if in_place else model.clone()
    down = [(work.graph, current)] if opset < current else []
    down += [(work.functions[key].graph, version) for key, version in functions.items() if version > opset]
    if down:
        convert_down(work, down, opset)
    rising = [key for key, version in functions.items() if version < opset]
    if opset > current or rising:
        placeholders = Placeholders()
        placeholders.swap_out(work)
        for key in rising:
            work.functions[key] = convert_function_up(work.functions[key], functions[key], opset, placeholders)
        if opset > current:
            work = convert_graph_up(work, current, opset, placeholders, skeleton)
        else:
            placeholders.swap_in(all_graphs(work))
    _set_default_opset(work.opset_imports, opset)
    for function in work.functions.values():
        if "" in function.opset_imports or "ai.onnx" in function.opset_imports:
            _set_default_opset(function.opset_imports, opset)
    needed = onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])
    work.ir_version = max(model.ir_version, needed) if opset > current else model.ir_version
    return work


def _function_opset(function: ir.Function, model_opset_version: int) -> int:
    """A function's default-domain opset (the model's when it imports none)."""
    imports = function.opset_imports
    return imports.get("", imports.get("ai.onnx", model_opset_version))


def _set_default_opset(imports: dict[str, int], opset: int) -> None:
    imports.pop("ai.onnx", None)
    imports[""] = opset
