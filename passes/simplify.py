"""``simplify``: onnxsim as a pass, so shape subgraphs fold to constants before other passes look.

It honours ``--input-shape`` (onnxsim then fixes those input shapes in the model, as ATC would
see them). When onnxsim fails, the pass is skipped with its reason and the model is untouched.
"""

from __future__ import annotations

import onnx_ir as ir

from optimizer.passapi import (
    Change,
    Pass,
    PassContext,
    PassResult,
    SkipPass,
    error_line,
    iter_nodes,
    node_label,
    register_pass,
)


@register_pass
class Simplify(Pass):
    name = "simplify"
    summary = "Fold constants and shape subgraphs with onnxsim (honours --input-shape)"
    addresses = ("Shape", "Gather", "Unsqueeze", "Concat", "Reshape", "Constant", "Identity")

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        """Simplify a serialised copy with onnxsim and report the nodes it removed."""
        import onnxruntime
        import onnxsim

        onnxruntime.set_default_logger_severity(3)  # onnxsim's folding errors are reported as the skip reason

        proto = ir.serde.serialize_model(ir.external_data.load_to_model(model.clone()))
        try:
            simplified, _ = onnxsim.simplify(
                proto, overwrite_input_shapes=ctx.input_shapes or None, include_subgraph=True
            )
        except Exception as exc:  # onnxsim raises anything from C++ and onnxruntime
            raise SkipPass(f"onnxsim failed: {error_line(exc)}") from None
        simplified.ir_version = model.ir_version
        result = ir.serde.deserialize_model(simplified)
        fixed = [
            Change(f"fixed the shape of input {new.name} to {list(new.shape)}")
            for old, new in zip(model.graph.inputs, result.graph.inputs, strict=False)
            if old.shape != new.shape
        ]
        after = _signatures(result)
        kept = set(after)
        removed = [node_label(node) for node in iter_nodes(model) if _signature(node) not in kept]
        changes = fixed + [Change("folded or removed", (label,)) for label in removed]
        if not changes and after == _signatures(model):
            return PassResult(model)
        return PassResult(result, changes or [Change("rewrote nodes")])


def _signatures(model: ir.Model) -> list[tuple]:
    return [_signature(node) for node in iter_nodes(model)]


def _signature(node: ir.Node) -> tuple:
    return (node.name, node.op_type, tuple(v.name if v is not None else "" for v in node.outputs))
