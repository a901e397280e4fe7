"""topk-int32: TopK's ``k`` and indices in int32, for ATC versions that fail on int64 ones. A FIX.

Replaces msit's KnowledgeTopkFix (TopkIndicesTypeFix), which was off by default for the same
reason: ONNX requires ``k`` to be int64, so the result is not a standard model (the onnx checker's
full check and onnxruntime refuse it). The pass is an opt-in fix: it never enters a target's
pipeline, ``auto`` or ``plan``, runs only when named with ``--passes topk-int32
--allow-approximate``, and runs after every other pass; verification then reports that
onnxruntime cannot run the result instead of dropping the pass. Convert the result with ATC only.

Cases:

1. ``TopK`` at opset 10 or later (``k`` is an input; opset 1 has it as an attribute, and no
   candidate): ``k`` goes through ``Cast(to=INT32)``; ``Cast`` nodes already inserted are reused,
   so a second run changes nothing.
2. Its indices output, when it has users, goes through ``Cast(to=INT32)`` and the users read that;
   the indices keep their int64 type at the TopK itself (the op's schema).

Refused:

- indices that are a graph output: casting them would change the model's declared output type;
- indices read by anything but the index input of Gather, GatherElements or ScatterElements, a
  Cast or an Identity: other ops would meet an int32 beside int64 values, or require int64.
"""

from __future__ import annotations

import onnx_ir as ir

from optimizer.passapi import Change, NodePass, Requires, Skip, node_label, register_pass

INT32 = ir.DataType.INT32
# (op type, input position) that accept int32 indices as well as int64; None: any position
INT32_READERS = {("Gather", 1), ("GatherElements", 1), ("ScatterElements", 1), ("Cast", None), ("Identity", None)}


@register_pass
class TopkInt32(NodePass):
    name = "topk-int32"
    summary = "FIX: cast TopK's k and indices to int32 for ATC (leaves a non-standard model; opt-in)"
    addresses = ("TopK",)
    requires = Requires(opsets=(10, None))
    kind = "fix"
    runs_last = True

    def rewrite(self, node: ir.Node, model: ir.Model, ctx) -> Change | Skip | None:
        """Cast ``k`` and the indices of a TopK to int32."""
        if node.op_type != "TopK" or node.domain not in ("", "ai.onnx") or len(node.inputs) < 2:
            return None
        k, indices = node.inputs[1], node.outputs[1]
        if indices.is_graph_output():
            return Skip(node_label(node), "its indices are a graph output: int32 would change the model's output type")
        for user, index in indices.uses():
            if (user.op_type, index) not in INT32_READERS and (user.op_type, None) not in INT32_READERS:
                return Skip(node_label(node), f"its indices feed {user.op_type} input {index}, which needs int64 there")
        done = []
        if not _is_int32_cast(k.producer()):
            cast = ir.node("Cast", [k], {"to": INT32}, name=ctx.fresh_name(model, f"{node.name}/k_int32"))
            cast.outputs[0].name = cast.name
            cast.outputs[0].dtype = INT32
            node.graph.insert_before(node, cast)
            node.replace_input_with(1, cast.outputs[0])
            done.append("k")
        users = [use for use in indices.uses() if not _is_int32_cast(use.node)]
        if users:
            cast = ir.node("Cast", [indices], {"to": INT32}, name=ctx.fresh_name(model, f"{node.name}/indices_int32"))
            cast.outputs[0].name = cast.name
            cast.outputs[0].dtype = INT32
            node.graph.insert_after(node, cast)
            for user, index in users:
                user.replace_input_with(index, cast.outputs[0])
            done.append("indices")
        if not done:
            return None
        return Change(f"TopK {' and '.join(done)} cast to int32 (non-standard: for ATC)", (node_label(node),))


def _is_int32_cast(node: ir.Node | None) -> bool:
    return node is not None and node.op_type == "Cast" and node.attributes.get_int("to") == INT32
