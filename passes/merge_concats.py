"""``merge-concats``: Concat(Concat(x, y), z) on one axis becomes Concat(x, y, z) (msit
KnowledgeMergeConsecutiveConcat).

A Concat ``outer`` absorbs an input produced by a Concat ``inner`` when:

1. both are default-domain Concats in the same graph (a Concat of the main graph feeding one in
   an If branch is left alone);
2. they join the same axis: the ``axis`` attributes are equal, or equal once a negative axis is
   counted from the rank (known from the tensors' dims; unknown -> refused);
3. ``inner``'s output has no consumer but ``outer`` (which may read it at several positions) and
   is not a graph output.

The inner Concat may sit at any input position; its inputs take its place, in order, so the
result is the same tensor. Nests of any depth are flattened in one rewrite: a Concat that
``outer`` will absorb is left for ``outer`` and not rewritten on its own, so every nest is one
change and a second run changes nothing. Concat has a required ``axis`` from opset 4 on.
"""

from __future__ import annotations

import onnx_ir as ir

from optimizer.passapi import (
    Change,
    NodePass,
    PassContext,
    Requires,
    Skip,
    node_label,
    register_pass,
    sole_consumer,
)


@register_pass
class MergeConcats(NodePass):
    name = "merge-concats"
    summary = "Flatten Concat(Concat(x, y), z) on the same axis into one Concat(x, y, z)"
    addresses = ("Concat",)
    requires = Requires(opsets=(4, None))  # Concat's axis is required from opset 4

    def rewrite(self, node: ir.Node, model: ir.Model, ctx: PassContext) -> Change | Skip | None:
        """Flatten the nest of Concats whose outermost Concat is ``node``, or say why not."""
        if not _is_concat(node) or not any(_is_concat(_producer(value)) for value in node.inputs):
            return None
        users = {use.node for use in node.outputs[0].uses()}
        if len(users) == 1 and self._problem(next(iter(users)), node, model, ctx) is None:
            return None  # the Concat that reads this one absorbs it, nest and all
        problems: list[str] = []
        absorbed: dict[ir.Node, None] = {}  # in the order met, each once
        inputs = self._flatten(node, model, ctx, absorbed, problems)
        if not absorbed:
            return Skip(node_label(node), problems[0])
        node.resize_inputs(len(inputs))
        for index, value in enumerate(inputs):
            node.replace_input_with(index, value)
        node.graph.remove(list(absorbed), safe=True)
        labels = tuple(node_label(inner) for inner in absorbed)
        return Change(f"Concat absorbs {len(absorbed)} nested Concat(s) on its axis", (*labels, node_label(node)))

    def _flatten(
        self, outer: ir.Node, model: ir.Model, ctx: PassContext, absorbed: dict[ir.Node, None], problems: list[str]
    ) -> list[ir.Value | None]:
        """``outer``'s inputs with every absorbable Concat replaced by its own (flattened) inputs."""
        inputs: list[ir.Value | None] = []
        for value in outer.inputs:
            inner = _producer(value)
            problem = self._problem(outer, inner, model, ctx) if _is_concat(inner) else "not a Concat"
            if problem is None:
                absorbed[inner] = None
                inputs += self._flatten(inner, model, ctx, absorbed, problems)
            else:
                if _is_concat(inner):
                    problems.append(problem)
                inputs.append(value)
        return inputs

    def _problem(self, outer: ir.Node, inner: ir.Node, model: ir.Model, ctx: PassContext) -> str | None:
        """Why ``outer`` cannot absorb ``inner`` (rules 1-3), or None when it can."""
        if not _is_concat(outer) or not _is_concat(inner):
            return "not a Concat"
        if problem := ctx.scope_problem(model, inner, outer):
            return problem
        if not sole_consumer(inner.outputs[0], outer):
            return f"the inner Concat {node_label(inner)!r} has another consumer or is a graph output"
        axes = (inner.attributes.get_int("axis", 0), outer.attributes.get_int("axis", 0))
        if axes[0] == axes[1]:
            return None
        rank = _rank(outer, model, ctx)
        if rank is None:
            return ctx.unknown_shape(f"axes {axes[0]} and {axes[1]} can only be compared with the rank, unknown", model)
        if axes[0] % rank != axes[1] % rank:
            return f"the inner Concat joins axis {axes[0]}, the outer axis {axes[1]} (rank {rank})"
        return None


def _is_concat(node: ir.Node | None) -> bool:
    return node is not None and node.op_type == "Concat" and node.domain in ("", "ai.onnx")


def _producer(value: ir.Value | None) -> ir.Node | None:
    return None if value is None else value.producer()


def _rank(node: ir.Node, model: ir.Model, ctx: PassContext) -> int | None:
    """The rank of the tensors ``node`` joins, from the first of its output and inputs with known dims."""
    for value in (node.outputs[0], *node.inputs):
        dims = ctx.dims_of(value, model)
        if dims is not None:
            return len(dims)
    return None
