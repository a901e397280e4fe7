"""An onnx-opt plugin pass: ``drop-identity`` removes Identity nodes.

Legality (onnx-ir's identity elimination, in short):

1. ``y = Identity(x)`` where ``y`` is not a graph output: users of ``y`` use ``x``; drop the node.
2. ``y`` is a graph output and ``x`` is not a graph input or initializer: ``x`` takes the name ``y``.
3. ``y`` is a graph output and ``x`` a graph input or initializer: keep the node.

Installed, the entry point in setup.cfg makes ``onnx-opt passes`` list it; no decorator needed.
"""

import onnx_ir as ir

from optimizer.passapi import Change, NodePass, Skip, node_label


class DropIdentity(NodePass):
    name = "drop-identity"
    summary = "Remove Identity nodes (keeping graph inputs and outputs intact)"
    addresses = ("Identity",)

    def rewrite(self, node, model, ctx):
        if node.op_type != "Identity" or node.domain not in ("", "ai.onnx"):
            return None
        source, result = node.inputs[0], node.outputs[0]
        if source is None:
            return None
        if result.is_graph_output() and (source.is_graph_input() or source.is_initializer()):
            return Skip(node_label(node), "connects a graph input or initializer straight to an output")
        if source.is_graph_output():
            return Skip(node_label(node), "its input is a graph output too")
        name, renamed = result.name, result.is_graph_output()
        source.type = source.type or result.type
        source.shape = source.shape or result.shape
        ir.convenience.replace_all_uses_with(result, source, replace_graph_outputs=True)
        node.graph.remove(node, safe=True)
        if renamed:
            source.name = name
        return Change("removed Identity", (node_label(node),))
