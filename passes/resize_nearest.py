"""resize-nearest: Resize (or Upsample) in linear or cubic mode becomes nearest. APPROXIMATE.

Replaces msit's KnowledgeResizeModeToNearest, which was applied like any other knowledge. The
interpolation changes, so the outputs change by design: the pass is declared approximate, never
enters a target's pipeline, ``auto`` or ``plan``, and runs only when named with
``--passes resize-nearest --allow-approximate``; verification then reports the difference
instead of dropping it. Use it where a CANN version lacks (or mis-computes) linear or cubic
Resize and nearest is acceptable for the model's accuracy.

Cases (anything else is no candidate):

1. ``Resize`` (opset 10 and later) with ``mode`` ``linear`` or ``cubic``: ``mode`` becomes
   ``nearest`` with ``nearest_mode`` from the option (opset 11 on, unless the node sets one;
   opset 10 rounds one way only). Attributes that
   only the old modes read are dropped: ``cubic_coeff_a``, ``exclude_outside``, ``antialias``
   (opset 18). ``coordinate_transformation_mode`` is kept: nearest honours it, except
   ``tf_crop_and_resize``, which is kept too (it is defined for every mode).
2. ``Upsample`` (opsets 7 to 9) with ``mode`` ``linear`` or ``bilinear``: ``mode`` becomes
   ``nearest``.

msit also named an ``area`` mode, which ONNX does not have: there is nothing to match.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import onnx_ir as ir

from optimizer.passapi import Change, NodePass, model_opset, node_label, register_pass

SMOOTH = {"Resize": ("linear", "cubic"), "Upsample": ("linear", "bilinear")}
DROPPED = ("cubic_coeff_a", "exclude_outside", "antialias")


@register_pass
class ResizeNearest(NodePass):
    name = "resize-nearest"
    summary = "APPROXIMATE: Resize / Upsample in linear or cubic mode -> nearest (opt-in)"
    addresses = ("Resize", "Upsample")
    approximate = True

    @dataclass(frozen=True)
    class Options:
        nearest_mode: Literal["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"] = field(
            default="round_prefer_floor", metadata={"help": "how Resize rounds to the nearest pixel"}
        )

    def rewrite(self, node: ir.Node, model: ir.Model, ctx) -> Change | None:
        """Switch a linear or cubic Resize / Upsample to nearest."""
        if node.domain not in ("", "ai.onnx") or node.op_type not in SMOOTH:
            return None
        mode = node.attributes.get_string("mode", "nearest")
        if mode not in SMOOTH[node.op_type]:
            return None
        node.attributes["mode"] = ir.AttrString("mode", "nearest")
        for name in DROPPED:
            node.attributes.pop(name, None)
        if node.op_type == "Resize" and "nearest_mode" not in node.attributes and model_opset(model) >= 11:
            node.attributes["nearest_mode"] = ir.AttrString("nearest_mode", self.options.nearest_mode)
        return Change(f"{node.op_type} mode {mode} -> nearest (approximate)", (node_label(node),))
