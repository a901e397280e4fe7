"""``conv1d-to-conv2d``: a connected group of 1-D Convs and the element-wise ops between them runs
as 2-D Convs on ``[N, C, 1, L]``, with one Unsqueeze where a tensor enters the group and one
Squeeze where it leaves (msit KnowledgeConv1d2Conv2d). ATC turns every Conv1d into a Conv2d with
TransData around it; doing it once for the group removes the TransData between its Convs.

A 1-D Conv over ``x [N, C, L]`` with weight ``W [M, C/g, k]`` equals, after inserting an axis of
length 1 before L, the 2-D Conv with weight ``[M, C/g, 1, k]``, ``kernel_shape [1, k]``, strides,
dilations ``[1, ...]``, pads ``[0, b, 0, e]`` and the same group and bias: along the new axis the
input, kernel, stride and dilation are 1 and nothing is padded (also under ``auto_pad``: SAME on a
length-1 axis with kernel 1 pads 0). The group is grown from a Conv1d through the producers and
consumers of its members, in one graph (scope), and holds:

1. default-domain Convs whose weight has rank 3 (a Conv1d); a constant weight is reshaped, any
   other weight is unsqueezed at axis 2;
2. BatchNormalization in inference form (one output, ``training_mode`` 0, ``spatial`` 1 at opsets
   7 and 8) on a member: per channel (axis 1) on ``[N, C, L]`` and on ``[N, C, 1, L]`` alike; its
   statistics are used as they are;
3. element-wise ops (``ELEMENTWISE``) whose output has rank 3 and every input a known rank <= 3.
   ONNX broadcasting aligns trailing axes, so an input of rank r must become, in the 4-D world, the
   same tensor with a 1 inserted before its last axis: ranks 0 and 1 stay as they are (a [L] or
   scalar operand still meets the last axis), a constant of rank 2 or 3 is reshaped
   (``[C, L] -> [C, 1, L]``), any other input of rank 2 or 3 is unsqueezed at axis r - 1. An op with
   an input of unknown rank, or of rank > 3, is left outside the group (the tensor is squeezed back
   before it), since its broadcast cannot be proven the same.

Every tensor entering the group is unsqueezed once however many members read it; every member
output read outside the group, or a graph output, is squeezed back under its own name, so the
outside sees exactly the old values. Unsqueeze / Squeeze take ``axes`` as an attribute before
opset 13 and as an input from 13. The new nodes take each member's place in graph order, so a
tensor that leaves the group and comes back through outside nodes stays in topological order.
After the rewrite no Conv has a rank-3 weight, so a second run changes nothing. No Conv1d is
refused: what cannot join a group is a group boundary.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx_ir as ir

from optimizer.passapi import (
    Change,
    NodePass,
    PassContext,
    PassResult,
    const_tensor,
    constant,
    model_opset,
    node_label,
    register_pass,
)

AXES_INPUT_OPSET = 13  # Unsqueeze / Squeeze take axes as an input from here
NEW_AXIS = 2  # [N, C, L] -> [N, C, 1, L]
# Ops applied element by element with numpy broadcasting of all inputs (their attributes do not
# depend on the rank).
ELEMENTWISE = frozenset(
    {
        "Abs", "Add", "Cast", "Ceil", "Celu", "Clip", "Cos", "Div", "Elu", "Erf", "Exp", "Floor", "Gelu",
        "HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "Log", "Max", "Mean", "Min", "Mish", "Mul", "Neg",
        "Pow", "PRelu", "Reciprocal", "Relu", "Round", "Selu", "Sigmoid", "Sign", "Sin", "Softplus", "Softsign",
        "Sqrt", "Sub", "Sum", "Tanh", "Where",
    }
)


@register_pass
class Conv1dToConv2d(NodePass):
    name = "conv1d-to-conv2d"
    summary = "Run a connected group of Conv1d and element-wise ops as Conv2d between one Unsqueeze and one Squeeze"
    addresses = ("Conv",)

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        """Walk the nodes with a fresh memo of each graph's node order."""
        self._order: dict[int, dict[ir.Node, int]] = {}
        return super().run(model, ctx)

    def rewrite(self, node: ir.Node, model: ir.Model, ctx: PassContext) -> Change | None:
        """Rewrite the group grown from the Conv1d ``node``."""
        if node.graph is None or not _is_conv1d(node, model, ctx):
            return None
        graph = node.graph
        members = self._grow(node, model, ctx)
        order = getattr(self, "_order", {})
        if id(graph) not in order:  # positions of the graph's nodes before this run's first rewrite in it
            order[id(graph)] = {n: i for i, n in enumerate(graph)}
        members.sort(key=order[id(graph)].__getitem__)
        convs = sum(_is_conv1d(m, model, ctx) for m in members)
        labels = tuple(node_label(m) for m in members)
        _Rewriter(graph, members, model, ctx, self._rank).apply()
        return Change(
            f"{convs} Conv1d and {len(members) - convs} other ops run as Conv2d on [N, C, 1, L]",
            labels,
        )

    def _rank(self, value: ir.Value | None, model: ir.Model, ctx: PassContext) -> int | None:
        """The rank of ``value`` (rank 3 for a Conv1d's output), or None when unknown."""
        if value is None:
            return None
        producer = value.producer()
        if producer is not None and _is_conv1d(producer, model, ctx):
            return 3
        tensor = const_tensor(value)
        if tensor is not None:
            return len(tensor.shape)
        dims = ctx.dims_of(value, model)
        return None if dims is None else len(dims)

    def _joins(self, node: ir.Node, graph: ir.Graph, model: ir.Model, ctx: PassContext) -> bool:
        """Whether ``node`` may be a member (rules 1-3)."""
        if node.graph is not graph or node.domain not in ("", "ai.onnx"):
            return False
        if _is_conv1d(node, model, ctx):
            return True
        if node.op_type == "BatchNormalization":
            inference = not any(output.name for output in node.outputs[1:]) and not node.attributes.get_int(
                "training_mode", 0
            )
            per_channel = node.attributes.get_int("spatial", 1) == 1  # opsets 7 and 8
            return inference and per_channel and self._rank(node.inputs[0], model, ctx) == 3
        if node.op_type not in ELEMENTWISE or len(node.outputs) != 1:
            return False
        ranks = [self._rank(value, model, ctx) for value in node.inputs if value is not None]
        return bool(ranks) and None not in ranks and max(ranks) == 3

    def _grow(self, seed: ir.Node, model: ir.Model, ctx: PassContext) -> list[ir.Node]:
        """The members reachable from ``seed`` through data edges (producers and consumers)."""
        graph = seed.graph
        members = {seed}
        pending = [seed]
        while pending:
            member = pending.pop()
            data = member.inputs[:1] if member.op_type in ("Conv", "BatchNormalization") else member.inputs
            near = [value.producer() for value in data if value is not None and value.producer() is not None]
            near += [use.node for use in member.outputs[0].uses() if _data_use(use.node, use.idx)]
            for other in near:
                if other not in members and self._joins(other, graph, model, ctx):
                    members.add(other)
                    pending.append(other)
        return list(members)


