"""Opset conversion with onnx's version converter, keeping external weights where they are."""

from __future__ import annotations

from pathlib import Path

import onnx
import onnx_ir as ir

from optimizer.errors import UserError, error_line
from optimizer.passapi import model_opset


def convert_opset(model: ir.Model, opset: int, base_dir: Path) -> ir.Model:
    """Return ``model`` converted to default-domain ``opset`` (up or down).

    The IR version is kept unless the new opset needs a newer one. External tensors stay
    references into ``base_dir``. What onnx cannot convert is a :class:`UserError`.
    """
    current = model_opset(model)
    if opset == current:
        return model
    try:
        converted = onnx.version_converter.convert_version(ir.serde.serialize_model(model), opset)
    except Exception as exc:
        reason = error_line(exc, last=True)
        raise UserError(f"onnx cannot convert the model from opset {current} to {opset}: {reason}") from None
    needed = onnx.helper.find_min_ir_version_for([onnx.helper.make_opsetid("", opset)])
    converted.ir_version = max(model.ir_version, needed)
    result = ir.serde.deserialize_model(converted)
    ir.external_data.set_base_dir(result.graph, base_dir)
    return result
