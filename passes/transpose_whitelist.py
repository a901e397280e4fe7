"""``transpose-whitelist``: find the input shape of every Transpose that ATC lowers to TransposeD
(RDN guide). It changes no node; ``onnx-opt whitelist`` adds the shapes it finds to the OPP's
``white_list_shape`` so ATC picks the fast dynamic Transpose kernel for them.

ATC's ``check_supported`` looks up the Transpose's ONNX-side input shape (``ori_shape``) exactly,
so every Transpose with a static input shape is listed, once per distinct shape. A Transpose of
a constant is folded by ATC and not listed; one whose shape cannot be made static is left with
the reason (give ``--input-shape``, or run ``simplify`` first to fold shape subgraphs).
"""

from __future__ import annotations

import onnx_ir as ir

from optimizer.passapi import Pass, PassContext, PassResult, Requires, Skip, iter_nodes, node_label, register_pass


@register_pass
class TransposeWhitelist(Pass):
    name = "transpose-whitelist"
    summary = "List the input shapes of Transposes ATC lowers to TransposeD, for the OPP white list"
    addresses = ("Transpose", "TransposeD")
    requires = Requires(capabilities=("transpose-whitelist",))
    after = ("simplify",)
    kind = "analysis"
    runs_last = True  # the shapes of the Transposes the saved model holds

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        """Collect the static input shape of each non-constant Transpose."""
        shapes: list[list[int]] = []
        nodes: dict[str, list[int]] = {}
        skips = []
        for node in iter_nodes(model):
            if node.op_type != "Transpose" or node.domain not in ("", "ai.onnx"):
                continue
            source = node.inputs[0]
            if source is None or source.const_value is not None:
                continue
            shape = ctx.shape_of(source, model)
            if shape is None:
                reason = ctx.unknown_shape("input shape is not static (fix it with --input-shape)", model)
                skips.append(Skip(node_label(node), reason))
                continue
            nodes[node_label(node)] = shape
            if shape not in shapes:
                shapes.append(shape)
        findings = {"transpose_shapes": shapes, "transpose_nodes": nodes}
        return PassResult(model, skips=skips, findings=findings, found=len(nodes))
