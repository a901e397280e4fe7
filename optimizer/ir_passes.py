"""onnx-ir passes as onnx-opt passes.

    from onnx_ir.passes.common import CommonSubexpressionEliminationPass
    register_pass(wrap_ir_pass(CommonSubexpressionEliminationPass, name="cse", summary="Share equal nodes"))

or subclass :class:`IRPass` and set ``ir_pass``. The onnx-ir pass is what it is: it walks the scopes
it walks (onnx-ir's CSE, for one, looks at the main graph only).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import ClassVar

import onnx_ir as ir

from optimizer.passapi import (
    Change,
    Pass,
    PassContext,
    PassResult,
    Requires,
    SkipPass,
    all_graphs,
    error_line,
    iter_nodes,
    node_label,
)

__all__ = ["IRPass", "wrap_ir_pass"]


class IRPass(Pass):
    """Runs ``ir_pass`` (an onnx-ir pass class, or a function returning a pass) on the model.

    A failed ``requires`` of the onnx-ir pass skips the pass with the reason (a failed ``ensures``
    comes after an in-place pass changed the model: it fails the pass); when it reports
    ``modified`` that is one Change saying how the counts moved and which nodes are gone.
    In-place and functional passes alike: the model it returns is the result.
    """

    ir_pass: ClassVar[Callable[[], ir.passes.PassBase]]

    def run(self, model: ir.Model, ctx: PassContext) -> PassResult:
        """Run a new instance of the onnx-ir pass."""
        before, labels = _counts(model), [node_label(node) for node in iter_nodes(model)]
        instance = type(self).ir_pass()
        try:
            outcome = instance(model)
        except ir.passes.InvariantError as exc:  # PreconditionError or PostconditionError
            cause = f": {error_line(exc.__cause__)}" if exc.__cause__ is not None else ""
            if isinstance(exc, ir.passes.PreconditionError):  # before the pass touched the model
                raise SkipPass(f"{error_line(exc)}{cause}") from exc
            raise type(exc)(f"{error_line(exc)}{cause}") from exc  # after: the pass failed
        result = PassResult(outcome.model)
        if outcome.modified:
            after = _counts(outcome.model)
            moved = [f"{what} {before[what]} -> {after[what]}" for what in before if before[what] != after[what]]
            gone = Counter(labels) - Counter(node_label(node) for node in iter_nodes(outcome.model))
            summary = ", ".join(moved) or "same counts"
            result.changes.append(Change(f"{type(instance).__name__}: {summary}", tuple(gone.elements())))
        return result


def wrap_ir_pass(
    ir_pass: Callable[[], ir.passes.PassBase],
    *,
    name: str,
    summary: str,
    addresses: tuple[str, ...] = (),
    requires: Requires | None = None,
) -> type[IRPass]:
    """A pass class (to register) running ``ir_pass``, an onnx-ir pass class or a function making one."""
    attributes = {
        "name": name,
        "summary": summary,
        "addresses": tuple(addresses),
        "requires": requires or Requires(),
        "ir_pass": staticmethod(ir_pass),
        "__module__": getattr(ir_pass, "__module__", __name__),
        "__doc__": summary,
    }
    return type("".join(part.title() for part in name.split("-")) + "Pass", (IRPass,), attributes)


def _counts(model: ir.Model) -> dict[str, int]:
    """Nodes and initializers in every scope, and functions."""
    return {
        "nodes": sum(1 for _ in iter_nodes(model)),
        "initializers": sum(len(graph.initializers) for graph in all_graphs(model)),
        "functions": len(model.functions),
    }