class _Rewriter:
    """Replaces the members of one group, each at its own place in the graph."""

    def __init__(
        self, graph: ir.Graph, members: list[ir.Node], model: ir.Model, ctx: PassContext,
        rank: Callable[[ir.Value, ir.Model, PassContext], int | None],
    ) -> None:
        self.graph, self.members, self.model, self.ctx, self.rank = graph, members, model, ctx, rank
        self.lifted: dict[ir.Value, ir.Value] = {}  # old value -> its 4-D form
        self.axes_input = model_opset(model) >= AXES_INPUT_OPSET

    def apply(self) -> None:
        """Insert the 4-D form of every member after it, squeeze what leaves, remove the members."""
        member_set = set(self.members)
        old_values, new_values = [], []
        for member in self.members:
            new_nodes = self._lift_inputs(member)
            replacement = self._replacement(member)
            new_nodes.append(replacement)
            old, new = member.outputs[0], replacement.outputs[0]
            self.lifted[old] = new
            leaves = old.is_graph_output() or any(use.node not in member_set for use in old.uses())
            if leaves:
                squeeze = self._axes_node("Squeeze", new, f"{member.name or old.name}/squeeze")
                new_nodes += squeeze
                old_values.append(old)
                new_values.append(squeeze[-1].outputs[0])
            self.graph.insert_after(member, new_nodes)
        for old, new in zip(old_values, new_values, strict=True):
            new.type, new.shape = old.type, old.shape
            ir.convenience.replace_all_uses_with(old, new, replace_graph_outputs=True)
            name, old.name = old.name, None
            new.name = name
        self.graph.remove(self.members, safe=True)

    def _lift_inputs(self, member: ir.Node) -> list[ir.Node]:
        """Nodes giving the 4-D form of every input of ``member`` from outside the group."""
        new_nodes: list[ir.Node] = []
        lifts = [0, 1] if member.op_type == "Conv" else [0] if member.op_type == "BatchNormalization" else None
        for index, value in enumerate(member.inputs):
            if value is None or value in self.lifted or (lifts is not None and index not in lifts):
                continue
            rank = 3 if member.op_type == "Conv" else self.rank(value, self.model, self.ctx)  # X, W of a Conv1d
            if rank <= 1:
                continue
            tensor = const_tensor(value)
            base = value.name or "input"
            if tensor is not None:
                array = tensor.numpy()
                shape = [*array.shape[:-1], 1, array.shape[-1]]
                node = constant(self.ctx.fresh_name(self.model, f"{base}/4d"), array.reshape(shape))
                new_nodes.append(node)
                self.lifted[value] = node.outputs[0]
            else:
                nodes = self._axes_node("Unsqueeze", value, f"{base}/unsqueeze", rank - 1)
                new_nodes += nodes
                self.lifted[value] = nodes[-1].outputs[0]
        return new_nodes

    def _replacement(self, member: ir.Node) -> ir.Node:
        """The member as a node on the 4-D values (a Conv2d for a Conv1d)."""
        inputs = [self.lifted.get(value, value) if value is not None else None for value in member.inputs]
        attributes = {attr.name: attr for attr in member.attributes.values()}
        if member.op_type == "Conv":
            for name, extra in (("kernel_shape", 1), ("strides", 1), ("dilations", 1)):
                if name in attributes:
                    attributes[name] = ir.AttrInt64s(name, [extra, *attributes[name].as_ints()])
            if "pads" in attributes:
                begin, end = attributes["pads"].as_ints()
                attributes["pads"] = ir.AttrInt64s("pads", [0, begin, 0, end])
        node = ir.Node(member.domain, member.op_type, inputs, attributes.values(), name=member.name)
        node.outputs[0].name = self.ctx.fresh_name(self.model, f"{member.outputs[0].name}_4d")
        return node

    def _axes_node(self, op_type: str, value: ir.Value, base: str, axis: int = NEW_AXIS) -> list[ir.Node]:
        """An Unsqueeze / Squeeze of ``axis``, with its axes as the opset wants (and their Constant)."""
        name = self.ctx.fresh_name(self.model, base)
        if self.axes_input:
            axes = constant(self.ctx.fresh_name(self.model, f"{base}_axes"), np.array([axis], np.int64))
            node = ir.node(op_type, [value, axes.outputs[0]], name=name)
            nodes = [axes, node]
        else:
            node = ir.node(op_type, [value], {"axes": [axis]}, name=name)
            nodes = [node]
        node.outputs[0].name = name
        return nodes


def _is_conv1d(node: ir.Node, model: ir.Model, ctx: PassContext) -> bool:
    """A default-domain Conv whose weight has rank 3."""
    if node.op_type != "Conv" or node.domain not in ("", "ai.onnx") or len(node.inputs) < 2 or node.inputs[1] is None:
        return False
    tensor = const_tensor(node.inputs[1])
    shape = list(tensor.shape) if tensor is not None else ctx.dims_of(node.inputs[1], model)
    return shape is not None and len(shape) == 3


def _data_use(node: ir.Node, index: int) -> bool:
    """Whether input ``index`` of ``node`` is data a member may pass along (not a weight or statistic)."""
    return index == 0 or node.op_type not in ("Conv", "BatchNormalization")
