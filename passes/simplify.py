"""``simplify``: onnxsim as a pass, so shape subgraphs fold to constants before other passes look.

It honours ``--input-shape`` (onnxsim then fixes those input shapes in the model, as ATC would
see them). When onnxsim fails, the pass is skipped with its reason and the model is untouched.
"""

from __future__ import annotations

import onnx_ir as ir

from optimizer.passapi import Change, Pass, PassContext, PassResult, SkipPass, iter_nodes, node_label, register_pass


@register_pass
class Simplify(Pass):
    name = "simplify"
    summary = "Fold constants and shape subgraphs with onnxsim (honours --input-shape)"
    addresses = ("Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "Constant", "Identity")

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        """Simplify a serialised copy with onnxsim and report the nodes it removed."""
        import onnxsim

        proto = ir.serde.serialize_model(ir.external_data.load_to_model(model.clone()))
        try:
            simplified, _ = onnxsim.simplify(
                proto, overwrite_input_shapes=ctx.input_shapes or None, include_subgraph=True
            )
        except Exception as exc:  # onnxsim raises anything from C++ and onnxruntime
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise SkipPass(f"onnxsim failed: {reason}") from None
        simplified.ir_version = model.ir_version
        result = ir.serde.deserialize_model(simplified)
        after = _signatures(result)
        if after == _signatures(model):
            return PassResult(model)
        kept = set(after)
        removed = [node_label(node) for node in iter_nodes(model) if _signature(node) not in kept]
        changes = [Change("folded or removed", (label,)) for label in removed] or [Change("rewrote nodes")]
        return PassResult(result, changes)


def _signatures(model: ir.Model) -> list[tuple]:
    return [_signature(node) for node in iter_nodes(model)]


def _signature(node: ir.Node) -> tuple:
    return (node.name, node.op_type, tuple(v.name if v is not None else "" for v in node.outputs))
